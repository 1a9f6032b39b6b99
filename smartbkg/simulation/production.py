"""Parallel, deterministic production of the embedded default sample.

A sample is defined by (seed, events per type, chunk size, beams, detector, skims). The events
of each type are cut into fixed chunks of ``chunk_size``; chunk c of type t is one task whose
Pythia seed derives from (seed, t, c) and whose events get the identifiers ``t << 40 | index``
(index counted within the type). The fast detector and the record's own random numbers (beam
spot, B-pair axis) are addressed by (seed, event identifier), so an event's content and labels
never depend on the number of worker processes or on which worker ran its chunk, and the
first N events of a type are the same whatever the total. Tasks are interleaved by type and
their results consumed in task order.

:func:`generate` returns the events as one :class:`~smartbkg.data.table.EventTable`;
:func:`produce` writes parquet shards and ``metadata.json``.
"""

import json
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.parquet import write_parquet
from ..data.table import EVENT_TYPES, EventTable
from ..errors import ConfigError
from .beams import Beams
from .detector import DetectorConfig, reconstruct
from .event_types import EVENT_TYPE_SPECS, MIXES, events_per_type, resolve_types
from .pythia import PythiaGenerator, pythia_settings
from .record import align_pair_axis, collapse_record, to_belle2_lab
from .rng import CounterRNG
from .skims import SKIMS, apply_skims

#: Events per task; part of the definition of a sample (with the seed).
CHUNK_SIZE = 1000
#: Bits of the event identifier below the event type code.
TYPE_SHIFT = 40
#: Pythia accepts seeds in [1, 900_000_000].
_PYTHIA_SEED_RANGE = 900_000_000


@dataclass(frozen=True)
class SampleConfig:
    """Everything that defines a generated sample.

    Args:
        n_events: total number of events.
        seed: production seed (non-negative integer).
        types: event type names (default all seven).
        mix: ``"cross-section"`` or ``"equal"``, see :func:`~smartbkg.simulation.event_types.events_per_type`.
        chunk_size: events per task.
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        detector: :class:`~smartbkg.simulation.detector.DetectorConfig`.
        skims: skim names (label columns).
    """

    n_events: int
    seed: int = 0
    types: tuple = EVENT_TYPES
    mix: str = "cross-section"
    chunk_size: int = CHUNK_SIZE
    beams: Beams = field(default_factory=Beams)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    skims: tuple = SKIMS

    def __post_init__(self):
        object.__setattr__(self, "types", resolve_types(self.types))
        object.__setattr__(self, "skims", tuple(self.skims))
        unknown = [s for s in self.skims if s not in SKIMS]
        if unknown:
            raise ConfigError(f"unknown skim(s) {unknown}; choose from {list(SKIMS)}")
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.n_events, (int, np.integer)) or self.n_events < 1:
            raise ConfigError(f"number of events must be a positive integer, got {self.n_events!r}")
        if not isinstance(self.chunk_size, (int, np.integer)) or not 1 <= self.chunk_size <= 100_000:
            raise ConfigError(f"chunk size must be an integer in 1..100000, got {self.chunk_size!r}")
        if self.mix not in MIXES:
            raise ConfigError(f"unknown mix {self.mix!r}; choose from {list(MIXES)}")

    @property
    def counts(self):
        """dict type -> number of events."""
        return events_per_type(self.n_events, self.types, self.mix)

    def tasks(self):
        """The tasks, interleaved by type: list of (type, chunk index, first index, n_events)."""
        per_type = {t: [(t, c, first, min(self.chunk_size, n - first))
                        for c, first in enumerate(range(0, n, self.chunk_size))]
                    for t, n in self.counts.items()}
        longest = max((len(v) for v in per_type.values()), default=0)
        return [chunks[c] for c in range(longest) for chunks in per_type.values() if c < len(chunks)]

    def derived_seed(self, *words):
        """A 63-bit seed derived from the production seed and ``words`` (integers)."""
        state = np.random.SeedSequence([int(self.seed), *map(int, words)]).generate_state(2, np.uint32)
        return (int(state[0]) << 31) ^ int(state[1])

    def pythia_seed(self, event_type, chunk):
        """Pythia's seed (1..900_000_000) for chunk ``chunk`` of ``event_type``."""
        return self.derived_seed(_PYTHIA_STREAM, EVENT_TYPES.index(event_type), chunk) % _PYTHIA_SEED_RANGE + 1

    def seeds(self):
        """The seeds of the sample and how the per-task ones are derived (for the metadata)."""
        return {"production": int(self.seed),
                "pythia": f"SeedSequence([seed, {_PYTHIA_STREAM}, type code, chunk]) % {_PYTHIA_SEED_RANGE} + 1, "
                          "per chunk",
                "pythia_by_task": {t: [self.pythia_seed(t, c) for c in range(-(-n // self.chunk_size))]
                                   for t, n in self.counts.items()},
                "record": self.derived_seed(_RECORD_STREAM),
                "detector": self.derived_seed(_DETECTOR_STREAM),
                "shard_shuffle": f"SeedSequence([seed, {_SHUFFLE_STREAM}, shard index])"}

    def to_dict(self):
        return {"n_events": int(self.n_events), "seed": int(self.seed), "types": list(self.types),
                "mix": self.mix, "chunk_size": int(self.chunk_size), "beams": self.beams.to_dict(),
                "detector": self.detector.to_dict(), "skims": list(self.skims)}


# Stream numbers of the derived seeds.
_PYTHIA_STREAM, _RECORD_STREAM, _DETECTOR_STREAM, _SHUFFLE_STREAM = 1, 2, 3, 4

#: Pythia generators of this process, by (event type, sqrt(s), batch size).
_GENERATORS = {}


def _generator(event_type, e_cm, chunk_size):
    """This process's Pythia generator for a type, built on first use.

    Returns:
        (:class:`PythiaGenerator`, seconds spent building and initialising it now: 0.0 when it
        existed already).
    """
    key = (event_type, e_cm, chunk_size)
    if key in _GENERATORS:
        return _GENERATORS[key], 0.0
    start = time.perf_counter()
    _GENERATORS[key] = PythiaGenerator(event_type, e_cm, max_batch=chunk_size)
    return _GENERATORS[key], time.perf_counter() - start


def run_task(config, task, event_filter=None):
    """Generate, reconstruct and skim one chunk of events.

    Args:
        config: :class:`SampleConfig`.
        task: (type, chunk index, first index, n_events) from :meth:`SampleConfig.tasks`.
        event_filter: production mode: a callable ``table -> (keep (n,) bool, {column: (n,)
            array})`` run between generation and the detector (e.g.
            :class:`smartbkg.filter.stage.FilterStage`); only the kept events are reconstructed,
            skimmed and returned, with their columns. The detector response of an event depends
            only on its identifier, so a kept event gets the labels it has in an unfiltered run.

    Returns:
        (:class:`EventTable` with labels, dict of seconds: ``initialisation_s`` (building and
        initialising this process's Pythia for the type, paid by its first task only, else 0.0),
        ``generation_s`` (Pythia events, record, lab frame), ``filter_s`` and ``detector_skims_s``,
        plus ``events_generated``; dict of the filter's columns of the returned events, {}
        without a filter).
    """
    event_type, chunk, first, n = task
    code = EVENT_TYPES.index(event_type)
    beams = config.beams
    generator, initialisation_s = _generator(event_type, beams.e_cm, config.chunk_size)
    start = time.perf_counter()
    offsets, raw = generator.generate(n, config.pythia_seed(event_type, chunk))
    offsets, rec = collapse_record(offsets, raw)
    event_id = (np.int64(code) << TYPE_SHIFT) + first + np.arange(n, dtype=np.int64)
    rng = CounterRNG(config.derived_seed(_RECORD_STREAM))
    if EVENT_TYPE_SPECS[event_type].process == "upsilon4s":
        align_pair_axis(offsets, rec, event_id, rng)
    particles = to_belle2_lab(offsets, rec, beams, event_id, rng)
    table = EventTable(offsets, particles, np.zeros((n, 0), bool), (), np.full(n, code), EVENT_TYPES,
                       event_id=event_id)
    generated = time.perf_counter()
    columns = {}
    if event_filter is not None:
        keep, columns = event_filter(table)
        table, columns = table.take(np.flatnonzero(keep)), {k: v[keep] for k, v in columns.items()}
    filtered = time.perf_counter()
    reco = reconstruct(table, config.derived_seed(_DETECTOR_STREAM), config.detector)
    labels = apply_skims(reco, beams, config.skims)
    done = time.perf_counter()
    return (table.replace(labels=labels, skims=config.skims),
            {"initialisation_s": initialisation_s, "generation_s": generated - start, "filter_s": filtered - generated,
             "detector_skims_s": done - filtered, "events_generated": n}, columns)


def _check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")


def _run_task_star(args):
    return run_task(*args)


def _results(tasks, results, bar):
    """(task, table, timing, columns) of each task in order, counting generated events on ``bar``."""
    for task, (table, timing, columns) in zip(tasks, results):
        if bar is not None:
            bar.update(task[3])
        yield task, table, timing, columns


def run_tasks(config, workers=1, progress=False, event_filter=None, shard=None):
    """Run all tasks of a sample, yielding (task, table, timing, columns) in task order.

    Args:
        config: :class:`SampleConfig`.
        workers: number of processes (1: in this process).
        progress: show a tqdm progress bar (events generated).
        event_filter: see :func:`run_task` (picklable when ``workers > 1``).
        shard: :class:`smartbkg.filter.shard.Shard`: run only its share of the tasks.
    """
    _check_workers(workers)
    tasks = config.tasks()
    if shard is not None:
        tasks = tasks[slice(*shard.span(len(tasks)))]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(task[3] for task in tasks), unit="ev", desc="generate", smoothing=0.05)
    try:
        if workers == 1:
            yield from _results(tasks, (run_task(config, task, event_filter) for task in tasks), bar)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, max(len(tasks), 1))) as pool:
                results = pool.imap(_run_task_star, [(config, task, event_filter) for task in tasks])
                yield from _results(tasks, results, bar)
    finally:
        if bar is not None:
            bar.close()


def generate(n_events, seed=0, types=None, mix="cross-section", workers=1, preprocess=False,
             progress=False, shuffle=True, **options):
    """Generate events with detector response and skim labels, in memory.

    Args:
        n_events: total number of events.
        seed: production seed; the same seed and settings give identical events for any ``workers``.
        types: event type names (default all seven).
        mix: ``"cross-section"`` (default) or ``"equal"``.
        workers: worker processes.
        preprocess: apply the Belle II preprocessing (:func:`smartbkg.data.preprocess.preprocess`)
            to the records after the labels are made.
        progress: show a progress bar.
        shuffle: put the events in a random order (seeded by the production seed), so that any
            slice of the table is a sample of the mix; False keeps them grouped by task (chunks of
            one type, types interleaved). ``event_id`` identifies an event either way.
        **options: further :class:`SampleConfig` fields (``chunk_size``, ``beams``, ``detector``, ``skims``).

    Returns:
        :class:`~smartbkg.data.table.EventTable` with one label column per skim (GeV, cm, ns,
        lab frame).
    """
    config = SampleConfig(n_events=n_events, seed=seed, types=resolve_types(types), mix=mix, **options)
    table = EventTable.concat([t for _, t, _, _ in run_tasks(config, workers, progress)])
    if shuffle:
        table = table.take(np.random.default_rng(config.derived_seed(_SHUFFLE_STREAM)).permutation(len(table)))
    if preprocess:
        from ..data.preprocess import preprocess as belle2_preprocess

        table, _ = belle2_preprocess(table)
    return table


class _Summary:
    """Counts, skim passes and timings per event type, summed over tasks.

    Events and times per event count generated events. With a filter (``filtered``) the passes
    of a skim are the weighted passes of the kept events (column ``weight_<skim>``), an unbiased
    estimate of the passes among the generated events, and NaN for skims the filter does not
    decide on; ``kept`` counts the kept events.
    """

    def __init__(self, config, filtered=False):
        self.config, self.filtered = config, filtered
        self.events = dict.fromkeys(config.types, 0)
        self.kept = dict.fromkeys(config.types, 0)
        self.passed = {t: np.zeros(len(config.skims)) for t in config.types}
        self.particles = dict.fromkeys(config.types, 0)
        self.initialisation_s = dict.fromkeys(config.types, 0.0)
        self.generation_s = dict.fromkeys(config.types, 0.0)
        self.filter_s = dict.fromkeys(config.types, 0.0)
        self.detector_skims_s = dict.fromkeys(config.types, 0.0)

    def add(self, event_type, table, timing, columns):
        self.events[event_type] += timing["events_generated"]
        self.kept[event_type] += len(table)
        if self.filtered:
            self.passed[event_type] += [(table.labels[:, j] * columns.get(f"weight_{skim}", np.nan)).sum()
                                        for j, skim in enumerate(self.config.skims)]
        else:
            self.passed[event_type] += table.labels.sum(axis=0)
        self.particles[event_type] += table.n_particles
        self.initialisation_s[event_type] += timing["initialisation_s"]
        self.generation_s[event_type] += timing["generation_s"]
        self.filter_s[event_type] += timing["filter_s"]
        self.detector_skims_s[event_type] += timing["detector_skims_s"]

    def to_dict(self):
        total = sum(self.events.values())
        passed_all = sum(self.passed.values())
        def fraction(passed, events):
            return float(passed / events) if events and np.isfinite(passed) else None

        retention = {skim: {t: fraction(self.passed[t][j], self.events[t]) for t in self.config.types}
                     for j, skim in enumerate(self.config.skims)}
        for j, skim in enumerate(self.config.skims):
            retention[skim]["all"] = fraction(passed_all[j], total)
        count = float if self.filtered else int

        def per_event(seconds):
            out = {t: (seconds[t] / self.events[t] if self.events[t] else None) for t in self.config.types}
            out["all"] = sum(seconds.values()) / total if total else None
            return out

        kept = {"kept": {**self.kept, "all": sum(self.kept.values())}} if self.filtered else {}
        return {
            "events": {**self.events, "all": total},
            **kept,
            "passed": {skim: {**{t: count(self.passed[t][j]) for t in self.config.types}, "all": count(passed_all[j])}
                       for j, skim in enumerate(self.config.skims)},
            "retention": retention,
            "particles_per_event": {t: (self.particles[t] / self.events[t] if self.events[t] else None)
                                    for t in self.config.types},
            # Pythia set-up, once per worker process and type; not in the per-event figures.
            "initialisation_s": {**self.initialisation_s, "all": sum(self.initialisation_s.values())},
            "seconds_per_event": {"generation": per_event(self.generation_s),
                                  **({"filter": per_event(self.filter_s)} if self.filtered else {}),
                                  "detector_skims": per_event(self.detector_skims_s)},
        }


def _versions():
    import pythia8mc
    from importlib.metadata import PackageNotFoundError, version

    def dist(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    pythia = pythia8mc.Pythia("", False)
    return {"smartbkg": __version__, "pythia8mc": dist("pythia8mc"),
            "pythia": pythia.settings.parm("Pythia:versionNumber"), "numpy": np.__version__,
            "pyarrow": dist("pyarrow"), "python": platform.python_version()}


def produce(output, n_events, seed=0, types=None, mix="cross-section", workers=1, preprocess=False,
            events_per_shard=100_000, progress=False, event_filter=None, shard=None, **options):
    """Generate a sample and write it as smartbkg parquet shards plus ``metadata.json``.

    Args:
        output: output directory: a new or an empty one (created with its parents).
        events_per_shard: events per parquet file (events shuffled within each shard with a
            seed derived from the production seed).
        event_filter: production mode (see :func:`run_task`): only the kept events are simulated
            and written, with the filter's columns (``p_<skim>``, ``weight_<skim>``); the
            metadata gets the filter's description, the kept events and the filter's time.
        shard: ``"K/N"`` or :class:`smartbkg.filter.shard.Shard`: produce only shard K of the
            tasks (see :mod:`smartbkg.filter.shard`); N shards hold the events of one unsharded run.
        others: as :func:`generate`.

    Returns:
        the metadata dict (also written to ``output/metadata.json``).
    """
    config = SampleConfig(n_events=n_events, seed=seed, types=resolve_types(types), mix=mix, **options)
    _check_workers(workers)
    if isinstance(events_per_shard, bool) or not isinstance(events_per_shard, (int, np.integer)) \
            or events_per_shard < 1:
        raise ConfigError(f"events per shard must be a positive integer, got {events_per_shard!r}")
    from ..filter.shard import parse_shard

    shard = parse_shard(shard)
    output = new_output_directory(output)
    stats = None
    if preprocess:
        from ..data.preprocess import PreprocessStats, preprocess_with_mask
        stats = PreprocessStats()

    summary = _Summary(config, filtered=event_filter is not None)
    shards, pending = [], []
    n_pending = 0
    start = time.perf_counter()

    def flush():
        nonlocal pending, n_pending, stats
        table = EventTable.concat([t for t, _ in pending])
        columns = {k: np.concatenate([c[k] for _, c in pending]) for k in pending[0][1]}
        order = np.random.default_rng(config.derived_seed(_SHUFFLE_STREAM, len(shards))).permutation(len(table))
        table, columns = table.take(order), {k: v[order] for k, v in columns.items()}
        if preprocess:
            table, shard_stats, nonempty = preprocess_with_mask(table)
            columns = {k: v[nonempty] for k, v in columns.items()}
            stats += shard_stats
        name = f"events-{len(shards):05d}.parquet"
        _writing(write_parquet, table, output / name, **({"columns": columns} if columns else {}))
        shards.append({"file": name, "events": len(table)})
        pending, n_pending = [], 0

    for (event_type, _, _, _), table, timing, columns in run_tasks(config, workers, progress, event_filter, shard):
        summary.add(event_type, table, timing, columns)
        while len(table):
            room = events_per_shard - n_pending
            pending.append((table[:room], {k: v[:room] for k, v in columns.items()}))
            n_pending += min(room, len(table))
            table, columns = table[room:], {k: v[room:] for k, v in columns.items()}
            if n_pending == events_per_shard:
                flush()
    if pending:
        flush()

    metadata = {
        "generator": "smartbkg.simulation (Pythia 8 + fast Belle II-like detector + skims)",
        "versions": _versions(),
        "config": config.to_dict(),
        "seeds": config.seeds(),
        "events_per_type": config.counts,
        "cross_sections_nb": {t: EVENT_TYPE_SPECS[t].cross_section for t in config.types},
        "pythia_settings": {t: pythia_settings(t, config.beams.e_cm, PythiaGenerator.LHE_PLACEHOLDER)
                            for t in config.types},
        "event_id": f"(event type code << {TYPE_SHIFT}) | index within the type; type codes {list(EVENT_TYPES)}",
        "preprocessed": bool(preprocess),
        "preprocess_stats": stats.to_dict() if preprocess else None,
        "workers": int(workers),
        "shard": None if shard is None else {"shard": str(shard), "tasks": list(shard.span(len(config.tasks())))},
        "filter": None if event_filter is None else event_filter.describe(),
        "wall_time_s": time.perf_counter() - start,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "shards": shards,
        **summary.to_dict(),
    }
    _writing(_write_json, metadata, output / "metadata.json")
    return metadata


def new_output_directory(output):
    """Create an output directory (of :func:`produce`, of the filter), which must not exist or be empty.

    Returns:
        the directory as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: (one line) the path is a file or a non-empty directory, or cannot be created.
    """
    output = Path(output)
    try:
        if output.exists() and not output.is_dir():
            raise ConfigError(f"output {output} exists and is not a directory")
        if output.is_dir() and any(output.iterdir()):
            raise ConfigError(f"output directory {output} is not empty; choose a new or empty directory "
                              f"(e.g. {_unused_sibling(output)})")
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {output}: {exc.strerror or exc}") from None
    return output


def _unused_sibling(path):
    """The first of ``path-2``, ``path-3`` ... that does not exist (a suggestion for the user)."""
    path = path.resolve()
    base = path if path.name else path / "sample"
    k = 2
    while base.with_name(f"{base.name}-{k}").exists():
        k += 1
    return base.with_name(f"{base.name}-{k}")


def _writing(write, data, path, **options):
    """``write(data, path, **options)``, with an operating-system error turned into a one-line ConfigError."""
    try:
        write(data, path, **options)
    except OSError as exc:
        raise ConfigError(f"cannot write output file {path}: {exc.strerror or exc}") from None


def _write_json(data, path):
    """Write ``data`` as indented JSON, atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
