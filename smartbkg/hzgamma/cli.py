"""``smartbkg-classify``: the significance-driven classification example, H -> Z gamma against
Z gamma at 13 TeV, with the feature-token transformer, a feed-forward network and boosted trees.

::

    smartbkg-classify --out DIR [--signal 20000] [--background 60000] [--epochs 10]
        [--disco-lambda 10] [--seed 1]
"""

import argparse
from pathlib import Path

from ..errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"smartbkg-classify: {message}")


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv=None):
    parser = _Parser(prog="smartbkg-classify", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder (new or empty)")
    parser.add_argument("--signal", type=_positive, default=20000, help="signal events to generate")
    parser.add_argument("--background", type=_positive, default=60000, help="background events to generate")
    parser.add_argument("--epochs", type=_positive, default=10)
    parser.add_argument("--disco-lambda", type=float, default=10.0, help="DisCo strength of the decorrelated model")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ConfigError(f"--out {args.out} exists and is not an empty folder")
    if not args.disco_lambda > 0 or args.seed < 0:
        raise ConfigError("--disco-lambda must be > 0 and --seed >= 0")
    from .example import format_table, run_example

    results = run_example(args.out, n_signal=args.signal, n_background=args.background, epochs=args.epochs,
                          disco_lambda=args.disco_lambda, seed=args.seed)
    print("\n".join(format_table(results)))
    print(f"results: {args.out / 'results.json'}, {args.out / 'mass_sculpting.png'}")
    return 0
