"""Trained filters on an independent test sample: AUC, speedup with its bootstrap error, fraction
of the oracle and of the perfect limit, per run and skim.

    python benchmarks/independent_test.py RUN_DIR [RUN_DIR ...] [--events 1000000] [--seed 20261208]
        [--sample FOLDER] [--workers 2] [--chunk 200000] [--bootstrap 100] [--oracle benchmarks/results/oracle.json]
        [--timing-events 20000] [--threads N] [--out FILE.json]

The test split of a training run is small for the rare skims (0.06 % of events pass hadronic_b:
130 passing events in 200k), and a speedup measured on few passing events is dominated by the
few of them at the probability floor (weight 100). This script generates ``--events`` fresh
events of the embedded sample with a production seed no training run uses, applies each run's
filter (:class:`smartbkg.filter.Filter`: the run's preprocessing, event features, network and
calibration, exactly as ``smartbkg-filter``) in chunks of ``--chunk`` events, and measures per
skim: the AUC, the speedup of :mod:`smartbkg.metrics` (the sample's own pass fraction as the
retention), its standard deviation over ``--bootstrap`` resamplings of the events, and the
ratios to the oracle (``benchmarks/results/oracle.json``, a lower bound of the Bayes limit: the
fraction is an upper bound) and to the perfect limit. Events whose preprocessing leaves no
particle get p = 1, as in the filter. For runs with event features the skim emulation is part of
the filter's cost: it is timed on ``--timing-events`` events and added to the network time t_nn
in ``speedup_with_emulation_time`` (the plain ``speedup`` uses the run's t_nn alone, as the
training does). ``--sample`` reads the test events from a produced sample instead of generating
them on every call (``smartbkg-generate --events 1000000 --seed 20261208 --output FOLDER`` makes
the same events).

The run's calibration is fitted on its validation split, which holds few passing events of a
rare skim. ``speedup_recalibrated`` says what the network's ranking reaches with a calibration
fitted on many: the sample is halved at random (seeded), the training's calibration forms
(:data:`smartbkg.train.evaluation.CALIBRATION_FORMS`) are fitted on one half's logits and
labels and scored on the other, both ways, and the two speedups averaged. Where it is well
above ``speedup``, the calibration (its fit statistics) limits the filter, not the network.
The JSON (default
``benchmarks/results/independent_test.json``) holds the command, every run's configuration,
the machine and its load. Runs of the same preprocessing, event types and event features share
the preparation of each chunk (the skim emulation, the costliest part, runs once for all).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from smartbkg import metrics as M
from smartbkg.data.readers import read_events
from smartbkg.data.skim_emulation import skim_emulation
from smartbkg.filter.filter import Filter, keep_probability
from smartbkg.sampling import Calibration
from smartbkg.simulation import generate
from smartbkg.train.evaluation import CALIBRATION_FORMS
from smartbkg.train.run_folder import load_run
from train import machine  # benchmarks/train.py

RESULTS = Path(__file__).parent / "results"


def bootstrap_speedup(p, y, n, seed, max_weight, timings):
    """Standard deviation of the speedup over ``n`` resamplings of the events (seeded)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        values.append(M.speedup(p[i], y[i], max_weight=max_weight, **timings))
    return float(np.std(values, ddof=1)) if n > 1 else float("nan")


def recalibrated_speedup(logits, y, seed, max_weight, timings):
    """Mean speedup on each half of the events (a seeded random halving) of the calibration
    fitted on the other half; events without a logit (no particle) keep p = 1."""
    first = np.random.default_rng(seed).permutation(len(y)) < len(y) // 2
    scored = ~np.isnan(logits)
    values = []
    for fit, score in ((first, ~first), (~first, first)):
        fitted = fit & scored
        calibration = Calibration.fit(logits[fitted], y[fitted], form=CALIBRATION_FORMS, max_weight=max_weight,
                                      **timings)
        p = keep_probability(calibration, logits)
        values.append(M.speedup(p[score], y[score], max_weight=max_weight, **timings))
    return float(np.mean(values))


def score_chunks(filters, table, chunk):
    """{run: (n, S) logits} of every filter on ``table``, in chunks of ``chunk`` events; the
    events of a chunk are prepared (preprocessing, graphs, skim emulation) once for all filters
    that prepare alike."""
    parts = {run_dir: [] for run_dir in filters}
    for a in range(0, len(table), chunk):
        prepared = []  # (filter, its prepare() of this chunk)
        for run_dir, flt in filters.items():
            same = next((events for other, events in prepared if flt.prepares_like(other)), None)
            if same is None:
                same = flt.prepare(table[a:a + chunk])
                prepared.append((flt, same))
            parts[run_dir].append(flt.logits(same))
    return {run_dir: np.concatenate(chunks) for run_dir, chunks in parts.items()}


def emulation_time(table):
    """Milliseconds per event of the skim emulation on ``table`` (one call, this machine)."""
    start = time.perf_counter()
    skim_emulation(table)
    return 1000 * (time.perf_counter() - start) / len(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261208, help="production seed of the test sample")
    parser.add_argument("--sample", help="read the test events from this produced sample (default: generate them)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=200_000, help="events per filter call")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--oracle", default=str(RESULTS / "oracle.json"))
    parser.add_argument("--timing-events", type=int, default=20_000,
                        help="events on which the skim emulation is timed (runs with event features)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "independent_test.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    oracle_results = json.loads(Path(args.oracle).read_text())
    oracle = oracle_results["skims"]
    load_before = list(os.getloadavg())
    table = read_events(args.sample) if args.sample else generate(args.events, seed=args.seed, workers=args.workers)
    runs = {str(run_dir): load_run(run_dir) for run_dir in args.runs}
    filters = {run_dir: Filter.of_run(run) for run_dir, run in runs.items()}
    logits_of = score_chunks(filters, table, args.chunk)
    rows, configs, emulation_ms = [], {}, None
    for run_dir, run in runs.items():
        configs[run_dir] = run.config.to_dict()
        flt, logits = filters[run_dir], logits_of[run_dir]
        t, timings = run.config.train, run.timings
        p = flt.calibrate(logits)  # events without particles after preprocessing: NaN logits, p = 1
        if run.config.data.event_features and emulation_ms is None:
            emulation_ms = emulation_time(table[:args.timing_events])
        run_emulation_ms = emulation_ms if run.config.data.event_features else None
        charged = {**timings, "t_nn": timings["t_nn"] + (run_emulation_ms or 0.0)}
        for j, skim in enumerate(flt.skims):
            y = table.labels[:, table.skims.index(skim)].astype(np.float64)
            scored = ~np.isnan(logits[:, j])
            speedup = M.speedup(p[:, j], y, max_weight=t.max_weight, **timings)
            perfect = M.perfect_speedup(float(y.mean()), max_weight=t.max_weight, **timings)
            limit = oracle.get(skim, {}).get("speedup")
            rows.append({
                "run": str(run_dir), "skim": skim, "model": run.model_info["name"],
                "options": run.model_info["options"], "event_features": run.config.data.event_features,
                "test_events": len(table), "passing": int(y.sum()),
                "auc": M.auc(y[scored], logits[scored, j]), "speedup": speedup,
                "speedup_err": bootstrap_speedup(p[:, j], y, args.bootstrap, args.seed + j, t.max_weight, timings),
                "oracle_speedup": limit, "fraction_of_oracle": speedup / limit if limit else None,
                "perfect_limit": perfect, "fraction_of_perfect": speedup / perfect,
                "emulation_ms_per_event": run_emulation_ms,
                "speedup_with_emulation_time": M.speedup(p[:, j], y, max_weight=t.max_weight, **charged),
                "speedup_recalibrated": recalibrated_speedup(logits[:, j], y, args.seed + j, t.max_weight, timings),
            })
            r = rows[-1]
            frac = "n/a" if limit is None else f"{r['fraction_of_oracle']:.0%}"
            print(f"{Path(run_dir).name:40s} {skim:18s} passing {r['passing']:6d} AUC {r['auc']:.4f} speedup "
                  f"{speedup:6.2f} +- {r['speedup_err']:.2f} ({frac} of the oracle), recalibrated on half the sample "
                  f"{r['speedup_recalibrated']:.2f}", flush=True)
    result = {"command": "python benchmarks/independent_test.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine(torch.device("cpu")), "load_average_before": load_before,
              "load_average_after": list(os.getloadavg()),
              "oracle": {"file": Path(args.oracle).name, "command": oracle_results["command"]},
              "configs": configs, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
