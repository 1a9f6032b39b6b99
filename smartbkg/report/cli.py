"""``smartbkg-evaluate``: the evaluation report of a trained run on labelled events.

Writes report.json, one PNG per figure and a self-contained report.html to ``--out`` (see
:mod:`smartbkg.report.report`) and prints the methods side by side.
"""

import argparse
import sys

from ..data.event_variables import VARIABLES
from ..errors import ConfigError
from .analysis import DEFAULT_SEEN, METHODS, Options


class _Parser(argparse.ArgumentParser):
    """Argument errors as one-line :class:`ConfigError` s (exit status 2, no usage dump)."""

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message}")


def _names(text):
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _fnr(text):
    if text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1) or 'max', got {text!r}") from None


def build_parser():
    p = _Parser(prog="smartbkg-evaluate",
                description="Evaluate a trained run on labelled events: ROC, calibration, speedup against the "
                            "limits, closure of importance sampling and of threshold + reweighting; writes "
                            "report.json, PNG figures and a self-contained report.html.")
    p.add_argument("run", metavar="RUN_DIR", help="a finished smartbkg-train run folder (with calibration.json)")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="labelled events (files or folders) the run did not train or calibrate on")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder (new or empty)")
    p.add_argument("--skims", type=_names, metavar="A,B", help="skims to report on (default: every skim of the run)")
    p.add_argument("--methods", type=_names, default=METHODS, metavar="M,N",
                   help=f"methods to compare (default all: {','.join(METHODS)}; sampling always runs)")
    p.add_argument("--fnr", type=_fnr, default=0.1, metavar="RATE",
                   help="target false-negative rate of the threshold, or 'max' for the threshold of highest "
                        "speedup before reweighting (default 0.1)")
    p.add_argument("--reweight-variables", type=_names, default=DEFAULT_SEEN, metavar="V,W",
                   help=f"event variables the second classifier sees (default {','.join(DEFAULT_SEEN)}; "
                        f"the others of {','.join(VARIABLES)} stay unseen)")
    p.add_argument("--oracle", metavar="FILE", help="oracle-limit JSON ({\"skims\": {SKIM: {\"speedup\", "
                                                     "\"speedup_err\", \"perfect_limit\"}}})")
    p.add_argument("--folds", type=int, default=2, metavar="K", help="cross-fitting folds of the second classifier")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the sampling draw and the reweighting")
    p.add_argument("--bins", type=int, default=12, metavar="N", help="bins per closure variable (default 12)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N", help="events per network call")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.bins < 1 or args.batch_size < 1:
        raise ConfigError("--bins and --batch-size must be positive")
    options = Options(fnr=args.fnr, seen=args.reweight_variables, methods=args.methods, folds=args.folds,
                      seed=args.seed, closure_bins=args.bins)
    from .report import evaluate, summary_table  # torch and matplotlib only when there is work to do

    report = evaluate(args.run, args.data, args.out, skims=args.skims, options=options, oracle=args.oracle,
                      batch_size=args.batch_size)
    print(summary_table(report))
    print(f"report: {args.out}/report.html")
    return 0


if __name__ == "__main__":
    from ..cli import evaluate_main

    evaluate_main(sys.argv[1:])
