"""``smartbkg-evaluate``: the evaluation report of a trained run on labelled events.

Writes report.json, one PNG per figure and a self-contained report.html to ``--out`` (see
:mod:`smartbkg.report.report`) and prints the methods side by side.
"""

import argparse
import sys

from ..cli_args import SEED32_MAX, ArgumentParser, add_list_argument, integer
from ..data.event_variables import VARIABLES
from .analysis import DEFAULT_SEEN, METHODS, Options


def _fnr(text):
    if text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1) or 'max', got {text!r}") from None


def build_parser():
    p = ArgumentParser(prog="smartbkg-evaluate",
                       description="Evaluate a trained run on labelled events: ROC, calibration, speedup against "
                                   "the limits, closure of importance sampling and of threshold + reweighting; "
                                   "writes report.json, PNG figures and a self-contained report.html.")
    p.add_argument("run", metavar="RUN_DIR", help="a finished smartbkg-train run folder (with calibration.json)")
    add_list_argument(p, "--data", commas=False, required=True, metavar="PATH",
                      help="labelled events (files or folders) the run did not train or calibrate on")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder (new or empty)")
    add_list_argument(p, "--skims", metavar="SKIM", help="skims to report on (default: every skim of the run)")
    add_list_argument(p, "--methods", metavar="METHOD",
                      help=f"methods to compare (default all: {' '.join(METHODS)}; sampling always runs)")
    p.add_argument("--fnr", type=_fnr, default=0.1, metavar="RATE",
                   help="target false-negative rate of the threshold, or 'max' for the threshold of highest "
                        "speedup before reweighting (default 0.1)")
    add_list_argument(p, "--reweight-variables", metavar="VARIABLE",
                      help=f"event variables the second classifier sees (default {' '.join(DEFAULT_SEEN)}; "
                           f"the others of {' '.join(VARIABLES)} stay unseen)")
    p.add_argument("--oracle", metavar="FILE", help="oracle-limit JSON ({\"skims\": {SKIM: {\"speedup\", "
                                                     "\"speedup_err\", \"perfect_limit\"}}})")
    p.add_argument("--folds", type=integer(2), default=2, metavar="K",
                   help="cross-fitting folds of the second classifier")
    p.add_argument("--seed", type=integer(0, SEED32_MAX), default=0, metavar="N",
                   help="seed of the sampling draw and the reweighting")
    p.add_argument("--bins", type=integer(1), default=12, metavar="N", help="bins per closure variable (default 12)")
    p.add_argument("--batch-size", type=integer(1), default=512, metavar="N", help="events per network call")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    options = Options(fnr=args.fnr, seen=tuple(args.reweight_variables or DEFAULT_SEEN),
                      methods=tuple(args.methods or METHODS), folds=args.folds, seed=args.seed,
                      closure_bins=args.bins)
    from .report import evaluate, summary_table  # torch and matplotlib only when there is work to do

    report = evaluate(args.run, args.data, args.out, skims=args.skims, options=options, oracle=args.oracle,
                      batch_size=args.batch_size)
    print(summary_table(report))
    print(f"report: {args.out}/report.html")
    return 0


if __name__ == "__main__":
    from ..cli import evaluate_main

    evaluate_main(sys.argv[1:])
