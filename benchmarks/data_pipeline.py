"""Data pipeline throughput: read parquet + preprocess + batch, and collation alone vs PyG.

One run, the same events for every figure (``--source synthetic``: seeded random trees of
:func:`smartbkg.data.synthetic.random_trees`, 50 particles per event; ``--source pythia``: the
embedded Pythia sample), one CPU thread (torch and pyarrow), so the numbers are per core. Measured (events per second):

* ``pipeline_stream``: streaming loader over parquet shards, i.e. read row groups + validate +
  preprocess + PDG tokens + batches (``StreamingEventGraphDataset(...)`` + ``GraphLoader``);
* ``pipeline_memory``: the same work through the in-memory dataset (read all, preprocess,
  build the flat tensors once) followed by one shuffled epoch of batches;
* ``collate_fast``: batches cut by ``GraphStore.batches`` from the flat tensors, as the loader
  does (collation only);
* ``collate_pyg``: ``Batch.from_data_list`` over pre-built per-event ``Data`` (collation only).

``collate_fast / collate_pyg`` is the like-for-like collation ratio. Rates are given per core
(events / CPU seconds of this single-threaded process, much less sensitive to other jobs on the
machine than wall time) and per wall-clock second; each is the best of ``--repeat`` runs. The
CPU time of the streaming pipeline is also split into stages (parquet decoding, conversion,
validation, preprocessing, flat tensors, batches), measured in one extra run under cProfile
(whose overhead inflates the stages made of many small calls, mostly "batches").

Usage::

    python benchmarks/data_pipeline.py [--events 200000] [--batch-size 256] [--source synthetic|pythia]

Writes ``benchmarks/results/data_pipeline.json`` (figures, machine, command).
"""

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch_geometric.data import Batch

from smartbkg.data.dataset import EventGraphDataset, StreamingEventGraphDataset
from smartbkg.data.graphs import GraphStore
from smartbkg.data.loader import GraphLoader
from smartbkg.data.parquet import write_parquet
from smartbkg.data.preprocess import preprocess
from smartbkg.data.synthetic import random_trees


def pythia_table(n_events, seed):
    """Events of the embedded Pythia 8 sample (:func:`smartbkg.simulation.generate`)."""
    from smartbkg.simulation import generate

    return generate(n_events, seed=seed)


def timed(fn, repeat):
    """Best CPU time and best wall time [s] of ``repeat`` calls of ``fn``, and its last result.

    CPU time of this process (one thread) is the per-core cost and hardly depends on other
    processes sharing the machine; the first call also pays for page faults of fresh memory,
    later calls show the steady state of a long-running job.
    """
    cpu, wall, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall, result


#: Functions whose cumulative CPU time splits the streaming pipeline into stages.
STAGES = {
    "parquet decode": "read_row_group",
    "arrow -> event table": "table_from_arrow",
    "validation": "drop_bad_events",
    "preprocessing": "preprocess_with_mask",
    "flat tensors (x, tokens, edges)": "_build",
    "batches": "_gather",
}


def stage_breakdown(fn, n_events):
    """CPU ms per 100k events spent in each stage of :data:`STAGES` during one call of ``fn``."""
    profile = cProfile.Profile(time.process_time)
    profile.runcall(fn)
    stats = pstats.Stats(profile).stats
    total = {name: 0.0 for name in STAGES}
    for (_, _, function), (_, _, _, cumulative, _) in stats.items():
        for stage, wanted in STAGES.items():
            if function == wanted:
                total[stage] += cumulative
    return {stage: 1e5 * seconds * 1e3 / n_events for stage, seconds in total.items()}


def cpu_model():
    """The CPU model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pyg-events", type=int, default=20_000,
                        help="events collated with Batch.from_data_list (it is slow)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--row-group", type=int, default=8192)
    parser.add_argument("--buffer-events", type=int, default=65536)
    parser.add_argument("--compression", default="lz4")
    parser.add_argument("--source", choices=["synthetic", "pythia"], default="synthetic")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "data_pipeline.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    table = (random_trees if args.source == "synthetic" else pythia_table)(args.events, seed=args.seed)
    after, _ = preprocess(table)
    figures = {"events": len(table), "particles_per_event_raw": table.n_particles / len(table),
               "particles_per_event_preprocessed": after.n_particles / len(after)}
    print(f"{len(table)} events, {figures['particles_per_event_raw']:.1f} particles/event, "
          f"{figures['particles_per_event_preprocessed']:.1f} after preprocessing")
    rates = {}

    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "events.parquet"
        write_parquet(table, shard, row_group_size=args.row_group, compression=args.compression)
        figures["shard_bytes_per_event"] = shard.stat().st_size / len(table)

        def stream():
            dataset = StreamingEventGraphDataset([shard], buffer_events=args.buffer_events)
            return sum(b.num_graphs for b in GraphLoader(dataset, args.batch_size, shuffle=True, seed=1))

        def memory():
            dataset = EventGraphDataset([shard])
            return sum(b.num_graphs for b in GraphLoader(dataset, args.batch_size, shuffle=True, seed=1))

        rates["pipeline_stream"] = timed(stream, args.repeat)
        rates["pipeline_memory"] = timed(memory, args.repeat)
        figures["stream_cpu_ms_per_100k_events"] = stage_breakdown(stream, len(table))

    store = GraphStore(after)
    order = torch.from_numpy(np.random.default_rng(args.seed).permutation(len(store)))
    batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    rates["collate_fast"] = timed(lambda: list(store.batches(batches)), args.repeat)

    n_pyg = min(args.pyg_events, len(store))
    data = [store.data(i) for i in range(n_pyg)]
    pyg_batches = [data[i:i + args.batch_size] for i in range(0, n_pyg, args.batch_size)]
    rates["collate_pyg"] = timed(lambda: [Batch.from_data_list(b) for b in pyg_batches], args.repeat)

    events = {"pipeline_stream": len(after), "pipeline_memory": len(after), "collate_fast": len(store),
              "collate_pyg": n_pyg}
    for name, (cpu, wall, _) in rates.items():
        figures[name] = {"events_per_s_cpu": events[name] / cpu, "events_per_s_wall": events[name] / wall}
        print(f"{name:>16}: {events[name] / cpu:12,.0f} events/s per core (CPU time), "
              f"{events[name] / wall:12,.0f} events/s wall")
    figures["collate_ratio"] = figures["collate_fast"]["events_per_s_cpu"] / figures["collate_pyg"]["events_per_s_cpu"]
    print(f"{'collate ratio':>16}: {figures['collate_ratio']:.1f} x (fast / Batch.from_data_list)")
    print("streaming pipeline, CPU ms per 100k events: " + ", ".join(
        f"{k} {v:.0f}" for k, v in figures["stream_cpu_ms_per_100k_events"].items()))

    result = {
        "command": " ".join(["python", os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:])),
        "settings": {k: (os.path.relpath(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "figures": figures,
        "machine": {"platform": platform.platform(), "processor": cpu_model(),
                    "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
                    "python": platform.python_version(), "torch": torch.__version__, "pyarrow": pa.__version__,
                    "numpy": np.__version__, "threads": 1},
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
