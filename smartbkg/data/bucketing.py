"""Length bucketing: batches of events with similar particle counts.

A model that pads every event of a batch to the batch's longest event (the transformer and the
Lorentz-invariant attention, :func:`smartbkg.models.transformer.dense_layout`) spends its attention on
``B * max_n^2`` pairs while the events hold ``sum n_i^2``. Sorting events by length before they
are cut into batches makes the batches homogeneous and removes most of the padding.

:func:`bucket_by_length` reorders an epoch's event sequence window by window: each window of
``window`` consecutive events is sorted by length (stable), and, when shuffling, the window's
batches are put in a random order, so that the model does not see short events first and long
ones last. The events of a window stay the same, so a shuffled epoch still mixes the whole
sample over windows; what changes is that each batch holds events of similar length. That
matters for losses computed on a whole batch (``speedup``, ``entropeedup``, DisCo): their value
depends on which events share a batch, and batches of similar multiplicity are not a random
sample (multiplicity is correlated with the skim decisions), so bucketing is refused for them
in training (:class:`smartbkg.train.config.DataConfig`) and allowed for per-event losses
(``entropy``, ``extreme``) and for inference.
"""

import numpy as np

from ..errors import ConfigError


def bucket_by_length(order, counts, batch_size, window_batches, rng=None):
    """Reorder ``order`` so that consecutive batches hold events of similar length.

    Args:
        order: (N,) int64 event indices in the epoch's order.
        counts: (n_events,) particles per event (array or tensor), indexed by the values of
            ``order``.
        batch_size: events per batch.
        window_batches: batches per window (the window is ``window_batches * batch_size``
            events); 0 means one window over the whole epoch.
        rng: ``numpy.random.Generator`` to shuffle the batches of each window, or None to keep
            them in order of length (inference).

    Returns:
        (N,) int64: the same indices, sorted by length within each window.
    """
    if batch_size < 1 or window_batches < 0:
        raise ConfigError(f"bucketing needs batch_size >= 1 and window_batches >= 0, got {batch_size}, "
                          f"{window_batches}")
    order, counts = np.asarray(order, dtype=np.int64), np.asarray(counts)
    window = len(order) if window_batches == 0 else window_batches * batch_size
    parts = []
    for lo in range(0, len(order), max(window, 1)):
        chunk = order[lo:lo + window]
        chunk = chunk[np.argsort(counts[chunk], kind="stable")]
        if rng is not None:  # full batches in random order, a short last one stays last
            full = len(chunk) // batch_size
            batches = np.split(chunk[:full * batch_size], full) if full else []
            chunk = np.concatenate([*(batches[i] for i in rng.permutation(full)), chunk[full * batch_size:]])
        parts.append(chunk)
    return np.concatenate(parts) if parts else order


def padding_fraction(counts, cuts):
    """The share of attention pairs that are padding when batches ``[cuts[k], cuts[k+1])`` of
    events with ``counts`` particles are padded to their longest event: 1 - sum n_i^2 / sum B max_n^2.

    Args:
        counts: (N,) particles per event, in batch order.
        cuts: (n_batches + 1,) batch boundaries.
    """
    counts = np.asarray(counts, dtype=np.float64)
    real = float((counts ** 2).sum())
    padded = sum((hi - lo) * counts[lo:hi].max() ** 2 for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo)
    return 1.0 - real / padded if padded else 0.0
