"""The production closure on the embedded sample: is the filtered production the full one, weighted?

    python benchmarks/closure.py [--run RUN_DIR] [--events 200000] [--seed 2026] [--filter-seed 5]
        [--workers 2] [--bins 20] [--alpha 0.01] [--cache-dir DIR] [--out benchmarks/results/closure.json]

Two productions of the same generator events (``--events`` events, production seed ``--seed``,
not the training seed 1):

1. unfiltered: generation -> detector response + skims for every event (the reference);
2. filtered (production mode, ``smartbkg-generate --filter RUN_DIR``): generation -> filter ->
   detector + skims on the kept events only, written with ``p_<skim>`` and ``weight_<skim>``.

The kept events must carry the labels the unfiltered run gives them (the detector response of
an event depends only on its identifier) and the probabilities the filter gives the unfiltered
run's records; both are checked and the mismatches recorded. Then
:func:`smartbkg.filter.closure.production_closure` compares, per skim of the run, the weighted
yield of the kept passing events and the weighted histograms of every variable of
:func:`smartbkg.data.event_variables.event_variables` with the unfiltered run's: chi2/ndf and
p-value with the exact variance, a pull histogram over all bins of all variables and skims, and a
one-line verdict. The per-stage times of both productions are recorded.

Without ``--run`` a run folder is trained first and cached (GAT + GAP with the Belle II sizes,
``--run-events`` 30,000 events of seed 1, ``--run-skims`` tau_generic, leptonic_untagged and
radiative, ``--run-epochs`` 6).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from filter import trained_run
from smartbkg.data import read_events
from smartbkg.data.event_variables import event_variables
from smartbkg.filter import Filter
from smartbkg.filter.closure import production_closure
from smartbkg.filter.stage import FilterStage
from smartbkg.simulation import produce
from train import machine

DEFAULT_RUN = {"model": "gatgap", "options": {"units": 32, "layers": 6, "heads": 4},
               "skims": ["tau_generic", "leptonic_untagged", "radiative"], "events": 30000, "epochs": 6}


def sorted_by_id(folder):
    """(events, {p_/weight_ column: values}) of a production folder, ordered by event id."""
    table = read_events(folder)
    data = pq.read_table(sorted(folder.glob("*.parquet")))
    columns = {n: data.column(n).to_numpy() for n in data.column_names if n.startswith(("p_", "weight_"))}
    order = np.argsort(table.event_id, kind="stable")
    return table.take(order), {k: v[order] for k, v in columns.items()}


def stage_times(meta):
    return {stage: 1e3 * values["all"] for stage, values in meta["seconds_per_event"].items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run folder of smartbkg-train (default: train the DEFAULT_RUN once, cached)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2026, help="production seed of the fresh sample")
    parser.add_argument("--filter-seed", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--run-events", type=int, default=DEFAULT_RUN["events"])
    parser.add_argument("--run-epochs", type=int, default=DEFAULT_RUN["epochs"])
    parser.add_argument("--run-skims", default=",".join(DEFAULT_RUN["skims"]))
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "smartbkg-bench-cache"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "closure.json"))
    args = parser.parse_args(argv)
    run = Path(args.run) if args.run else trained_run(
        Path(args.cache_dir), DEFAULT_RUN["model"], DEFAULT_RUN["options"], False, skims=args.run_skims.split(","),
        events=args.run_events, epochs=args.run_epochs)
    load_before = list(os.getloadavg())
    scratch = Path(tempfile.mkdtemp(prefix="smartbkg-closure-"))
    try:
        common = {"seed": args.seed, "workers": args.workers, "progress": sys.stderr.isatty()}
        print(f"unfiltered production of {args.events} events (seed {args.seed})")
        full_meta = produce(scratch / "full", args.events, **common)
        print(f"filtered production with {run}")
        stage = FilterStage(run, seed=args.filter_seed)
        kept_meta = produce(scratch / "kept", args.events, **common, event_filter=stage)
        full, _ = sorted_by_id(scratch / "full")
        kept, columns = sorted_by_id(scratch / "kept")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    flt = Filter.from_run(run)
    skims = list(flt.skims)
    rows = np.searchsorted(full.event_id, kept.event_id)
    assert np.array_equal(full.event_id[rows], kept.event_id), "a kept event is not in the unfiltered run"
    p = flt.probabilities(full)
    labels = full.labels[:, [full.skims.index(s) for s in skims]]
    counts = np.zeros_like(labels)
    counts[rows] = np.stack([columns[f"weight_{s}"] > 0 for s in skims], axis=1)
    checks = {
        "kept_events": int(len(kept)),
        "label_mismatches": int(np.sum(kept.labels != full.labels[rows])),
        "max_abs_p_difference": float(max(np.max(np.abs(columns[f"p_{s}"] - p[rows, j])) for j, s in enumerate(skims))),
    }
    result = production_closure(labels, event_variables(full), p, counts, skims, bins=args.bins, alpha=args.alpha)
    for per_skim in result["distributions"].values():  # the JSON keeps chi2, ndf, p-value; not every bin
        for name, d in per_skim.items():
            per_skim[name] = {k: d[k] for k in ("chi2", "ndf", "p_value")}
    summary = {
        "command": "python benchmarks/closure.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(flt.backend.device),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "run": {"folder": str(run), "config": json.loads(json.dumps(_config(run))),
                "summary": json.loads((run / "summary.json").read_text())},
        "events": args.events, "seed": args.seed, "filter_seed": args.filter_seed,
        "kept_fraction": {"observed": len(kept) / args.events, "expected": float(p.max(axis=1).mean()),
                          "independent_draws": float((1 - np.prod(1 - p, axis=1)).mean())},
        "checks": checks,
        "ms_per_generated_event": {"unfiltered": stage_times(full_meta), "filtered": stage_times(kept_meta)},
        **result,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"kept {len(kept)} of {args.events} generated events ({100 * len(kept) / args.events:.2f} %); "
          f"label mismatches {checks['label_mismatches']}, largest p difference {checks['max_abs_p_difference']:.2g}")
    for skim, y in result["yields"].items():
        print(f"{skim}: weighted yield {y['sampled']:.1f} +- {y['error']:.1f}, true {y['reference']} "
              f"(pull {y['pull']:+.2f})")
        chi2 = result["distributions"][skim].items()
        print("   " + ", ".join(f"{name} {d['chi2']:.1f}/{d['ndf']}" for name, d in chi2))
    print(result["verdict"])
    print(f"wrote {out}")


def _config(run):
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


if __name__ == "__main__":
    main()
