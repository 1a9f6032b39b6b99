"""Stream events of any supported format through a :class:`~smartbkg.filter.Filter` into parquet shards.

:func:`apply_filter` reads the inputs chunk by chunk (parquet in whole row groups, HepMC in
chunks of events; HDF5 files are read whole), so memory is bounded by the chunk and the output
shard size, not by the input size. Each chunk goes through the run's preprocessing, the network
and the calibration; the shared-uniform rule decides which events are kept. The uniform number
of event j (its position in the input, counted after validation over all inputs in order) is a
counter-based random number of (seed, j), so the decisions are the same whatever the chunking
or the ``--shard`` split.

Output, in the canonical smartbkg layout (readable by every reader of the package):

* ``part-00000.parquet`` ...: the kept events (their raw generator records, labels and event
  types as read) with the columns ``p_<skim>`` (sampling probability) and ``weight_<skim>``
  (1/p where the event counts for the skim, 0 where it does not);
* ``summary.json``: events read, in the shard, kept and skipped (with reasons); expected and
  observed kept fraction; per skim the expected kept fraction and effective sample size and,
  where the input has the skim's labels, the weighted yield against the true one and the speedup;
  wall time per stage and network ms/event (wall and CPU time).

Shards are written to a temporary name and renamed when complete, and ``summary.json`` is
written last: a run that crashes leaves no shard that looks complete but is not, and no summary.
"""

import platform
import sys
import time

import numpy as np
from tqdm import tqdm

from ..data.checks import ReadReport
from ..data.convert import SHARD_PATTERN
from ..data.parquet import write_parquet
from ..data.readers import expand_paths, iter_events
from ..data.table import EventTable
from ..errors import ConfigError, DataError
from ..locking import locked_folder
from ..simulation.production import new_output_directory
from ..simulation.rng import CounterRNG
from ..train.logging import write_json
from .decision import shared_uniform, union_speedup
from .shard import parse_shard, shard_chunks

SUMMARY = "summary.json"
#: Stream name of the filter's uniform numbers (see :class:`~smartbkg.simulation.rng.CounterRNG`).
UNIFORM_STREAM = "filter/uniform"


def filter_uniforms(seed, positions):
    """The filter's uniform number of each event position (n,) under ``seed``: (n,) float64 in [0, 1)."""
    return CounterRNG(seed).uniform(UNIFORM_STREAM, positions)


class FilterTally:
    """Sums over the filtered events, from which the summary's expectations and observations come.

    Args:
        skims: the filter's skims.
    """

    def __init__(self, skims):
        self.skims = tuple(skims)
        s = len(self.skims)
        self.events = self.kept = self.unscored = 0
        self.sum_max_p = self.sum_independent = 0.0
        self.sum_p, self.sum_inv_p = np.zeros(s), np.zeros(s)
        self.counted, self.sum_w, self.sum_w2 = np.zeros(s, np.int64), np.zeros(s), np.zeros(s)
        # passing events, where the input has labels of the skim
        self.labelled = np.zeros(s, bool)
        self.passing, self.pass_p, self.pass_inv_p = np.zeros(s, np.int64), np.zeros(s), np.zeros(s)
        self.pass_w, self.pass_var = np.zeros(s), np.zeros(s)

    def add(self, table, decision, unscored):
        """Add a chunk: its (raw) ``table``, :class:`Decision` and the number of events it could not score."""
        p, w = decision.p, decision.weight
        self.events += len(p)
        self.kept += int(decision.keep.sum())
        self.unscored += int(unscored)
        self.sum_max_p += float(p.max(axis=1).sum()) if len(p) else 0.0
        self.sum_independent += float((1 - np.prod(1 - p, axis=1)).sum())
        self.sum_p += p.sum(axis=0)
        self.sum_inv_p += (1 / p).sum(axis=0)
        self.counted += decision.counts.sum(axis=0)
        self.sum_w += w.sum(axis=0)
        self.sum_w2 += (w * w).sum(axis=0)
        for j, skim in enumerate(self.skims):
            if skim not in table.skims:
                continue
            self.labelled[j] = True
            y = table.labels[:, table.skims.index(skim)]
            self.passing[j] += int(y.sum())
            self.pass_p[j] += p[y, j].sum()
            self.pass_inv_p[j] += (1 / p[y, j]).sum()
            self.pass_w[j] += w[y, j].sum()
            self.pass_var[j] += ((1 - p[y, j]) / p[y, j]).sum()

    def summary(self, timings):
        """The summary dict (expected and observed fractions, per-skim figures)."""
        n = self.events
        kept_fraction = self.sum_max_p / n if n else float("nan")
        per_skim = {}
        for j, skim in enumerate(self.skims):
            entry = {
                "expected_kept_fraction": self.sum_p[j] / n if n else None,
                "counted": int(self.counted[j]),
                "expected_n_eff": n * n / self.sum_inv_p[j] if n else 0.0,
                "observed_n_eff": self.sum_w[j] ** 2 / self.sum_w2[j] if self.sum_w2[j] else 0.0,
                "weighted_events": self.sum_w[j],
            }
            if self.labelled[j] and self.passing[j]:
                a_eff = self.passing[j] / self.pass_inv_p[j]
                entry.update({
                    "passing": int(self.passing[j]),
                    "weighted_yield": self.pass_w[j],
                    "weighted_yield_error": float(np.sqrt(self.pass_var[j])),
                    "yield_pull": (self.pass_w[j] - self.passing[j]) / np.sqrt(self.pass_var[j])
                    if self.pass_var[j] > 0 else None,
                    "expected_n_eff_passing": self.passing[j] * a_eff,
                    "a_eff": a_eff,
                    "speedup_alone": union_speedup(self.sum_p[j] / n, a_eff, **timings),
                    "speedup": union_speedup(kept_fraction, a_eff, **timings),
                })
            per_skim[skim] = _plain(entry)
        return {
            "events": n,
            "kept": self.kept,
            "unscored_kept_with_p_1": self.unscored,
            "kept_fraction": {"expected": kept_fraction, "observed": self.kept / n if n else None,
                              "independent_draws": self.sum_independent / n if n else None},
            "skims": per_skim,
        }


def _plain(entry):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in entry.items()}


def apply_filter(flt, inputs, out, *, seed=0, shard=None, events_per_shard=100_000, chunk_events=65_536,
                 format=None, default_event_type="unknown", strict=False, progress=False, **read_options):
    """Filter the events of ``inputs`` and write the kept ones to ``out`` (see the module docstring).

    Args:
        flt: :class:`~smartbkg.filter.Filter`.
        inputs: files or folders of any format :func:`~smartbkg.data.read_events` reads.
        out: output folder, new or empty.
        seed: seed of the keep decisions.
        shard: ``"K/N"`` or :class:`~smartbkg.filter.shard.Shard`: process only events j with
            j mod N = K - 1.
        events_per_shard: kept events per output file.
        chunk_events: events read at a time.
        format, default_event_type, strict, read_options: as for :func:`~smartbkg.data.read_events`.
        progress: show a progress bar (events read).

    Returns:
        the summary dict (also written to ``out/summary.json``).
    """
    shard = parse_shard(shard)
    for name, value in (("events per shard", events_per_shard), ("chunk events", chunk_events)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    files = expand_paths(inputs)
    report = ReadReport()
    chunks = iter_events(files, format=format, default_event_type=default_event_type, strict=strict,
                         chunk_events=chunk_events, report=report, **read_options)
    out = new_output_directory(out)
    with locked_folder(out):  # one writer per output folder
        tally = FilterTally(flt.skims)
        writer = _ShardWriter(out, events_per_shard)
        seconds = {"read": 0.0, "decide": 0.0}
        start = tick = time.perf_counter()
        # No bar without a terminal (batch logs, pipes): the summary says it all.
        with tqdm(disable=None if progress else True, unit="ev", desc="filter", file=sys.stderr) as bar:
            for path, table, positions in shard_chunks(chunks, shard):
                seconds["read"] += time.perf_counter() - tick
                try:
                    logits = flt.logits(table)
                except DataError as exc:  # say which file
                    raise DataError(exc.reason, path=path, field=exc.field) from None
                p = flt.calibrate(logits)
                tick = time.perf_counter()
                decision = shared_uniform(p, filter_uniforms(seed, positions), flt.skims)
                tally.add(table, decision, np.isnan(logits).any(axis=1).sum())
                seconds["decide"] += time.perf_counter() - tick
                writer.add(table.take(np.flatnonzero(decision.keep)), decision.take(decision.keep).columns())
                bar.update(len(table))
                tick = time.perf_counter()
        writer.close()
        wall = time.perf_counter() - start
        summary = {
            "run_skims": list(flt.model_skims),
            "inputs": [str(f) for f in files],
            "options": {"skims": list(flt.skims), "seed": int(seed), "shard": None if shard is None else str(shard),
                        "events_per_shard": int(events_per_shard), "chunk_events": int(chunk_events),
                        "format": format, "default_event_type": default_event_type, "strict": bool(strict),
                        **{k: str(v) for k, v in read_options.items()}},
            "read": report.to_dict(),
            **tally.summary(flt.timings),
            "timing": _timing(flt, seconds, writer.seconds, wall, tally.events),
            "host": {"machine": platform.machine(), "python": platform.python_version()},
            "shards": writer.shards,
            "complete": True,
        }
        write_json(out / SUMMARY, summary)
    return summary


def _timing(flt, seconds, write_s, wall, events):
    stages = {"read_s": seconds["read"], "prepare_s": flt.timing["prepare"], "network_s": flt.timing["network"],
              "calibration_s": flt.timing["calibration"], "decide_s": seconds["decide"], "write_s": write_s,
              "wall_s": wall}
    per_event = {"network_ms_per_event": flt.network_ms_per_event,
                 "network_cpu_ms_per_event": 1e3 * flt.timing["network_cpu"] / events if events else None,
                 "ms_per_event": 1e3 * wall / events if events else None}
    return {**stages, **per_event}


class _ShardWriter:
    """Buffers kept events and their columns; writes full shards (temp name, then rename)."""

    def __init__(self, out, per_shard):
        self.out, self.per_shard = out, per_shard
        self.tables, self.columns, self.n = [], [], 0
        self.shards, self.seconds = [], 0.0

    def add(self, table, columns):
        if not len(table):
            return
        self.tables.append(table)
        self.columns.append(columns)
        self.n += len(table)
        while self.n >= self.per_shard:
            self._flush(self.per_shard)

    def close(self):
        if self.n:
            self._flush(self.n)

    def _flush(self, n):
        start = time.perf_counter()
        table = EventTable.concat(self.tables) if len(self.tables) > 1 else self.tables[0]
        columns = {k: np.concatenate([c[k] for c in self.columns]) for k in self.columns[0]}
        name = SHARD_PATTERN.format(len(self.shards))
        write_parquet(table[:n], self.out / name, columns={k: v[:n] for k, v in columns.items()})
        self.shards.append({"file": name, "events": n})
        rest = len(table) - n
        self.tables = [table[n:]] if rest else []
        self.columns = [{k: v[n:] for k, v in columns.items()}] if rest else []
        self.n = rest
        self.seconds += time.perf_counter() - start

