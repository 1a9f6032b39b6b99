"""``smartbkg-classify``: the significance-driven classification example, H -> Z gamma against
Z gamma at 13 TeV, with the feature-token transformer, a feed-forward network and boosted trees.

::

    smartbkg-classify --out DIR [--signal 20000] [--background 60000] [--epochs 10]
        [--disco-lambda 10] [--seed 1]
"""

import math
from pathlib import Path

from ..cli_args import SEED32_MAX, ArgumentParser, integer
from ..errors import ConfigError


def main(argv=None):
    parser = ArgumentParser(prog="smartbkg-classify", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="results folder (new or empty)")
    parser.add_argument("--signal", type=integer(1), default=20000, help="signal events to generate")
    parser.add_argument("--background", type=integer(1), default=60000, help="background events to generate")
    parser.add_argument("--epochs", type=integer(1), default=10)
    parser.add_argument("--disco-lambda", type=float, default=10.0, help="DisCo strength of the decorrelated model")
    parser.add_argument("--seed", type=integer(0, SEED32_MAX - 1000), default=1)
    args = parser.parse_args(argv)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ConfigError(f"--out {args.out} exists and is not an empty folder")
    if not 0 < args.disco_lambda < math.inf:
        raise ConfigError(f"--disco-lambda must be a finite number > 0, got {args.disco_lambda}")
    from .example import format_table, run_example

    results = run_example(args.out, n_signal=args.signal, n_background=args.background, epochs=args.epochs,
                          disco_lambda=args.disco_lambda, seed=args.seed)
    print("\n".join(format_table(results)))
    print(f"results: {args.out / 'results.json'}, {args.out / 'mass_sculpting.png'}")
    return 0
