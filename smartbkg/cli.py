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


def generate_main(argv=None):
    """``smartbkg-generate``: the embedded Pythia 8 sample with detector response and skims."""
    sys.exit(_run("smartbkg.simulation.cli", argv))


def train_main(argv=None):
    """``smartbkg-train``: train a filter network."""
    sys.exit(_run("smartbkg.train.cli", argv))


def export_main(argv=None):
    """``smartbkg-export``: a trained run -> ONNX graphs (Belle II interface) and their JSON."""
    sys.exit(_run("smartbkg.export.cli", argv))
