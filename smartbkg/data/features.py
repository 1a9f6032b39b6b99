"""Event-level feature data: one row of numbers per event, for the event classifiers.

The training loop (:class:`smartbkg.train.Trainer`) trains graph models on decay trees; the
same loop trains event-level models (the feature-token transformer, a feed-forward network) on
a :class:`FeatureDataset`, through the duck-typed parts of the batch contract it uses:
``x``, ``y``, ``weight``, ``event_type``, ``event_id``, ``num_graphs``, ``to`` and
``pin_memory``. Per-event variables that are not features (e.g. the invariant mass that DisCo
decorrelates the output from) travel with the batch in ``variables``.
"""

import numpy as np
import torch

from ..errors import DataError
from .loader import plan_batches


class FeatureDataset:
    """Events as rows of features.

    Args:
        x: (n, F) features (float32 is used).
        y: (n, S) 0/1 labels (e.g. signal = 1).
        skims: the S label names; feature_names: the F feature names.
        weight: (n,) event weights (default 1).
        variables: {name: (n,) array} per-event variables that are not features.
        event_types: names of the event-type codes; event_type: (n,) codes (default 0).
    """

    vocab_size = 1  # no PDG tokens: models are built with vocab_size 1

    def __init__(self, x, y, skims, feature_names, *, weight=None, variables=None, event_types=("events",),
                 event_type=None):
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        y = np.asarray(y)
        if y.ndim == 1:
            y = y[:, None]
        n = len(self.x)
        if self.x.ndim != 2 or self.x.shape[1] != len(feature_names) or y.shape != (n, len(skims)):
            raise DataError(f"features {tuple(self.x.shape)}, labels {y.shape}, {len(feature_names)} feature names "
                            f"and {len(skims)} skims do not fit together")
        if not torch.isfinite(self.x).all():
            raise DataError("features must be finite")
        if not np.isin(y, (0, 1)).all():
            raise DataError("labels must be 0 or 1")
        self.y = torch.as_tensor(y.astype(np.float32))
        self.skims, self.feature_names, self.event_types = tuple(skims), tuple(feature_names), tuple(event_types)
        self.weight = torch.ones(n) if weight is None else torch.as_tensor(np.asarray(weight, dtype=np.float32))
        self.event_type = torch.zeros(n, dtype=torch.long) if event_type is None else torch.as_tensor(event_type)
        self.event_id = torch.arange(n)
        self.variables = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in (variables or {}).items()}

    def __len__(self):
        return len(self.x)

    def labels(self):
        """(n, S) bool labels."""
        return self.y.numpy().astype(bool)

    @property
    def label_counts(self):
        """{skim: number of events with label 1}."""
        return {skim: int(self.y[:, j].sum()) for j, skim in enumerate(self.skims)}

    @property
    def retention(self):
        """{skim: weighted fraction of events with label 1}."""
        w = self.weight.double()
        return {skim: float((self.y[:, j].double() * w).sum() / w.sum()) for j, skim in enumerate(self.skims)}

    def batch(self, index):
        """The events ``index`` as a :class:`FeatureBatch`."""
        return FeatureBatch(self.x[index], self.y[index], self.weight[index], self.event_type[index],
                            self.event_id[index], {k: v[index] for k, v in self.variables.items()})


class FeatureBatch:
    """A batch of feature rows: ``x`` (B, F), ``y`` (B, S), ``weight``, ``event_type``, ``event_id`` (B,)
    and ``variables`` {name: (B,)}."""

    def __init__(self, x, y, weight, event_type, event_id, variables):
        self.x, self.y, self.weight, self.event_type, self.event_id = x, y, weight, event_type, event_id
        self.variables = variables

    @property
    def num_graphs(self):
        """Events in the batch (the name of the graph batches' count)."""
        return len(self.x)

    def _apply(self, fn):
        return FeatureBatch(*(fn(t) for t in (self.x, self.y, self.weight, self.event_type, self.event_id)),
                            {k: fn(v) for k, v in self.variables.items()})

    def to(self, device, non_blocking=False):
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self):
        return self._apply(lambda t: t.pin_memory())


class FeatureLoader:
    """Global batches of a :class:`FeatureDataset`, cut as the graph loaders cut them.

    Each epoch the events are shuffled by (seed, epoch) and cut into global batches of
    ``batch_size`` (:func:`smartbkg.data.loader.plan_batches`); rank r of K takes events
    ``[n*r//K, n*(r+1)//K)`` of each global batch of n events.
    """

    def __init__(self, dataset, batch_size, *, shuffle, seed, rank=0, world_size=1):
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, int(batch_size), shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _cuts(self):
        return plan_batches(len(self.dataset), self.batch_size)

    def __len__(self):
        return len(self._cuts()) - 1

    def __iter__(self):
        n = len(self.dataset)
        order = (torch.from_numpy(np.random.default_rng([self.seed, self.epoch]).permutation(n)) if self.shuffle
                 else torch.arange(n))
        cuts = self._cuts().tolist()
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            size = hi - lo
            share = order[lo + size * self.rank // self.world_size:lo + size * (self.rank + 1) // self.world_size]
            yield self.dataset.batch(share)
