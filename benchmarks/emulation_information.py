"""What the skim emulation's features are worth before any network: binned oracle speedups.

    python benchmarks/emulation_information.py [--sample FOLDER [--first N] | --events 1000000 --seed 3]
        [--workers 2] [--splits 10] [--split-seed 0] [--runs 2] [--run-seed 1]
        [--in-flight-draws M] [--radiative-draws D1,D2,...]
        [--smeared-draws D1,D2,... [--smeared-skims S1,S2,...]] [--out FILE.json]

Reads a produced embedded sample (``smartbkg-generate`` / a training run's ``data`` cache) or
generates one, computes :func:`smartbkg.data.skim_emulation.skim_emulation` and, for each
exclusive skim, groups the events on few features: the ideal decision alone, or with the
expected candidate count in bins of log10 (:data:`LOG_EDGES`). Each group's pass rate on a
random half of the events (shrunk towards its parent group's rate by :data:`PRIOR_EVENTS`
pseudo-events) is the q of the oracle filter (:func:`smartbkg.oracle.oracle_speedup`:
p = clip(C sqrt(q), 1/max_weight, 1)), whose speedup is measured on the other half's labels; both
ways, over ``--splits`` random halvings, reported as mean +- standard deviation. A filter that
reads only those features can do no better than this (up to the statistics of the groups); the
speedup with all features is what the learning curves of ``benchmarks/limits.py`` measure.

The events without any expected candidate still pass now and then. To say why, their generator
records go ``--runs`` times through four detectors (:data:`VARIANTS`): the nominal one, the ideal
one with only the resolution on, the ideal one with only the identification on, and the ideal
one itself, each with other seeds than the emulation's (so other draws of the in-flight decays);
the passes per run of each are reported.

With ``--in-flight-draws M`` the expected counts are also taken over the in-flight decays
(:func:`smartbkg.data.skim_emulation.expected_candidates_over_decays`: the flight lengths exactly,
the decay modes and angles averaged over M draws), binned the same way, and their cost is timed
(CPU ms per event).

``--radiative-draws D1,D2,...`` measures the radiative skim's feature the same way:
:func:`smartbkg.data.skim_emulation.radiative_probability` with each number of draws of the
decays (its cost timed), binned in log10 (:data:`RADIATIVE_LOG_EDGES`), and also taken as q
directly, without any fit (``as_q``: the oracle filter of that q scored on all labels); against
the ideal decision alone and the ideal decision with the leading isolated barrel photon's E*
(:data:`PHOTON_E_EDGES`), the features the networks had before.

``--smeared-draws D1,D2,...`` measures
:func:`smartbkg.data.skim_emulation.expected_candidates_smeared` the same way for the skims of
``--smeared-skims`` (default those the features use): with each number of draws (its cost timed),
the events binned on log10 of the smeared count alone (:data:`LOG_EDGES`), and 1 - exp(-n) taken
as q (the chance of at least one candidate if they came independently), against the ideal
decision with the expected count of one draw. The JSON (default
``benchmarks/results/emulation_information.json``) holds the command, the sample and the rows.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from smartbkg.data.readers import read_events
from smartbkg.data.skim_emulation import (ENERGY_SCALE, EXPECTED_FLOOR, EXPECTED_SCALE, FEATURES, IDEAL_DETECTOR,
                                          SMEARED_SKIMS, SMEARING_DETECTOR, expected_candidates_over_decays, expected_candidates_smeared,
                                          final_state_table, radiative_probability, skim_emulation)
from smartbkg.oracle import detector_seeds, oracle_speedup
from smartbkg.simulation import generate
from smartbkg.simulation.beams import Beams
from smartbkg.simulation.detector import DetectorConfig, reconstruct
from smartbkg.simulation.skims import CANDIDATE_FUNCTIONS, SkimInput

RESULTS = Path(__file__).parent / "results"
#: Bin edges of log10(1e-6 + expected number of candidates): below the first, none is expected.
LOG_EDGES = (-5.99, -4, -3, -2.5, -2, -1.5, -1, -0.5)
#: Bin edges of log10(1e-6 + radiative probability).
RADIATIVE_LOG_EDGES = (-5.99, -5, -4, -3, -2.5, -2, -1.5, -1, -0.7, -0.4, -0.2, -0.1)
#: Bin edges of the leading isolated barrel photon's E* [GeV] (the radiative window starts at 1.8).
PHOTON_E_EDGES = (1.6, 1.7, 1.75, 1.8, 1.85, 1.9, 2.0, 3.4)
#: Pseudo-events at the parent group's pass rate added to each group (see binned_oracle).
PRIOR_EVENTS = 20
_NOMINAL = DetectorConfig()
#: Detectors that tell the sources of the unexplained passes apart.
VARIANTS = {
    "nominal": _NOMINAL,
    "resolution only": SMEARING_DETECTOR,
    "identification only": replace(IDEAL_DETECTOR, pid_low=_NOMINAL.pid_low, pid_high=_NOMINAL.pid_high),
    "ideal, other in-flight decays": IDEAL_DETECTOR,
}


def binned_oracle(key, y, parent, *, splits=10, seed=0, prior_events=PRIOR_EVENTS):
    """Speedups of the oracle filter whose q is each ``key`` group's pass rate on the other half.

    For each of ``splits`` random halvings (seeded), q of a group is its pass rate on one half,
    shrunk towards the pass rate of its ``parent`` group (``prior_events`` pseudo-events at that
    rate, so that a group with few events and no pass does not get q = 0), and the oracle filter
    with that q is scored on the other half's labels, both ways.

    Args:
        key, parent: (n,) int group of every event; each key group lies inside one parent group.
        y: (n,) 0/1 labels.

    Returns:
        list of the 2 * ``splits`` speedups (None where the scored half has no passing event).
    """
    groups = np.unique(key, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(splits):
        first = rng.permutation(len(y)) < len(y) // 2
        for fit in (first, ~first):
            passed_parent, total_parent = group_counts(parent, y, fit)
            passed, total = group_counts(groups, y, fit)
            q = (passed + prior_events * (passed_parent / np.maximum(total_parent, 1))) / (total + prior_events)
            score = ~fit
            out.append(oracle_speedup(q[score], y[score]).speedup if y[score].any() and q.any() else None)
    return out


def group_counts(groups, y, fit):
    """(n,) passing and (n,) total events of each event's group (non-negative ints ``groups``)
    among the events where ``fit`` is true."""
    size = groups.max() + 1
    passed = np.bincount(groups[fit], weights=y[fit], minlength=size)
    return passed[groups], np.bincount(groups[fit], minlength=size)[groups]


def summary(speedups):
    """Mean and standard deviation of the speedups that exist, and how many do not."""
    values = [v for v in speedups if v is not None]
    return {"mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "missing": len(speedups) - len(values)}


def passes_per_run(table, skim, runs, seed):
    """Mean number of events of ``table`` passing ``skim`` per detector run, for each of :data:`VARIANTS`."""
    out = {}
    for name, config in VARIANTS.items():
        passes = []
        for run_seed in detector_seeds(seed, runs):
            s = SkimInput(reconstruct(table, run_seed, config), Beams())
            passes.append(CANDIDATE_FUNCTIONS[skim](s).any_per_event(s.n).sum())
        out[name] = float(np.mean(passes))
    return out


def timed(work, table):
    """(``work(table)``, the CPU seconds it took)."""
    start = time.process_time()
    result = work(table)
    return result, time.process_time() - start


def chunked(work, table, workers, chunk=10_000):
    """``work`` (a picklable function of a table) over the table in chunks of ``chunk`` events on
    ``workers`` processes: (the results concatenated, its CPU time per event [ms], summed over the
    processes)."""
    parts = [table.take(np.arange(start, min(start + chunk, len(table)))) for start in range(0, len(table), chunk)]
    each = partial(timed, work)
    if workers > 1:
        with Pool(workers) as pool:
            results = pool.map(each, parts)
    else:
        results = [each(part) for part in parts]
    return np.concatenate([r[0] for r in results]), 1e3 * sum(r[1] for r in results) / len(table)


def over_decays(table, draws, workers):
    """:func:`expected_candidates_over_decays` of every event and its CPU time per event [ms]."""
    return chunked(partial(expected_candidates_over_decays, draws=draws), table, workers)


def radiative(table, draws):
    """:func:`radiative_probability` of a table's events."""
    return radiative_probability(final_state_table(table), Beams(), draws)


def smeared(table, draws, skims):
    """:func:`expected_candidates_smeared` of a table's events."""
    return expected_candidates_smeared(final_state_table(table), Beams(), dict.fromkeys(skims, draws))


def radiative_rows(table, x, draws_list, splits, seed):
    """What the radiative features are worth: binned oracle speedups of the old features and of
    :func:`radiative_probability` with each number of draws (and that probability as q)."""
    y = table.labels[:, table.skims.index("radiative")].astype(np.float64)
    ideal = (x[:, FEATURES.index("pass_radiative")] > 0).astype(np.int64)
    photon = np.digitize(ENERGY_SCALE * x[:, FEATURES.index("leading_isolated_photon_e")], PHOTON_E_EDGES)
    everyone = np.zeros(len(y), dtype=np.int64)
    out = {"passing": int(y.sum()),
           "speedup_ideal_decision": summary(binned_oracle(ideal, y, everyone, splits=splits, seed=seed)),
           "speedup_ideal_decision_and_photon_e": summary(binned_oracle(ideal * 100 + photon, y, ideal,
                                                                        splits=splits, seed=seed)),
           "probability": []}
    for draws in draws_list:
        probability, ms = chunked(partial(radiative, draws=draws), table, workers=1)
        key = np.digitize(np.log10(EXPECTED_FLOOR + probability), RADIATIVE_LOG_EDGES)
        out["probability"].append({
            "draws": draws, "ms_per_event": ms,
            "passing_at_zero": int(y[probability == 0].sum()), "expected_passes": float(probability.sum()),
            "speedup_binned": summary(binned_oracle(key, y, everyone, splits=splits, seed=seed)),
            "speedup_as_q": oracle_speedup(probability, y).speedup})
    return out


def smeared_rows(table, x, draws_list, skims, splits, seed, workers):
    """What the expected counts over the resolution and the decays are worth, for each skim: binned
    oracle speedups with each number of draws (and 1 - exp(-n) as q), against the ideal decision
    with the expected count of one draw."""
    everyone = np.zeros(len(table), dtype=np.int64)
    rows = {}
    for skim in skims:
        y = table.labels[:, table.skims.index(skim)].astype(np.float64)
        ideal = (x[:, FEATURES.index(f"pass_{skim}")] > 0).astype(np.int64)
        expected_bin = np.digitize(EXPECTED_SCALE * x[:, FEATURES.index(f"expected_{skim}")], LOG_EDGES)
        rows[skim] = {"passing": int(y.sum()), "speedup_ideal_decision_and_expected": summary(
            binned_oracle(ideal * 100 + expected_bin, y, ideal, splits=splits, seed=seed)), "smeared": []}
    for draws in draws_list:
        counts, ms = chunked(partial(smeared, draws=draws, skims=skims), table, workers)
        for k, skim in enumerate(skims):
            y = table.labels[:, table.skims.index(skim)].astype(np.float64)
            n = counts[:, k]
            key = np.digitize(np.log10(EXPECTED_FLOOR + n), LOG_EDGES)
            rows[skim]["smeared"].append({
                "draws": draws, "ms_per_event_all_skims": ms, "events_with_a_count": int(np.sum(n > 0)),
                "passing_at_zero": int(y[n == 0].sum()), "expected_candidates": float(n.sum()),
                "speedup_binned": summary(binned_oracle(key, y, everyone, splits=splits, seed=seed)),
                "speedup_as_q": oracle_speedup(1.0 - np.exp(-n), y).speedup})
    return rows


def text(result):
    return "n/a" if result["mean"] is None else f"{result['mean']:.2f} +- {result['std'] or 0:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", help="folder of a produced embedded sample (default: generate one)")
    parser.add_argument("--first", type=int, help="use the first N events of --sample")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", type=int, default=10, help="random halvings of the events")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=2,
                        help="detector runs per variant for the unexplained passes (0: none)")
    parser.add_argument("--run-seed", type=int, default=1, help="seed of those detector runs")
    parser.add_argument("--in-flight-draws", type=int, default=0,
                        help="also take the expected counts over the in-flight decays, with M draws (0: not)")
    parser.add_argument("--radiative-draws", default="",
                        help="comma-separated numbers of draws for the radiative probability (default: not measured)")
    parser.add_argument("--smeared-draws", default="",
                        help="comma-separated numbers of draws for the smeared expected counts (default: not measured)")
    parser.add_argument("--smeared-skims", default=",".join(SMEARED_SKIMS),
                        help="comma-separated exclusive skims for --smeared-draws")
    parser.add_argument("--out", default=str(RESULTS / "emulation_information.json"))
    args = parser.parse_args(argv)
    smeared_skims = args.smeared_skims.split(",")
    unknown = sorted(set(smeared_skims) - set(CANDIDATE_FUNCTIONS))
    if unknown:
        parser.error(f"--smeared-skims: {', '.join(unknown)} not among {', '.join(CANDIDATE_FUNCTIONS)}")
    start = time.perf_counter()
    table = read_events(args.sample) if args.sample else generate(args.events, seed=args.seed, workers=args.workers)
    if args.first:
        table = table.take(np.arange(min(args.first, len(table))))
    x = skim_emulation(table)
    seconds = time.perf_counter() - start
    if args.in_flight_draws:
        averaged, averaged_ms = over_decays(table, args.in_flight_draws, args.workers)
    rows = []
    for skim in CANDIDATE_FUNCTIONS:
        y = table.labels[:, table.skims.index(skim)].astype(np.float64)
        ideal = (x[:, FEATURES.index(f"pass_{skim}")] > 0).astype(np.int64)
        expected_bin = np.digitize(EXPECTED_SCALE * x[:, FEATURES.index(f"expected_{skim}")], LOG_EDGES)
        everyone = np.zeros(len(y), dtype=np.int64)
        ideal_only = summary(binned_oracle(ideal, y, everyone, splits=args.splits, seed=args.split_seed))
        with_expected = summary(binned_oracle(ideal * 100 + expected_bin, y, ideal, splits=args.splits,
                                              seed=args.split_seed))
        without_ideal = ideal == 0
        row = {"skim": skim, "events": len(y), "passing": int(y.sum()),
               "passing_without_ideal_candidate": int(y[without_ideal].sum()),
               "passing_without_any_expected_candidate": int(y[without_ideal & (expected_bin == 0)].sum()),
               "speedup_ideal_decision": ideal_only, "speedup_ideal_decision_and_expected": with_expected}
        if args.in_flight_draws:
            n = averaged[:, list(CANDIDATE_FUNCTIONS).index(skim)]
            averaged_bin = np.digitize(np.log10(EXPECTED_FLOOR + n), LOG_EDGES)
            row["over_in_flight_decays"] = {
                "draws": args.in_flight_draws, "ms_per_event": averaged_ms,
                "passing_without_any_expected_candidate": int(y[without_ideal & (averaged_bin == 0)].sum()),
                "speedup_ideal_decision_and_expected": summary(binned_oracle(
                    ideal * 100 + averaged_bin, y, ideal, splits=args.splits, seed=args.split_seed))}
        unexplained = np.flatnonzero(without_ideal & (expected_bin == 0))
        if args.runs:
            with np.errstate(over="ignore"):  # the ideal detector's turn-on below the pT threshold
                row["unexplained_passes_per_run"] = passes_per_run(table.take(unexplained), skim, args.runs,
                                                                   args.run_seed)
        rows.append(row)
        print(f"{skim:16s} passing {row['passing']:6d} "
              f"(without an ideal candidate {row['passing_without_ideal_candidate']}, "
              f"without any expected {row['passing_without_any_expected_candidate']}); binned oracle speedup: "
              f"ideal decision {text(ideal_only)}, with expected candidates {text(with_expected)}")
        if args.in_flight_draws:
            over = row["over_in_flight_decays"]
            print(f"{'':16s} expected over the in-flight decays ({over['draws']} draws, "
                  f"{averaged_ms:.2f} CPU ms/event): without any expected {over['passing_without_any_expected_candidate']}; binned oracle speedup "
                  f"{text(over['speedup_ideal_decision_and_expected'])}")
        if args.runs:
            print(f"{'':16s} passes per detector run of the {len(unexplained)} events without any expected candidate: "
                  + ", ".join(f"{name} {value:.1f}" for name, value in row["unexplained_passes_per_run"].items()))
    extra = {}
    if args.radiative_draws:
        radiative = radiative_rows(table, x, [int(d) for d in args.radiative_draws.split(",")], args.splits,
                                   args.split_seed)
        extra["radiative"] = radiative
        print(f"radiative        passing {radiative['passing']:6d}; binned oracle speedup: ideal decision "
              f"{text(radiative['speedup_ideal_decision'])}, with the isolated photon's E* "
              f"{text(radiative['speedup_ideal_decision_and_photon_e'])}")
        for row in radiative["probability"]:
            print(f"{'':16s} radiative probability, {row['draws']} draws ({row['ms_per_event']:.2f} CPU ms/event): "
                  f"binned {text(row['speedup_binned'])}, as q {row['speedup_as_q']:.2f}, "
                  f"passes at probability 0: {row['passing_at_zero']}, expected passes {row['expected_passes']:.0f}")
    if args.smeared_draws:
        smeared = smeared_rows(table, x, [int(d) for d in args.smeared_draws.split(",")], smeared_skims, args.splits,
                               args.split_seed, args.workers)
        extra["smeared"] = smeared
        for skim, row in smeared.items():
            print(f"{skim:16s} passing {row['passing']:6d}; binned oracle speedup: ideal decision and expected "
                  f"count {text(row['speedup_ideal_decision_and_expected'])}")
            for r in row["smeared"]:
                print(f"{'':16s} smeared count, {r['draws']} draws ({r['ms_per_event_all_skims']:.2f} CPU ms/event "
                      f"for {len(smeared)} skims, {r['events_with_a_count']} events with a count): binned "
                      f"{text(r['speedup_binned'])}, as q {r['speedup_as_q']:.2f}, passes at 0: {r['passing_at_zero']}")
    result = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "sample": args.sample or {"events": args.events, "seed": args.seed},
              "log_edges": LOG_EDGES, "prior_events": PRIOR_EVENTS, "splits": args.splits,
              "split_seed": args.split_seed, "runs": args.runs, "run_seed": args.run_seed,
              "first": args.first, "in_flight_draws": args.in_flight_draws,
              "read_and_emulate_s": seconds, "rows": rows, **extra}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
