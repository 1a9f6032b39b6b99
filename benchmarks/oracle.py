"""The Bayes limit of every skim on the embedded sample: the oracle filter's speedup against K.

    python benchmarks/oracle.py [--events 30000] [--runs 256] [--seed 20261207] [--run-seed 1]
        [--max-weight 100] [--bootstrap 200] [--skims A,B] [--cache FILE.npz] [--out FILE.json]

Generates ``--events`` events of the embedded sample (its own production seed, not a training
seed), re-runs the detector response and the skims ``--runs`` = R times with independent
detector seeds (:func:`smartbkg.oracle.pass_counts`) and, per skim:

* ``by_K``: q from the first K runs (posterior mean under a nonparametric prior fitted per
  skim and event type, :func:`smartbkg.oracle.posterior_q`), the oracle
  p* = clip(C sqrt(q), 1/max_weight, 1) with C maximising the speedup q promises, and that
  speedup: what p* reaches where the prior is calibrated, without label noise;
  ``by_K_production``: the speedup of the same p* measured on the sample's own labels, one
  more, independent detector run (the production run; noisy: a few passing events at the floor
  weigh 100 each); ``by_K_plain``: the same with q = c/K.
* ``by_K_crossfit``: the R runs in two halves A and B; p* from the first K runs of A is scored
  in expectation over the labels with q = the pass fraction of all of B, and vice versa,
  averaged (K <= R/2): a model-free measurement of the same quantity, which checks the
  prior's calibration (``by_K_crossfit_model``: what the prior expected); the ``_beta``
  entries repeat this with a Beta prior.
* ``speedup``, ``speedup_err``: the larger of ``by_K`` at K = R and ``by_K_crossfit`` at
  K = R/2, with its standard deviation over ``--bootstrap`` resamplings of the events: a lower
  bound of the Bayes limit (``speedup_kind``) unless ``converged`` (the cross-fit increments
  shrink and the fit below has a power above 1/2); ``extrapolated``: S(K) = S_inf - a K^-alpha
  fitted to the cross-fit points of the largest K (:func:`smartbkg.oracle.fit_convergence`),
  with its bootstrap error;
* ``perfect_limit``: the perfect classifier with the same floor 1/max_weight (and without
  one), ``retention`` the pass fraction over all R runs, ``auc``: AUC of q from all R runs on
  the production labels.

Times are the Belle II ones of :mod:`smartbkg.metrics`. The JSON (default
``benchmarks/results/oracle.json``) holds the command, the machine and its load (the machine is
shared: the wall time is noisy; the figures are not).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from smartbkg.errors import DataError
from smartbkg.metrics import perfect_speedup
from smartbkg.oracle import (PRIORS, expected_speedup, fit_convergence, optimal_probabilities, optimal_scale,
                             oracle_speedup, pass_counts, posterior_q)
from smartbkg.simulation.production import generate
from smartbkg.simulation.skims import SKIMS


#: Range of the power of K in the extrapolation (see smartbkg.oracle.fit_convergence).
FIT_POWERS = (0.5, 2.0)
#: The extrapolation in K uses the cross-fit points of the largest K (at most this many).
FIT_POINTS = 4


def powers_of_two(low, high):
    return [k for k in (2**i for i in range(20)) if low <= k <= high]


class CrossFit:
    """p* from K runs of one half, scored in expectation over the labels of the other half."""

    def __init__(self, counts, half, runs, j, event_type, k, max_weight, prior):
        a_k, b_k = counts[k][:, j], counts[half + k][:, j] - counts[half][:, j]
        self.soft = (counts[half][:, j] / half, (counts[runs][:, j] - counts[half][:, j]) / (runs - half))
        self.p, self.expected = [], []
        for c in (a_k, b_k):
            q, _ = posterior_q(c, k, event_type, prior)
            scale, expected = optimal_scale(q, max_weight)
            self.p.append(optimal_probabilities(q, scale, max_weight))
            self.expected.append(expected)

    def speedup(self, weight=None):
        """Mean of (A scored on B, B scored on A); ``weight`` (B, n): one value per weighting."""
        (p_a, p_b), (soft_a, soft_b) = self.p, self.soft
        return 0.5 * (expected_speedup(p_a, soft_b, weight=weight) + expected_speedup(p_b, soft_a, weight=weight))


def skim_limits(j, table, counts, args, resamplings):
    """The figures of one skim (see the module docstring)."""
    runs, half = args.runs, args.runs // 2
    y, event_type = table.labels[:, j], table.event_type
    eps = float(counts[runs][:, j].sum() / (len(table) * runs))
    out = {"retention": eps, "passing_events_production_run": int(y.sum()),
           "perfect_limit": perfect_speedup(eps, max_weight=args.max_weight),
           "perfect_limit_no_floor": perfect_speedup(eps),
           "by_K": {}, "by_K_production": {}, "by_K_plain": {}, "scale_by_K": {}}
    for k in powers_of_two(8, runs) + ([runs] if runs & (runs - 1) else []):
        q, _ = posterior_q(counts[k][:, j], k, event_type, args.prior)
        result = oracle_speedup(q, y, max_weight=args.max_weight)
        out["by_K"][str(k)] = result.expected_speedup
        out["by_K_production"][str(k)] = result.speedup
        out["scale_by_K"][str(k)] = result.scale
        out["by_K_plain"][str(k)] = oracle_speedup(counts[k][:, j] / k, y, max_weight=args.max_weight).speedup
        out["auc"] = result.auc
    p = optimal_probabilities(q, result.scale, args.max_weight)
    model_boot = expected_speedup(p, q, weight=resamplings)
    cross_k = powers_of_two(4, half)
    for prior in PRIORS:
        fits = [CrossFit(counts, half, runs, j, event_type, k, args.max_weight, prior) for k in cross_k]
        key = "" if prior == args.prior else f"_{prior}"
        out[f"by_K_crossfit{key}"] = {str(k): float(fit.speedup()) for k, fit in zip(cross_k, fits)}
        out[f"by_K_crossfit_model{key}"] = {str(k): float(np.mean(fit.expected)) for k, fit in zip(cross_k, fits)}
        if prior == args.prior:
            boot = np.array([fit.speedup(resamplings) for fit in fits[-FIT_POINTS:]]).T
    curve = list(out["by_K_crossfit"].values())[-FIT_POINTS:]
    fit_k = cross_k[-FIT_POINTS:]
    limit = fit_convergence(fit_k, curve, FIT_POWERS)
    limits = [fit_convergence(fit_k, row, FIT_POWERS).limit for row in boot]
    out["extrapolated"] = {"speedup": limit.limit, "speedup_err": float(np.std(limits)), "power": limit.power,
                           "amplitude": limit.amplitude, "fit_runs": fit_k}
    # Lower bounds: the speedup that p* from all R runs reaches (its calibrated prior's expectation)
    # and the cross-fit measurement at K = R/2; the larger, with its bootstrap error.
    bounds = {"model_K": (out["by_K"][str(runs)], np.std(model_boot)),
              "crossfit_K": (curve[-1], np.std(boot[:, -1]))}
    kind = max(bounds, key=lambda name: bounds[name][0])
    increments = np.diff(curve)
    out.update(speedup=float(bounds[kind][0]), speedup_err=float(bounds[kind][1]), speedup_kind=f"lower bound ({kind})",
               converged=bool(increments[-1] < increments[-2] and limit.power > FIT_POWERS[0]))
    return out


def cached_counts(args, table, checkpoints, skims):
    """:func:`smartbkg.oracle.pass_counts` and whether they were read from ``--cache`` (when it
    holds the counts of the same sample and runs), else computed (and written there when
    ``--cache`` is given)."""
    key = np.array([len(table), args.seed, args.run_seed, args.runs, *checkpoints])
    if args.cache and Path(args.cache).exists():
        with np.load(args.cache) as cached:
            if np.array_equal(cached["key"], key) and list(cached["skims"]) == skims:
                return {k: cached[f"k{k}"] for k in checkpoints}, True
    counts = pass_counts(table, args.runs, args.run_seed, checkpoints=checkpoints, skims=skims, progress=True)
    if args.cache:
        np.savez_compressed(args.cache, key=key, skims=np.array(skims), **{f"k{k}": v for k, v in counts.items()})
    return counts, False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--runs", type=int, default=256, help="detector re-runs R (>= 32)")
    parser.add_argument("--seed", type=int, default=20261207, help="production seed of the sample")
    parser.add_argument("--run-seed", type=int, default=1, help="seed of the detector re-runs")
    parser.add_argument("--max-weight", type=float, default=100.0)
    parser.add_argument("--bootstrap", type=int, default=200, help="resamplings for the error of the limit")
    parser.add_argument("--prior", default="grid", choices=PRIORS, help="prior of q (the other is reported too)")
    parser.add_argument("--skims", default=",".join(SKIMS))
    parser.add_argument("--cache", default=None, help="npz file that keeps the pass counts between runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "oracle.json"))
    args = parser.parse_args(argv)
    if args.runs < 32:
        parser.error("--runs must be at least 32 (the extrapolation needs K = 4, 8, 16 in each half)")
    skims = [s for s in args.skims.split(",") if s]

    load_before = list(os.getloadavg())
    start = time.perf_counter()
    table = generate(args.events, seed=args.seed, skims=skims)
    generated = time.perf_counter()
    half = args.runs // 2
    checkpoints = ({half, args.runs} | set(powers_of_two(4, args.runs))
                   | {half + k for k in powers_of_two(4, half)})
    counts, from_cache = cached_counts(args, table, sorted(checkpoints), skims)
    counted = time.perf_counter()
    rng = np.random.default_rng(args.run_seed)
    resamplings = np.stack([np.bincount(rng.integers(0, len(table), len(table)), minlength=len(table))
                            for _ in range(args.bootstrap)]).astype(np.float64)
    results = {}
    for j, s in enumerate(skims):
        try:
            results[s] = skim_limits(j, table, counts, args, resamplings)
        except DataError as error:  # too few passing events for this skim at this size
            results[s] = {"retention": float(table.labels[:, j].mean()), "skipped": str(error)}
    result = {
        "command": "python benchmarks/oracle.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "events": len(table), "seed": args.seed, "run_seed": args.run_seed, "runs": args.runs,
        "max_weight": args.max_weight, "bootstrap": args.bootstrap, "prior": args.prior,
        "counts_from_cache": from_cache,
        "wall_s": {"generate": generated - start, "detector_runs": counted - generated,
                   "analysis": time.perf_counter() - counted},
        "skims": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(table)} events, {args.runs} detector runs, {counted - generated:.0f} s")
    print(f"{'skim':18s} {'eps':>7s} {'perfect':>8s} {'oracle >=':>14s} {'AUC':>6s}  by K (p* from K runs)")
    for s, r in results.items():
        if "skipped" in r:
            print(f"{s:18s} {r['retention']:7.4f} skipped: {r['skipped']}")
            continue
        by_k = " ".join(f"{k}:{v:.2f}" for k, v in r["by_K"].items())
        print(f"{s:18s} {r['retention']:7.4f} {r['perfect_limit']:8.2f} {r['speedup']:7.2f} +- "
              f"{r['speedup_err'] or 0:4.2f} {r['auc']:6.3f}  {by_k}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
