"""Graph datasets of preprocessed events: in memory, or streamed from parquet row groups.

:class:`EventGraphDataset` is a PyG ``Dataset`` (``len``, indexing -> ``Data``, works with
``torch_geometric.loader.DataLoader``) that holds all events as flat tensors
(:class:`~smartbkg.data.graphs.GraphStore`). :class:`StreamingEventGraphDataset` is a torch
``IterableDataset`` of PyG ``Data`` (PyG has no iterable dataset class) that reads parquet row
groups one buffer at a time, for samples that do not fit in memory. One class per behaviour:
each is an instance of what it is.

The in-memory dataset reads every format :func:`~smartbkg.data.read_events` knows or takes an
:class:`~smartbkg.data.table.EventTable`; streaming reads parquet shards (smartbkg or Belle II
smartBKG layout; convert other formats with ``smartbkg-convert`` first). Both validate events
(bad ones are counted, or raise with ``strict=True``), preprocess them
(:mod:`smartbkg.data.preprocess`) and map PDG ids to tokens (:mod:`smartbkg.data.vocab`). What
happened is summed up in ``report`` (a :class:`~smartbkg.data.checks.ReadReport`).

Streaming and sharding: one epoch is the sequence of all events, row group after row group, in
an order shuffled by (seed, epoch). Rank r of W takes the contiguous slice
``[r*N//W, (r+1)*N//W)`` of that sequence, so every event belongs to exactly one rank; the
rank's events are cut into batches that every rank has the same number of
(:func:`smartbkg.data.loader.plan_batches`), and its DataLoader workers take contiguous runs of
those batches. Events are shuffled within buffers of about ``buffer_events`` events.
"""

import numpy as np
import pyarrow as pa
import torch
from torch_geometric.data import Dataset

from ..errors import ConfigError, DataError
from .checks import ReadReport, bad_weights, drop_bad_events, find_bad_events, label_values
from .graphs import GraphStore
from .parquet import open_parquet, parquet_metadata, read_columns, resolve_skims, table_from_arrow
from .preprocess import PreprocessConfig, PreprocessStats, preprocess_with_mask
from .readers import detect_format, expand_paths, read_events
from .table import EVENT_TYPES, NODE_FEATURES, EventTable, skim_names
from .vocab import VOCAB_SIZE, unknown_pdg_counts

#: Default number of events per streaming buffer (the unit of shuffling within a worker).
BUFFER_EVENTS = 65536


def parquet_paths(paths):
    """The files of ``paths`` (files, folders, lists; see :func:`~smartbkg.data.readers.expand_paths`), all parquet."""
    files = expand_paths(paths)
    for path in files:
        if detect_format(path) != "parquet":
            raise ConfigError(f"{path}: streaming reads parquet shards only; convert it with smartbkg-convert")
    return files


def prepare_events(table, *, preprocess, strict, source=None, validate=True):
    """Validate (optionally) and preprocess one table of raw events.

    Args:
        table: raw :class:`~smartbkg.data.table.EventTable`.
        preprocess: :class:`~smartbkg.data.preprocess.PreprocessConfig`, or None to skip it.
        strict: raise on the first bad event instead of skipping it.
        source: file name for messages.
        validate: drop bad events and note unknown PDG ids, as :func:`~smartbkg.data.read_events`
            does (False for tables that come from it).

    Returns:
        (events ready for graphs, (n_raw,) bool mask of the raw events that remain,
        :class:`ReadReport`, :class:`PreprocessStats`).
    """
    good = np.ones(len(table), dtype=bool)
    report = ReadReport(read=len(table), kept=len(table))
    if validate:
        clean, report = drop_bad_events(table, strict=strict, source=source)
        if report.kept < report.read:
            for mask in find_bad_events(table).values():
                good &= ~mask
        for pdg, n in unknown_pdg_counts(clean.particles["pdg"]).items():
            report.notes[f"particles with unknown PDG id {pdg}"] += n
        table = clean
    stats = PreprocessStats(events_in=len(table), events_out=len(table))
    if preprocess is not None:
        table, stats, nonempty = preprocess_with_mask(table, preprocess)
        good[good] = nonempty
        stats.add_to_report(report)
    return table, good, report, stats


def _label_summary(y, weight, skims):
    """(passing counts, weighted retention) per skim from (n, S) labels and (n,) weights; events
    whose weight validation rejects (non-finite or negative) are left out."""
    if weight is not None:
        usable = ~np.logical_or(*bad_weights(weight, len(y)).values())
        y, weight = y[usable], weight[usable]
    counts = dict(zip(skims, y.sum(0).astype(int).tolist()))
    w = np.ones(len(y)) if weight is None else weight.astype(np.float64)
    total = w.sum()
    retention = dict(zip(skims, ((w @ y) / total).tolist() if total > 0 else [float("nan")] * len(skims)))
    return counts, retention


class EventGraphDataset(Dataset):
    """Preprocessed events as PyG graphs, held in memory as flat tensors.

    Args:
        source: event file(s) or folder(s) of any format :func:`~smartbkg.data.read_events` reads,
            or an :class:`EventTable` of raw events.
        skims: label columns to use, in order: a list of names, or one name (default: every skim
            of the data).
        preprocess: :class:`PreprocessConfig` (default Belle II), or None for raw particles.
        strict: raise :class:`~smartbkg.errors.DataError` on the first bad event instead of
            skipping and counting it.
        self_loops: add i->i edges to every graph.
        event_features: give every graph the generator-level skim emulation
            (``event_features``, :mod:`smartbkg.data.skim_emulation`).
        transform: PyG transform applied to items (``dataset[i]``; the fast
            :class:`~smartbkg.data.loader.GraphLoader` refuses datasets with a transform).
        read_options: further keyword arguments of :func:`~smartbkg.data.read_events`
            (``format``, ``rename_skims``, ``default_event_type``, HDF5 and HepMC options).

    Items are ``Data`` with ``x`` (n, 8), ``pdg`` (n,), ``edge_index`` (2, E), ``y`` (1, S),
    ``event_type`` (1,), ``weight`` (1,), ``event_id`` (1,) (see :mod:`smartbkg.data.graphs`).

    Attributes:
        skims, event_types: names of the label columns and of the event type codes.
        report: :class:`ReadReport` of reading, validation and preprocessing.
        preprocess_stats: :class:`PreprocessStats`.
        table: the preprocessed :class:`EventTable`; store: its :class:`GraphStore`.
    """

    def __init__(self, source, skims=None, *, preprocess=PreprocessConfig(), strict=False, self_loops=False,
                 event_features=False, transform=None, read_options=None):
        super().__init__(None, transform)
        self.preprocess_config = preprocess
        if isinstance(source, EventTable):
            table = source if skims is None else source.select_skims(skims)
            self.table, _, report, stats = prepare_events(table, preprocess=preprocess, strict=strict)
        else:
            table, read_report = read_events(source, skims=skims, strict=strict, return_report=True,
                                             **(read_options or {}))
            self.table, _, report, stats = prepare_events(table, preprocess=preprocess, strict=strict,
                                                          validate=False)
            read_report.skipped.update(report.skipped)
            read_report.notes.update(report.notes)
            read_report.kept = report.kept
            report = read_report
        self.store = GraphStore(self.table, self_loops=self_loops, event_features=event_features)
        self.report, self.preprocess_stats = report, stats

    # -------------------------------------------------------------- PyG Dataset
    def len(self):
        return len(self.store)

    def get(self, idx):
        return self.store.data(idx)

    # -------------------------------------------------------------- description
    @property
    def skims(self):
        return self.table.skims

    @property
    def event_types(self):
        return self.table.event_types

    @property
    def vocab_size(self):
        """Number of PDG tokens (embedding size), 0 = unknown."""
        return VOCAB_SIZE

    @property
    def num_node_features(self):
        return len(NODE_FEATURES)

    @property
    def num_skims(self):
        return len(self.skims)

    def events(self):
        """(n,) int64 store indices of this dataset's events (all, or the subset after indexing)."""
        return np.asarray(self.indices(), dtype=np.int64)

    @property
    def label_counts(self):
        """Skim name -> number of passing events (of this dataset's events)."""
        return _label_summary(self.table.labels[self.events()], self._weight(), self.skims)[0]

    @property
    def retention(self):
        """Skim name -> fraction of passing events, weighted with the event weights if any."""
        return _label_summary(self.table.labels[self.events()], self._weight(), self.skims)[1]

    @property
    def event_type_counts(self):
        """Event type name -> number of events."""
        codes = np.bincount(self.table.event_type[self.events()], minlength=len(self.event_types))
        return dict(zip(self.event_types, codes.tolist()))

    def _weight(self):
        return None if self.table.weight is None else self.table.weight[self.events()]


class StreamingEventGraphDataset(torch.utils.data.IterableDataset):
    """Preprocessed events as PyG graphs, read from parquet one buffer of row groups at a time.

    Iterating yields one ``Data`` per event (PyG compatible), sharded over torch.distributed
    ranks and DataLoader workers (ranks may differ by one event, hence by one batch: for DDP
    use :class:`~smartbkg.data.loader.GraphLoader`, which gives every rank the same number of
    batches); :meth:`iter_batches` yields ready ``Batch`` objects and is what ``GraphLoader`` uses.

    Args:
        source: parquet file(s) or folder(s) of shards.
        skims, preprocess, strict, self_loops, event_features: as for :class:`EventGraphDataset`.
        shuffle: shuffle row-group order and events within buffers, by (seed, epoch).
        seed: seed of the shuffling.
        rank, world_size: this process's shard (default: torch.distributed when initialised,
            else 0 of 1).
        buffer_events: events per buffer (shuffling window, and memory per worker).

    Attributes:
        num_events: events in the files (before validation and preprocessing).
        label_counts, retention: per skim, over all events in the files (before validation and
            preprocessing) but those with a non-finite or negative weight.
        report: :class:`ReadReport` of what this process has read so far (for DataLoader
            workers, :class:`~smartbkg.data.loader.GraphLoader` collects their reports).
    """

    def __init__(self, source, skims=None, *, preprocess=PreprocessConfig(), strict=False, self_loops=False,
                 event_features=False, shuffle=True, seed=0, rank=None, world_size=None,
                 buffer_events=BUFFER_EVENTS):
        super().__init__()
        if buffer_events < 1:
            raise ConfigError(f"buffer_events must be at least 1, got {buffer_events}")
        if isinstance(source, EventTable):
            raise ConfigError("StreamingEventGraphDataset reads parquet paths, not an EventTable: keep the table "
                              "in memory (EventGraphDataset), or write it with write_parquet first")
        self.paths = parquet_paths(source)
        skims = skim_names(skims)
        self.preprocess_config, self.strict, self.self_loops = preprocess, strict, self_loops
        self.event_features = bool(event_features)
        self.shuffle, self.seed, self.buffer_events = shuffle, seed, int(buffer_events)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._skims, units, event_types = None, [], []
        labels, weights = [], []
        for i, path in enumerate(self.paths):
            info = _scan_file(path, skims if skims is not None else self._skims)
            if self._skims is None:
                self._skims = tuple(info["skims"])
            elif tuple(info["skims"]) != self._skims:
                raise DataError(f"skims {info['skims']} differ from {list(self._skims)} of {self.paths[0]}",
                                path=path, field="labels")
            units += [(i, g, n) for g, n in enumerate(info["row_groups"])]
            event_types += [t for t in info["event_types"] if t not in event_types]
            labels.append(info["labels"])
            weights.append(info["weight"])
        self._event_types = tuple(event_types)
        self.units = np.asarray(units, dtype=np.int64).reshape(-1, 3)  # file, row group, events
        self.num_events = int(self.units[:, 2].sum())
        y = np.concatenate(labels).astype(np.float64)
        weight = None if all(w is None for w in weights) else np.concatenate(
            [np.ones(len(l), np.float32) if w is None else w for l, w in zip(labels, weights)])
        self.label_counts, self.retention = _label_summary(y, weight, self._skims)
        self.report = ReadReport(files=len(self.paths))
        self.preprocess_stats = PreprocessStats()

    skims = property(lambda self: self._skims)
    event_types = property(lambda self: self._event_types)
    vocab_size = property(lambda self: VOCAB_SIZE)
    num_node_features = property(lambda self: len(NODE_FEATURES))
    num_skims = property(lambda self: len(self._skims))

    def set_epoch(self, epoch):
        """Choose the epoch whose shuffling iteration follows."""
        self.epoch = int(epoch)

    def shard(self):
        """(rank, world_size) of this process: the arguments, else torch.distributed, else (0, 1)."""
        return resolve_shard(self.rank, self.world_size)

    # -------------------------------------------------------------- iteration
    def __iter__(self):
        """One ``Data`` per event of this rank and worker, in the epoch's order."""
        rank, world = self.shard()
        worker = torch.utils.data.get_worker_info()
        wid, workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        lo, hi = self.num_events * rank // world, self.num_events * (rank + 1) // world
        lo, hi = lo + (hi - lo) * wid // workers, lo + (hi - lo) * (wid + 1) // workers
        cuts = np.append(np.arange(lo, hi, self.buffer_events), hi)
        for store, runs, reports in self.stream(cuts, self.epoch):
            self._account(reports)
            for events in runs:
                for i in events.tolist():
                    yield store.data(i)

    def iter_batches(self, cuts, epoch, shuffle=None, seed=None):
        """``(Batch, reports)`` for consecutive runs of the epoch's event sequence.

        Args:
            cuts: (m + 1,) increasing positions in the epoch's sequence of (raw) events; batch k
                holds the events of ``[cuts[k], cuts[k + 1])`` that survive validation and
                preprocessing (see :func:`smartbkg.data.loader.plan_batches`).
            epoch: the epoch (shuffling).
            shuffle, seed: override the dataset's shuffling settings.

        Yields:
            one ``Batch`` per run (possibly with fewer graphs than planned, when events were
            dropped); ``reports`` is the buffer's (ReadReport, PreprocessStats) with its first
            batch and None with the others.
        """
        for store, runs, reports in self.stream(cuts, epoch, shuffle, seed):
            # The buffer's store serves these batches only, so they may share its memory.
            for k, batch in enumerate(store.batches(runs, views=True)):
                yield batch, (reports if k == 0 else None)

    def stream(self, cuts, epoch, shuffle=None, seed=None):
        """``(GraphStore, runs, reports)`` per buffer: the store of the buffer's surviving events,
        the store indices of each run of ``cuts`` in it, and its (ReadReport, PreprocessStats).

        Buffers are unions of consecutive runs holding about ``buffer_events`` events; the
        events of a buffer are shuffled (seeded by seed, epoch and the buffer's start) before
        the runs are cut, so the result does not depend on how runs are spread over workers.
        The store holds the events in the order they are served, so each run is a range of
        consecutive store indices.
        """
        shuffle = self.shuffle if shuffle is None else shuffle
        seed = self.seed if seed is None else seed
        cuts = np.asarray(cuts, dtype=np.int64)
        order = self.epoch_units(epoch, shuffle, seed)
        starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(order[:, 2], out=starts[1:])
        reader = _RowGroupReader(self)
        first = 0
        while first < len(cuts) - 1:
            last = first + 1  # runs [first, last) form the buffer
            while last < len(cuts) - 1 and cuts[last] - cuts[first] < self.buffer_events:
                last += 1
            yield self._buffer(reader, order, starts, cuts[first:last + 1],
                               [seed, epoch, int(cuts[first])] if shuffle else None)
            first = last

    def epoch_units(self, epoch, shuffle=True, seed=0):
        """(U, 3) [file, row group, events] in the epoch's order."""
        if not shuffle:
            return self.units
        return self.units[np.random.default_rng([seed, epoch]).permutation(len(self.units))]

    def _buffer(self, reader, order, starts, cuts, shuffle_seed):
        """Read, prepare and cut one buffer; ``shuffle_seed`` None keeps the file order."""
        lo, hi = int(cuts[0]), int(cuts[-1])
        pieces, alive, report, stats = [], [], ReadReport(), PreprocessStats()
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        for u in range(max(first, 0), len(order)):
            if starts[u] >= hi:
                break
            a, b = max(lo - starts[u], 0), min(hi - starts[u], order[u, 2])
            file, group = int(order[u, 0]), int(order[u, 1])
            table, built = reader.read(file, group, int(a), int(b), strict=self.strict, report=report)
            table, keep, part_report, part_stats = prepare_events(
                table, preprocess=self.preprocess_config, strict=self.strict, source=self.paths[file])
            pieces.append(table)
            built[built] = keep
            alive.append(built)
            report += part_report
            stats += part_stats
        alive = np.concatenate(alive)
        # Shuffle raw positions; the surviving events, in that order, are the store's events
        # (order: their indices among the survivors in file order), and run k the k-th range.
        order, served = None, alive
        if shuffle_seed is not None:
            raw = np.random.default_rng(shuffle_seed).permutation(hi - lo)
            served = alive[raw]
            order = (np.cumsum(alive) - 1)[raw[served]]
        store = GraphStore.from_tables(pieces, self_loops=self.self_loops, order=order,
                                       event_features=self.event_features)
        at = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(served, out=at[1:])
        bounds = at[cuts - lo]
        return store, [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])], (report, stats)

    def _account(self, reports):
        """Add a buffer's (ReadReport, PreprocessStats), if any, to this dataset's."""
        if reports is not None:
            self.report += reports[0]
            self.preprocess_stats += reports[1]


class _RowGroupReader:
    """Reads slices of row groups as raw event tables, keeping the last row group read."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.cached = (None, None, None)  # (file, group, arrow table)
        self.files = {}

    def read(self, file, group, a, b, *, strict, report):
        """(table, (b - a,) bool mask of the rows that could be built) of events a:b of a row
        group; events that cannot be built are counted in ``report`` (see
        :func:`~smartbkg.data.parquet.table_from_arrow`)."""
        if self.cached[:2] != (file, group):
            path = self.dataset.paths[file]
            try:
                f = self.files.get(file) or self.files.setdefault(file, open_parquet(path))
                columns = read_columns(f, parquet_metadata(f.schema_arrow, path), self.dataset.skims)
                self.cached = (file, group, f.read_row_group(group, columns=columns, use_threads=False))
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"cannot read row group {group} ({str(exc).strip().splitlines()[0]})",
                                path=path) from None
        f = self.files[file]
        meta = parquet_metadata(f.schema_arrow, self.dataset.paths[file])
        table, built = table_from_arrow(self.cached[2].slice(a, b - a), skims=self.dataset.skims,
                                        event_types=meta.get("event_types"), path=self.dataset.paths[file],
                                        strict=strict, report=report)
        remap = np.array([self.dataset.event_types.index(t) for t in table.event_types], dtype=np.int16)
        return table.replace(event_type=remap[table.event_type], event_types=self.dataset.event_types), built


def _scan_file(path, skims):
    """Row-group sizes, skims, event type names, labels and weights of a parquet file (small columns only)."""
    try:
        f = open_parquet(path)
        meta = parquet_metadata(f.schema_arrow, path)
        skims = resolve_skims(meta, f.schema_arrow.names, skims, path)
        names = f.schema_arrow.names
        small = f.read(columns=[*skims, *[c for c in ("event_type", "weight") if c in names]], use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read parquet file ({str(exc).strip().splitlines()[0]})", path=path) from None
    # Values that are no 0/1 decision count as 0 here; reading the row group skips their events.
    labels = np.stack([label_values(small.column(s).to_numpy(zero_copy_only=False), path, s)[0] for s in skims],
                      axis=1) \
        if skims else np.zeros((f.metadata.num_rows, 0), bool)
    # The same order as parquet.table_from_arrow gives the events of this file.
    if "event_type" in names:
        types = list(meta.get("event_types") or EVENT_TYPES)
        column = small.column("event_type").combine_chunks()
        values = column.dictionary if pa.types.is_dictionary(column.type) else column.unique()
        types += [str(t) for t in values.to_pylist() if str(t) not in types]
    else:
        types = [*EVENT_TYPES, "unknown"]
    weight = small.column("weight").to_numpy().astype(np.float32) if "weight" in names else None
    return {"skims": skims, "row_groups": [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)],
            "event_types": types, "labels": labels, "weight": weight}


def resolve_shard(rank=None, world_size=None):
    """(rank, world_size): the given values, else torch.distributed's when initialised, else (0, 1)."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} outside 0..{world_size - 1}")
    return int(rank), int(world_size)

