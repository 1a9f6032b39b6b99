"""Read speed of every input format: events/s of read_hdf5, read_hepmc and read_events (a benchmark, not a test).

Usage: ``python benchmarks/readers.py [--events 20000] [--hepmc-events 5000] [--out benchmarks/results/readers.json]``

The events are seeded random decay trees of about 40 particles
(:func:`smartbkg.data.synthetic.decay_trees`, which every format stores exactly), written by
smartbkg's own writers into a temporary directory. Each read is timed ``--repeat`` times and the best is reported.
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from smartbkg.data import read_events, read_hdf5, read_hepmc, write_hdf5, write_hepmc, write_parquet
from smartbkg.data.synthetic import decay_trees


def best_rate(read, repeat):
    best, table = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        table = read()
        best = min(best, time.perf_counter() - start)
    return len(table) / best, table.n_particles / len(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--hepmc-events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "readers.json")
    args = parser.parse_args(argv)
    table = decay_trees(args.events, num_particles=43, seed=5)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_hdf5(table, tmp / "fixed.h5", layout="fixed")
        write_hdf5(table, tmp / "table.h5", layout="table")
        write_parquet(table, tmp / "events.parquet")
        write_hepmc(table[: args.hepmc_events], tmp / "events.hepmc")
        cases = {
            "read_hdf5 (pandas fixed layout)": lambda: read_hdf5(tmp / "fixed.h5"),
            "read_hdf5 (pandas table layout)": lambda: read_hdf5(tmp / "table.h5"),
            "read_events on HDF5 (with checks)": lambda: read_events(tmp / "fixed.h5"),
            "read_events on parquet (with checks)": lambda: read_events(tmp / "events.parquet"),
            "read_hepmc": lambda: read_hepmc(tmp / "events.hepmc"),
        }
        for name, read in cases.items():
            rate, size = best_rate(read, args.repeat)
            results[name] = {"events_per_s": round(rate), "particles_per_event": round(size, 1)}
            print(f"{name:40s} {rate:10.0f} events/s  ({size:.1f} particles/event)")
    args.out.write_text(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                                    "events": args.events, "hepmc_events": args.hepmc_events,
                                    "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
