"""``smartbkg-calibrate RUN_DIR --data PATH --out NEW_RUN_DIR``: refit a run's calibration.

Training fits the sampling calibration (logit -> p per skim) on its validation split, which holds
few passing events of a rare skim (0.3 % of 200,000 events is 600), and the calibrated speedup
pays for that fit's noise. A labelled sample from the same production (simulated and skimmed,
unfiltered, so that its pass fractions are the true retentions) refits it on as many events as
there are: :func:`recalibrate` runs the run's filter on the sample, fits the training's
calibration forms (:data:`~smartbkg.train.evaluation.CALIBRATION_FORMS`) per skim on its logits
and labels, and writes a new run folder: the same network (``checkpoints/best.pt``,
``config.yaml``), the new ``calibration.json``, and ``recalibration.json`` with the source run,
the sample and, per skim, its passing events and the speedup of the old and the new calibration
on it. The source run is left as it is.

The speedups in ``recalibration.json`` are measured on the fitting sample itself, so the new
one is optimistic there; measure the new run on other events (``smartbkg-evaluate`` or an
independent sample).
"""

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import ReadReport
from ..data.readers import iter_events
from ..errors import ConfigError
from ..sampling import Calibration
from ..train.evaluation import CALIBRATION_FORMS
from ..train.run_folder import CALIBRATION_FILE, CHECKPOINT, load_run
from .filter import Filter, keep_probability

#: What the new run folder takes from the source run.
COPIED = (CHECKPOINT, Path("config.yaml"))
REPORT_FILE = "recalibration.json"


def recalibrate(run_dir, data, out, *, chunk_events=100_000):
    """Refit the calibration of ``run_dir`` on the labelled events of ``data`` into ``out``.

    The events are read and scored chunk by chunk; only their logits, labels and weights are
    kept (a few bytes per event), so the sample may be larger than the memory.

    Args:
        run_dir: a finished ``smartbkg-train`` run folder.
        data: a file or folder of labelled events of any supported format (the run's skims among
            their labels), an unfiltered sample of the production the filter is for.
        out: the new run folder (must not exist, or be empty).
        chunk_events: events per chunk read and scored.

    Returns:
        the report written to ``out/recalibration.json``: {"run", "data", "events", "read" (the
        :class:`~smartbkg.data.ReadReport` of the sample: events read, kept, skipped by reason),
        "skims": {skim: {"passing", "speedup_before", "speedup_after", "form"}}}.

    Raises:
        smartbkg.errors.ConfigError: ``out`` not empty, a skim of the run missing from the data,
            a skim without passing events in it.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder")
    run = load_run(run_dir)
    flt = Filter.of_run(run)
    read = ReadReport()
    logits, labels, weights = [], [], []
    for _, table in iter_events(data, chunk_events=chunk_events, report=read):
        missing = [s for s in flt.skims if s not in table.skims]
        if missing:
            raise ConfigError(f"{data} has no labels for skim(s) {missing} of the run (it has {list(table.skims)})")
        logits.append(flt.logits(table))
        labels.append(table.labels[:, [table.skims.index(s) for s in flt.skims]].astype(np.float64))
        weights.append(np.ones(len(table)) if table.weight is None else table.weight.astype(np.float64))
    logits, labels, weight = np.concatenate(logits), np.concatenate(labels), np.concatenate(weights)
    scored = ~np.isnan(logits).any(axis=1)
    t = run.config.train
    calibrations, report = {}, {}
    for j, skim in enumerate(flt.skims):
        y = labels[:, j]
        if not np.any(y[scored] * weight[scored] > 0):
            raise ConfigError(f"{data} has no passing event of {skim}: it cannot calibrate it")
        eps = float(np.sum(y * weight) / np.sum(weight))
        fitted = Calibration.fit(logits[scored, j], y[scored], form=CALIBRATION_FORMS, eps=eps,
                                 weight=weight[scored], max_weight=t.max_weight, **run.timings)
        fitted.fit_info["data"] = str(data)
        calibrations[skim] = fitted
        speedup = {}
        for name, calibration in (("before", run.calibrations[skim]), ("after", fitted)):
            p = keep_probability(calibration, logits[:, j])
            speedup[name] = M.speedup(p, y, weight=weight, max_weight=t.max_weight, **run.timings)
        report[skim] = {"passing": float(np.sum(y * weight)), "speedup_before": speedup["before"],
                        "speedup_after": speedup["after"], "form": fitted.form}
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(run_dir) / name, out / name)
    (out / CALIBRATION_FILE).write_text(json.dumps({s: c.to_dict() for s, c in calibrations.items()}, indent=1) + "\n")
    result = {"run": str(run_dir), "data": str(data), "events": len(labels), "read": read.to_dict(), "skims": report}
    (out / REPORT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def build_parser():
    parser = argparse.ArgumentParser(
        prog="smartbkg-calibrate",
        description="Refit a trained run's sampling calibration on a larger labelled sample, into a new run folder.")
    parser.add_argument("run_dir", help="run folder of smartbkg-train")
    parser.add_argument("--data", required=True,
                        help="labelled events (file or folder, any supported format): an unfiltered sample")
    parser.add_argument("--out", required=True, help="the new run folder (new or empty)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    result = recalibrate(args.run_dir, args.data, args.out)
    if result["read"]["skipped"]:
        print(ReadReport(skipped=Counter(result["read"]["skipped"])).skip_summary(result["read"]["read"]))
    print(f"refitted on {result['events']} events of {args.data}; speedup on them (optimistic for the new fit):")
    for skim, r in result["skims"].items():
        print(f"  {skim:18s} passing {r['passing']:9.0f}  before {r['speedup_before']:7.2f}  after "
              f"{r['speedup_after']:7.2f} ({r['form']})")
    print(f"wrote {args.out} (use it like the run: smartbkg-filter {args.out} ...)")
