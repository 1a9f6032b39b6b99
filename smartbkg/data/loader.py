"""Fast batch loading with deterministic shuffling and DDP sharding.

:class:`GraphLoader` yields ``torch_geometric.data.Batch`` objects cut straight from flat tensors
(:meth:`smartbkg.data.graphs.GraphStore.batch`), for in-memory datasets in the main process and
for streaming datasets through a torch ``DataLoader`` with worker processes.

How an epoch is cut (:func:`plan_batches`):

* all ranks shuffle the same way (seed, epoch) and rank r takes the slice
  ``[r*N//W, (r+1)*N//W)`` of the epoch's event sequence: the ranks' events are disjoint and
  together cover every event exactly once;
* batches hold ``batch_size`` events and the last batch of the epoch holds the rest, as with
  torch's and PyG's ``DataLoader`` (300 events in batches of 32: nine of 32 and one of 12);
* every rank gets the same number of batches, ``ceil(ceil(N/W) / batch_size)``, so DDP needs no
  ``Join`` context: a rank whose slice is one event shorter than the longest has one event less
  in its last batch, or, where that would leave it empty, in the one before;
* with ``drop_last=True`` every batch has exactly ``batch_size`` events and each rank uses the
  first ``(N//W // batch_size) * batch_size`` events of its slice (a different set each epoch
  when shuffling).

For streaming datasets the plan counts events as stored in the files: an event dropped while
reading (a bad event, or one left empty by preprocessing) makes its batch one graph smaller, but
the number of batches per rank stays equal. The training loop must call :meth:`GraphLoader.set_epoch`
before each epoch (as with ``DistributedSampler``).
"""

import numpy as np
import torch

from ..errors import ConfigError
from .bucketing import bucket_by_length
from .checks import ReadReport
from .dataset import EventGraphDataset, StreamingEventGraphDataset, resolve_shard
from .preprocess import PreprocessStats


def plan_batches(n_events, batch_size, rank=0, world_size=1, drop_last=False, min_size=1):
    """Cut one epoch's sequence of events into this rank's batches.

    Args:
        n_events: events in the epoch (all ranks together).
        batch_size: events per batch (per rank and step); the last batch holds the rest.
        rank, world_size: this rank and the number of ranks.
        drop_last: exactly ``batch_size`` events per batch, leaving out the rest.
        min_size: fewest events of a batch: the last batches take events from the ones before
            to reach it (e.g. the number of ranks that share each batch).

    Returns:
        (n_batches + 1,) int64 positions in the epoch's sequence; batch k is
        ``[cuts[k], cuts[k + 1])``. ``n_batches`` is the same on every rank.

    Raises:
        ConfigError: ``batch_size`` < 1, or too few events for every rank's batches to hold
            ``min_size`` events.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    lo, hi = n_events * rank // world_size, n_events * (rank + 1) // world_size
    if drop_last:
        k = np.arange((n_events // world_size) // batch_size + 1, dtype=np.int64)
        return lo + k * batch_size
    largest = -(-n_events // world_size)  # events of the largest rank slice
    n_batches = -(-largest // batch_size)
    count = hi - lo
    if count < n_batches * min_size:
        raise ConfigError(f"cannot give all {world_size} rank(s) the same number ({n_batches}) of batches of at least "
                          f"{min_size} event(s) out of {n_events} events with batch_size {batch_size}; use a larger "
                          "batch_size or more events, or drop_last=True")
    # Full batches first; the last ones give up events so that each keeps min_size.
    k = np.arange(n_batches + 1, dtype=np.int64)
    return lo + np.minimum(k * batch_size, count - (n_batches - k) * min_size)


class GraphLoader:
    """Batches of graphs from an :class:`EventGraphDataset` or :class:`StreamingEventGraphDataset`.

    Args:
        dataset: in-memory (or an index subset of one, e.g. ``dataset[train_idx]``) or streaming.
        batch_size: events per batch on this rank; the last batch of an epoch holds the rest
            (:func:`plan_batches`).
        shuffle: shuffle events every epoch (seed, epoch); streaming datasets shuffle row-group
            order and events within buffers.
        seed: shuffling seed (the same on every rank).
        drop_last: batches of exactly ``batch_size``, leaving out the remainder.
        rank, world_size: this process's shard (default: torch.distributed when initialised,
            else 0 of 1).
        num_workers: DataLoader worker processes (streaming datasets only).
        pin_memory: streamed batches come out in pinned host memory (for an asynchronous copy to
            a CUDA device; the worker processes' DataLoader pins them).
        bucket_window: None, or length bucketing of an in-memory dataset
            (:func:`smartbkg.data.bucketing.bucket_by_length`): events are sorted by particle count
            within windows of this many batches (0: the whole epoch), and the batches of a window
            are shuffled when ``shuffle`` is set.

    Iterating yields ``Batch`` objects (see :mod:`smartbkg.data.graphs`); ``len`` is the number
    of batches per epoch on this rank; ``report`` is what the last streamed epoch read and skipped.
    """

    def __init__(self, dataset, batch_size, shuffle=True, seed=0, drop_last=False, rank=None, world_size=None,
                 num_workers=0, pin_memory=False, bucket_window=None):
        if isinstance(dataset, EventGraphDataset) and dataset.transform is not None:
            raise ConfigError("GraphLoader batches straight from flat tensors and skips per-item transforms; "
                              "use torch_geometric.loader.DataLoader for a dataset with a transform")
        if not isinstance(dataset, (EventGraphDataset, StreamingEventGraphDataset)):
            raise ConfigError(f"GraphLoader needs an EventGraphDataset, got {type(dataset).__name__}")
        if num_workers and not isinstance(dataset, StreamingEventGraphDataset):
            raise ConfigError("num_workers is for streaming datasets; in-memory batches are built in the main process")
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, int(batch_size), shuffle, seed
        if bucket_window is not None and not isinstance(dataset, EventGraphDataset):
            raise ConfigError("length bucketing is for in-memory datasets; streaming ones shuffle within buffers")
        self.drop_last, self.num_workers, self.pin_memory = drop_last, int(num_workers), bool(pin_memory)
        self.bucket_window = bucket_window
        self.rank, self.world_size = resolve_shard(rank, world_size)
        self.epoch = 0
        self.report, self.preprocess_stats = ReadReport(), PreprocessStats()
        self._cuts(0)  # fail early on an impossible plan

    @property
    def streaming(self):
        return isinstance(self.dataset, StreamingEventGraphDataset)

    def set_epoch(self, epoch):
        """Set the epoch; shuffling depends on (seed, epoch). Call before iterating each epoch."""
        self.epoch = int(epoch)

    def _n_events(self):
        return self.dataset.num_events if self.streaming else len(self.dataset)

    def _cuts(self, epoch):
        return plan_batches(self._n_events(), self.batch_size, self.rank, self.world_size, self.drop_last)

    def __len__(self):
        return len(self._cuts(self.epoch)) - 1

    def __iter__(self):
        return self._stream() if self.streaming else self._in_memory()

    def epoch_order(self, epoch=None):
        """(N,) store indices of an in-memory dataset's events in the epoch's order."""
        events = self.dataset.events()
        rng = None
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
            events = events[rng.permutation(len(events))]
        if self.bucket_window is not None:
            events = bucket_by_length(events, self.dataset.store.counts, self.batch_size, self.bucket_window, rng)
        return events

    def _in_memory(self):
        order = self.epoch_order()
        cuts = self._cuts(self.epoch).tolist()
        yield from self.dataset.store.batches(order[lo:hi] for lo, hi in zip(cuts[:-1], cuts[1:]))

    def _stream(self):
        self.report = ReadReport(files=len(self.dataset.paths))
        self.preprocess_stats = PreprocessStats()
        stream = _BatchStream(self.dataset, self._cuts(self.epoch), self.epoch, self.shuffle, self.seed)
        if self.num_workers:
            batches = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=self.num_workers,
                                                  collate_fn=_identity, pin_memory=self.pin_memory)
        else:
            batches = stream
        for batch, reports in batches:
            if reports is not None:
                self.report += reports[0]
                self.preprocess_stats += reports[1]
            yield batch


class _BatchStream(torch.utils.data.IterableDataset):
    """One epoch of a streaming dataset's batches for this rank, split over DataLoader workers.

    Worker w of K takes the contiguous run of batches ``[w*B//K, (w+1)*B//K)`` so that each
    worker reads its own row groups; the DataLoader hands the workers' batches out in turn.
    """

    def __init__(self, dataset, cuts, epoch, shuffle, seed):
        super().__init__()
        self.dataset, self.cuts, self.epoch = dataset, cuts, epoch
        self.shuffle, self.seed = shuffle, seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        wid, workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        n = len(self.cuts) - 1
        cuts = self.cuts[n * wid // workers:n * (wid + 1) // workers + 1]
        if len(cuts) > 1:
            yield from self.dataset.iter_batches(cuts, self.epoch, shuffle=self.shuffle, seed=self.seed)


def _identity(item):
    return item
