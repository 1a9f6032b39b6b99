"""The data of a training run: the embedded sample, train/validation/test splits, loaders.

* No ``data.path``: the embedded Pythia 8 sample (:func:`smartbkg.simulation.produce`) is
  generated once (seeded) and cached in ``data.cache_dir`` (default ``<run folder>/data``).
* In memory (default): all events are read, validated and preprocessed once, then split at
  random (``data.split_seed``) into train / validation / test unless separate files are given.
  Batches are *global*: one seeded permutation per epoch is cut into batches of
  ``data.batch_size`` events and every DDP rank takes its contiguous share of each batch
  (:class:`GlobalBatchLoader`), so K processes see exactly the batches of one process.
* Streaming (``data.in_memory: false``): the training shards are read row group by row group
  (:class:`smartbkg.data.loader.GraphLoader`, each rank its own slice of the epoch, batches of
  ``batch_size / K`` per rank, so the global batch has the same size but not the same events as in
  one process); validation and test sets are separate files, held in memory.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import EventGraphDataset, StreamingEventGraphDataset
from ..data.features import FeatureDataset, FeatureLoader
from ..data.loader import GraphLoader, plan_batches
from ..data.preprocess import PreprocessConfig
from ..errors import ConfigError, DataError
from ..files import make_temp_dir
from .distributed import barrier

#: Skim trained on when none is named and the data is the embedded sample: the one with the
#: most passing events (about 16 %), so that a small demo sample has enough of them.
EMBEDDED_DEFAULT_SKIMS = ("tau_generic",)

#: Fewest passing events per skim that a split should hold. With fewer, the AUC, the
#: calibration fitted on the validation set and the speedup measured on the test set carry
#: statistical errors of 10 % or more (1/sqrt(100)); a run on so few events is a smoke test.
MIN_PASSING_EVENTS = 100


@dataclass
class Splits:
    """The data sets of a run and what the model and loss need to know about them.

    Attributes:
        train: in-memory or streaming dataset; val: in-memory; test: in-memory or None.
        skims: label names (columns of ``y``); event_types: names of the event type codes;
        vocab_size: PDG tokens; retention: {skim: true retention eps}.
    """

    train: object
    val: object
    test: object
    skims: tuple
    event_types: tuple
    vocab_size: int
    retention: dict

    def few_passing_warnings(self, minimum=MIN_PASSING_EVENTS):
        """One message per split and skim with fewer than ``minimum`` passing events."""
        messages = []
        for name, dataset in (("training", self.train), ("validation", self.val), ("test", self.test)):
            if dataset is None:
                continue
            for skim, count in dataset.label_counts.items():
                if count < minimum:
                    messages.append(f"the {name} set has {count} events passing {skim}, fewer than {minimum}: "
                                    "what is measured on it has statistical errors of 10 % or more; use more "
                                    "events (--events, or more data)")
        return messages


def labels(dataset):
    """(n, S) bool skim labels of an in-memory dataset (or index subset of one)."""
    if isinstance(dataset, FeatureDataset):
        return dataset.labels()
    return dataset.table.labels[dataset.events()]


def build_splits(data_cfg, run_dir, *, ctx, quiet=False):
    """Read (or generate) the events of a run and split them.

    Args:
        data_cfg: :class:`~smartbkg.train.config.DataConfig`.
        run_dir: the run folder (default home of the generated sample).
        ctx: :class:`~smartbkg.train.distributed.DistContext` (the sample is generated on the
            main rank only).

    Returns:
        :class:`Splits`; unless ``quiet``, a warning is printed (stderr) for every split with
        fewer than :data:`MIN_PASSING_EVENTS` events passing a skim.
    """
    d = data_cfg
    skims = d.skims
    paths = d.path
    if paths is None:
        paths = [str(embedded_sample(d, run_dir, ctx=ctx, quiet=quiet))]
        skims = skims or list(EMBEDDED_DEFAULT_SKIMS)
    preprocess = preprocess_config(d.preprocess)
    if not d.in_memory and d.val_path is None:
        raise ConfigError("streaming training data (data.in_memory: false) needs separate validation files "
                          "(data.val_path)")

    def load(source):
        return _restrict_types(EventGraphDataset(source, skims=skims, preprocess=preprocess,
                                                 event_features=d.event_features), d.event_types)

    if d.in_memory:
        full = load(paths)
        skims = full.skims
        order = np.random.default_rng(d.split_seed).permutation(len(full))
        n_val = 0 if d.val_path is not None else int(round(d.val_fraction * len(full)))
        n_test = 0 if d.test_path is not None else int(round(d.test_fraction * len(full)))
        train = full[np.sort(order[n_val + n_test:])]
        val = full[np.sort(order[:n_val])] if n_val else None
        test = full[np.sort(order[n_val:n_val + n_test])] if n_test else None
    else:
        full = train = StreamingEventGraphDataset(paths, skims=skims, preprocess=preprocess,
                                                  event_features=d.event_features)
        skims, val, test = train.skims, None, None
        if d.event_types is not None:
            raise ConfigError("data.event_types is not supported for streaming training data; "
                              "write the selected types to their own shards")
    if d.val_path is not None:
        val = _same_types(load(d.val_path), full, "data.val_path")
    if d.test_path is not None:
        test = _same_types(load(d.test_path), full, "data.test_path")
    for name, dataset in (("training", train), ("validation", val)):
        if dataset_size(dataset) == 0:
            raise DataError(f"the {name} set is empty")
    if test is not None and len(test) == 0:
        test = None
    retention = dict(train.retention)
    retention.update(d.retention or {})
    unknown = sorted(set(d.retention or {}) - set(skims))
    if unknown:
        raise ConfigError(f"data.retention names skim(s) {unknown} that are not trained ({list(skims)})")
    for skim, eps in retention.items():
        if not 0 < eps < 1:
            raise DataError(f"skim {skim!r} has retention {eps} in the training set: training needs passing and "
                            "failing events (choose skims with --skims, use more events, or set data.retention)")
    splits = Splits(train, val, test, tuple(skims), tuple(full.event_types), full.vocab_size, retention)
    if not quiet:
        for warning in splits.few_passing_warnings():
            print(f"warning: {warning}", file=sys.stderr)
    return splits


def make_loader(dataset, data_cfg, seed, ctx, *, train):
    """The loader of a split: shuffled global batches for training, fixed order for evaluation."""
    batch_size = data_cfg.batch_size if train else (data_cfg.eval_batch_size or data_cfg.batch_size)
    if isinstance(dataset, FeatureDataset):
        return FeatureLoader(dataset, batch_size, shuffle=train, seed=seed, rank=ctx.rank, world_size=ctx.world_size)
    if isinstance(dataset, EventGraphDataset):
        bucket = data_cfg.bucket_window if train or data_cfg.bucket_window is None else 0
        return GlobalBatchLoader(dataset, batch_size, shuffle=train, seed=seed, ctx=ctx, bucket_window=bucket)
    if batch_size % ctx.world_size:
        raise ConfigError(f"data.batch_size {batch_size} must be divisible by the {ctx.world_size} ranks")
    return GraphLoader(dataset, batch_size // ctx.world_size, shuffle=train, seed=seed, rank=ctx.rank,
                       world_size=ctx.world_size, num_workers=data_cfg.num_workers,
                       pin_memory=ctx.device.type == "cuda")


class GlobalBatchLoader:
    """Batches of an in-memory dataset that are the same whatever the number of DDP ranks.

    Each epoch the events are shuffled by (seed, epoch) and cut into global batches of
    ``batch_size`` events, the last one holding the rest but at least K events
    (:func:`smartbkg.data.loader.plan_batches`); rank r of K takes events ``[n*r//K, n*(r+1)//K)``
    of each global batch of n events.

    Args:
        dataset: :class:`~smartbkg.data.dataset.EventGraphDataset` or an index subset of one.
        batch_size: events per global batch (all ranks together), at least the number of ranks.
        shuffle, seed: shuffling of the events every epoch.
        ctx: :class:`~smartbkg.train.distributed.DistContext`.
        bucket_window: length bucketing of the global batches (see :class:`GraphLoader`).
    """

    def __init__(self, dataset, batch_size, *, shuffle, seed, ctx, bucket_window=None):
        self.loader = GraphLoader(dataset, batch_size, shuffle=shuffle, seed=seed, rank=0, world_size=1,
                                  bucket_window=bucket_window)
        self.rank, self.world_size = ctx.rank, ctx.world_size
        if batch_size < self.world_size:
            raise ConfigError(f"batches of {batch_size} events cannot be shared by {self.world_size} ranks; "
                              f"use a data.batch_size of at least {self.world_size}")
        self._cuts()  # fail early on too few events

    def _cuts(self):
        return plan_batches(len(self.loader.dataset), self.loader.batch_size, min_size=self.world_size)

    @property
    def dataset(self):
        return self.loader.dataset

    def set_epoch(self, epoch):
        """Shuffle as epoch ``epoch`` (call before iterating)."""
        self.loader.set_epoch(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        order = torch.from_numpy(self.loader.epoch_order())
        store = self.loader.dataset.store
        cuts = self._cuts().tolist()
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            n = hi - lo
            yield store.batch(order[lo + n * self.rank // self.world_size:lo + n * (self.rank + 1) // self.world_size])


def embedded_sample(data_cfg, run_dir, *, ctx, quiet=False):
    """The folder of the cached embedded sample, generated first if needed (main rank only).

    The folder name holds what defines the sample (events, seed, types); it is written to a
    temporary folder and renamed, so an interrupted generation never leaves a partial cache.
    """
    from ..simulation import produce

    d = data_cfg
    types = sorted(d.generate_types) if d.generate_types else None
    tag = f"embedded-{d.generate_events}ev-seed{d.generate_seed}" + (f"-{'+'.join(types)}" if types else "")
    cache = Path(d.cache_dir) if d.cache_dir else Path(run_dir) / "data"
    folder = cache / tag
    if ctx.is_main and not (folder / "metadata.json").is_file():
        tmp = make_temp_dir(cache, tag)
        if not quiet:
            print(f"generating the embedded sample: {d.generate_events} events (seed {d.generate_seed}) -> {folder}")
        workers = max(1, min(os.cpu_count() or 1, d.generate_events // 20_000))
        produce(tmp, d.generate_events, seed=d.generate_seed, types=types, workers=workers, progress=not quiet)
        try:
            tmp.rename(folder)
        except OSError:  # another process cached the same sample meanwhile
            if not (folder / "metadata.json").is_file():
                raise
    barrier(ctx)
    return folder


def preprocess_config(options):
    """The :class:`~smartbkg.data.preprocess.PreprocessConfig` of a run's ``data.preprocess`` options.

    Args:
        options: the ``data.preprocess`` dict of a :class:`~smartbkg.train.config.RunConfig`;
            ``enabled: false`` turns the preprocessing off, the other keys are the config's fields.

    Returns:
        the config, or None when the preprocessing is off (raw events).
    """
    if options.get("enabled", True) is False:
        return None
    return PreprocessConfig.from_dict({k: v for k, v in options.items() if k != "enabled"})


def _restrict_types(dataset, event_types):
    """The events of ``dataset`` whose type is in ``event_types`` (all when None)."""
    if event_types is None:
        return dataset
    unknown = sorted(set(event_types) - set(dataset.event_types))
    if unknown:
        raise ConfigError(f"data.event_types {unknown} not in the data's event types {list(dataset.event_types)}")
    codes = [dataset.event_types.index(t) for t in event_types]
    return dataset[np.flatnonzero(np.isin(dataset.table.event_type, codes))]


def _same_types(dataset, reference, option):
    if tuple(dataset.event_types) != tuple(reference.event_types) or tuple(dataset.skims) != tuple(reference.skims):
        raise DataError(f"{option}: event types {list(dataset.event_types)} and skims {list(dataset.skims)} differ "
                        f"from the training data's {list(reference.event_types)} and {list(reference.skims)}")
    return dataset


def dataset_size(dataset):
    """Events of an in-memory dataset, or stored events of a streaming one."""
    return dataset.num_events if hasattr(dataset, "num_events") else len(dataset)
