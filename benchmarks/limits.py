"""How close trained filters come to the Bayes limit: skim x model: AUC, speedup, fraction of the
oracle, fraction of the perfect limit, against the number of training events.

    python benchmarks/limits.py [--models deepsets,gatgap] [--skims tau_generic,leptonic_untagged]
        [--train-events 10000,30000] [--epochs 4] [--loss entropy] [--model-options JSON] [--seed 3]
        [--event-features] [--ablate pdg,kinematics,edges,event_type]
        [--oracle benchmarks/results/oracle.json] [--device auto] [--threads N]
        [--cache-dir DIR] [--config-dir DIR] [--keep-runs DIR] [--out FILE.json]

For every model and training size, one multi-label run of the one training loop
(:func:`smartbkg.train.loop.train`) on the embedded sample: ``train_events / 0.6`` events
generated with ``--seed`` (60 % train, 20 % validation for early stopping and the calibration,
20 % test), the CPU-sized model settings of ``benchmarks/train.py``, AdamW lr 1e-3, batch 128,
``--epochs`` epochs with early stopping on the validation loss; ``--event-features`` gives the
networks the generator-level skim emulation (``data.event_features``, :mod:`smartbkg.data.skim_emulation`).
``--ablate`` takes information away from every event of all three splits before training, to
measure what the network uses: ``pdg`` (every PDG token set to 0, "unknown"), ``kinematics``
(the node features x set to 0), ``edges`` (every particle a root: no mother-daughter edges),
``event_type`` (one event type for all). Each (skim, model, size) row holds the test AUC and
calibrated speedup, the number of passing test events, and the ratios of the speedup to the
oracle of ``benchmarks/results/oracle.json`` (a lower bound of the Bayes limit, so the fraction
is an upper bound) and to the perfect-classifier limit (same floor, 1/max_weight). Every run's configuration
is in the JSON (``configs``) and, with ``--config-dir``, a YAML file that ``smartbkg-train
--config`` trains again. The JSON (default
``benchmarks/results/limits.json``) holds the command of every row, the machine and its load:
the machine is shared, the timings are noisy, the metrics are not.

On a GPU the same script runs the learning curve further (the printed ``gpu_command``).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from smartbkg.data.graphs import edge_counts
from smartbkg.train.config import RunConfig
from smartbkg.train.data import build_splits
from smartbkg.train.distributed import setup_distributed
from smartbkg.train.loop import train
from train import CPU_OPTIONS, machine  # benchmarks/train.py: the CPU-sized model settings, the machine

RESULTS = Path(__file__).parent / "results"
#: Fraction of the generated events that the split gives to training.
TRAIN_FRACTION = 0.6
#: Learning curve to run where a GPU is available.
GPU_COMMAND = ("python benchmarks/limits.py --models deepsets,gatgap,transformer --event-features --skims "
               "hadronic_b,semileptonic_b,leptonic_untagged,radiative,charm_dstar,tau_generic --train-events "
               "300000,1000000,3000000 --epochs 20 --device cuda --keep-runs runs/limits_gpu "
               "--out benchmarks/results/limits_gpu.json")


def run_config(model, skims, train_events, args, cache_dir, out):
    """The run configuration of one row (a plain dict, as ``smartbkg-train --config`` reads it)."""
    return {
        "data": {"generate_events": round(train_events / TRAIN_FRACTION), "generate_seed": args.seed,
                 "cache_dir": str(cache_dir), "skims": skims, "batch_size": 128,
                 "val_fraction": 0.2, "test_fraction": 0.2, "event_features": args.event_features},
        "model": {"name": model, "options": {**CPU_OPTIONS.get(model, {}), **args.model_options.get(model, {})}},
        "loss": {"name": args.loss},
        "train": {"epochs": args.epochs, "lr": 1e-3, "device": args.device, "quiet": True,
                  "calibrate_every_epoch": False},
        "out": str(out),
    }


#: What ``--ablate`` can take away, and how: a function of the shared graph store of the splits.
ABLATIONS = {
    "pdg": lambda store: store.pdg.zero_(),
    "kinematics": lambda store: store.x.zero_(),
    "event_type": lambda store: store.event_type.zero_(),
    "edges": lambda store: (store.distance.zero_(),
                            setattr(store, "n_edges", edge_counts(store.counts, store.counts, store.self_loops))),
}


def ablated_splits(config, ablate):
    """The run's in-memory splits with the ``ablate`` information removed from every event."""
    unknown = sorted(set(ablate) - set(ABLATIONS))
    if unknown:
        raise SystemExit(f"error: --ablate {unknown}: choose from {', '.join(ABLATIONS)}")
    splits = build_splits(config.data, Path(config.out), ctx=setup_distributed(config.train.device), quiet=True)
    stores = {id(s.store): s.store for s in (splits.train, splits.val, splits.test) if s is not None}
    for store in stores.values():
        for name in ablate:
            ABLATIONS[name](store)
    return splits


def rows_of(summary, model, options, event_features, ablate, train_events, oracle, command, seconds):
    """Table rows (one per skim) from a run summary and the oracle results."""
    rows = []
    for skim in summary["skims"]:
        limit = oracle["skims"].get(skim, {})
        speedup = summary[f"speedup/{skim}"]
        rows.append({
            "skim": skim, "model": model, "options": options, "event_features": event_features,
            "ablate": ablate,
            "train_events": train_events,
            "test_events": summary["events"]["test"], "test_passing": summary[f"passing/{skim}"],
            "auc": summary[f"auc/{skim}"], "speedup": speedup, "speedup_raw": summary[f"speedup_raw/{skim}"],
            "oracle_speedup": limit.get("speedup"), "oracle_auc": limit.get("auc"),
            "fraction_of_oracle": speedup / limit["speedup"] if "speedup" in limit else None,
            "perfect_limit": summary[f"speedup_perfect/{skim}"],
            "fraction_of_perfect": speedup / summary[f"speedup_perfect/{skim}"],
            "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
            "train_s": seconds, "command": command,
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="deepsets,gatgap")
    parser.add_argument("--skims", default="tau_generic,leptonic_untagged,radiative,semileptonic_b")
    parser.add_argument("--train-events", default="10000", help="comma-separated training sizes")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--loss", default="entropy")
    parser.add_argument("--model-options", type=json.loads, default={},
                        help='JSON {model: {option: value}} over the CPU settings, '
                             'e.g. {"deepsets": {"detector_features": true}}')
    parser.add_argument("--event-features", action="store_true",
                        help="give the networks the generator-level skim emulation (data.event_features)")
    parser.add_argument("--ablate", default="", help=f"comma-separated, from {', '.join(ABLATIONS)}")
    parser.add_argument("--seed", type=int, default=3, help="production seed of the training sample")
    parser.add_argument("--oracle", default=str(RESULTS / "oracle.json"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "smartbkg-bench-cache"))
    parser.add_argument("--config-dir", default=None, help="also write every run's config here as YAML")
    parser.add_argument("--keep-runs", default=None, metavar="DIR",
                        help="write the run folders here and keep them (default: a temporary folder, removed)")
    parser.add_argument("--out", default=str(RESULTS / "limits.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    oracle = json.loads(Path(args.oracle).read_text())
    skims = [s for s in args.skims.split(",") if s]
    sizes = [int(n) for n in args.train_events.split(",") if n]
    ablate = [a for a in args.ablate.split(",") if a]
    load_before = list(os.getloadavg())
    run_root = Path(args.keep_runs) if args.keep_runs else Path(tempfile.mkdtemp(prefix="smartbkg-bench-limits-"))
    rows, configs = [], {}
    try:
        for model in [m for m in args.models.split(",") if m]:
            for size in sizes:
                name = (f"{model}{'_event_features' if args.event_features else ''}"
                        f"{''.join('_no_' + a for a in ablate)}_{size}")
                configs[name] = run_config(model, skims, size, args, args.cache_dir, run_root / name)
                config = RunConfig.from_dict(configs[name])
                if args.config_dir:
                    Path(args.config_dir).mkdir(parents=True, exist_ok=True)
                    config.to_yaml(Path(args.config_dir) / f"{name}.yaml")
                start = time.perf_counter()
                summary = train(config, splits=ablated_splits(config, ablate) if ablate else None)
                rows += rows_of(summary, model, configs[name]["model"]["options"], args.event_features, ablate, size,
                                oracle,
                                f"smartbkg-train --config {name}.yaml",
                                time.perf_counter() - start)
                print(f"{name}: " + ", ".join(f"{r['skim']} AUC {r['auc']:.3f} speedup {r['speedup']:.2f}"
                                              for r in rows[-len(skims):]))
    finally:
        if not args.keep_runs:
            shutil.rmtree(run_root, ignore_errors=True)
    result = {"command": "python benchmarks/limits.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine(torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")),
              "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
              "oracle": {"file": Path(args.oracle).name, "command": oracle["command"]},
              "gpu_command": GPU_COMMAND, "configs": configs, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'skim':18s} {'model':10s} {'train':>7s} {'passing':>7s} {'AUC':>6s} {'speedup':>8s} {'oracle':>7s} "
          f"{'of oracle':>9s} {'of perfect':>10s}")
    for r in sorted(rows, key=lambda r: (r["skim"], r["model"], r["train_events"])):
        frac = "n/a" if r["fraction_of_oracle"] is None else f"{r['fraction_of_oracle']:.0%}"
        oracle_s = "n/a" if r["oracle_speedup"] is None else f"{r['oracle_speedup']:.2f}"
        print(f"{r['skim']:18s} {r['model']:10s} {r['train_events']:7d} {r['test_passing']:7.0f} {r['auc']:6.3f} "
              f"{r['speedup']:8.2f} "
              f"{oracle_s:>7s} {frac:>9s} {r['fraction_of_perfect']:10.0%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
