"""Console scripts: thin wrappers that turn package errors into one line and a non-zero exit.

Each command's argument parsing and work live in the module that owns the capability; this
file only maps entry points to them and handles user errors uniformly.
"""

import importlib
import sys

from .errors import SmartBkgError


def _run(module, argv):
    try:
        return importlib.import_module(module).main(argv) or 0
    except SmartBkgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def convert_main(argv=None):
    """``smartbkg-convert``: any supported input -> smartbkg parquet shards."""
    sys.exit(_run("smartbkg.data.convert", argv))


def filter_main(argv=None):
    """``smartbkg-filter``: apply a trained run to new events (keep with p, weight 1/p)."""
    sys.exit(_run("smartbkg.filter.cli", argv))


def calibrate_main(argv=None):
    """``smartbkg-calibrate``: refit a trained run's calibration on a larger labelled sample."""
    sys.exit(_run("smartbkg.filter.recalibrate", argv))


def generate_main(argv=None):
    """``smartbkg-generate``: the embedded Pythia 8 sample with detector response and skims."""
    sys.exit(_run("smartbkg.simulation.cli", argv))


def train_main(argv=None):
    """``smartbkg-train``: train a filter network."""
    sys.exit(_run("smartbkg.train.cli", argv))


def reweight_main(argv=None):
    """``smartbkg-reweight``: classifier weights that turn sample B into sample A, with a report."""
    sys.exit(_run("smartbkg.reweight.cli", argv))


def classify_main(argv=None):
    """``smartbkg-classify``: the H -> Z gamma classification example with significance-driven model selection."""
    sys.exit(_run("smartbkg.hzgamma.cli", argv))


def tune_main(argv=None):
    """``smartbkg-tune``: an Optuna hyperparameter study."""
    sys.exit(_run("smartbkg.tune.cli", argv))


def evaluate_main(argv=None):
    """``smartbkg-evaluate``: the evaluation report of a trained run (figures, closure, both methods)."""
    sys.exit(_run("smartbkg.report.cli", argv))


def export_main(argv=None):
    """``smartbkg-export``: a trained run -> ONNX graphs (Belle II interface) and their JSON."""
    sys.exit(_run("smartbkg.export.cli", argv))
