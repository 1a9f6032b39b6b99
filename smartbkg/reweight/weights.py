"""Per-event weights from a classifier between two samples (the likelihood-ratio trick).

A classifier trained to tell sample A (label 1) from sample B (label 0) with the cross-entropy
loss approaches q(x) = N_A p_A(x) / (N_A p_A(x) + N_B p_B(x)), so

    w(x) = q / (1 - q) * N_B / N_A  ~  p_A(x) / p_B(x)

turns B into A event by event, in all the dimensions the classifier saw ("Neural Networks for
Full Phase-space Reweighting and Parameter Tuning", Andreassen and Nachman, Phys. Rev. D 101,
091901). N_A and N_B are the (weighted) sizes of the two training samples.
"""

from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics import effective_sample_size


class Weights(NamedTuple):
    """Weights of sample B and what clipping did to them.

    Fields (a named tuple):
        w: (n,) float64 weights, clipped at ``clip``.
        clip: the largest weight allowed (inf: none).
        clipped_fraction: share of events whose weight was clipped.
        n_eff: Kish effective sample size (sum w)^2 / sum w^2.
    """

    w: np.ndarray
    clip: float
    clipped_fraction: float
    n_eff: float


def classifier_weights(q, n_a, n_b, *, clip=None, q_max=1 - 1e-6):
    """Weights w = q / (1 - q) * n_b / n_a that turn sample B into sample A.

    Args:
        q: (n,) classifier output P(A | x) of sample-B events, in [0, 1]; averaged over an
            ensemble beforehand when there are several classifiers.
        n_a, n_b: (weighted) numbers of A and B events the classifier was trained on.
        clip: largest weight (None: no clipping).
        q_max: q is capped at this value before the ratio (q = 1 would give an infinite weight).

    Returns:
        :class:`Weights`.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 1 or not np.all(np.isfinite(q)) or np.any((q < 0) | (q > 1)):
        raise DataError("classifier outputs must be a 1-D array of probabilities in [0, 1]")
    if not (n_a > 0 and n_b > 0):
        raise DataError(f"both samples need events, got {n_a} and {n_b}")
    if clip is not None and not clip > 0:
        raise ConfigError(f"the weight clip must be > 0, got {clip}")
    q = np.minimum(q, q_max)
    w = q / (1.0 - q) * (n_b / n_a)
    clip = np.inf if clip is None else float(clip)
    clipped = w > clip
    w = np.minimum(w, clip)
    return Weights(w, clip, float(clipped.mean()) if len(w) else 0.0, effective_sample_size(w))

