"""``smartbkg-tune``: an Optuna study of a filter network from the command line.

    smartbkg-tune --data shards/ --model gatgap --trials 50 --study gatgap-speedup \\
                  [--storage URL] [--workers K] [--timeout S] [--space FILE] [--objective speedup] [--oracle FILE]

The trials' common configuration comes from ``--config`` (a ``smartbkg-train`` YAML), the flags
and ``--set SECTION.OPTION=VALUE``, as for ``smartbkg-train``; the search space's values override
it per trial. Running the same command again continues the study to ``--trials`` in total.
"""

import optuna

from ..cli_args import SEED32_MAX, ArgumentParser, add_list_argument, integer
from ..errors import ConfigError
from ..train.cli import given_options
from ..train.config import RunConfig
from .objective import OBJECTIVES, read_oracle
from .space import default_space, load_space
from .study import PRUNERS, run_study

#: Flag destination -> config key of the trials' common configuration.
FLAG_KEYS = {"data": "data.path", "skims": "data.skims", "events": "data.generate_events",
             "epochs": "train.epochs", "device": "train.device"}


def build_parser():
    p = ArgumentParser(prog="smartbkg-tune", description="Optuna hyperparameter study of a filter network.")
    p.add_argument("--model", metavar="NAME", help="gatgap, transformer, lorentz or deepsets")
    p.add_argument("--trials", type=integer(1), metavar="N", help="trials of the study in total (required)")
    p.add_argument("--study", metavar="NAME", help="study name; its folder is DIR/NAME (required)")
    p.add_argument("--dir", default="studies", metavar="DIR", help="where study folders go (default studies)")
    p.add_argument("--storage", metavar="URL", help="Optuna RDB URL (postgresql://...) or journal file "
                                                    "(default DIR/NAME/journal.log)")
    p.add_argument("--workers", type=integer(1), default=1, metavar="K", help="worker processes on this machine")
    p.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    p.add_argument("--space", metavar="FILE", help="YAML search space (overrides the default space)")
    add_list_argument(p, "--objective", metavar="OBJECTIVE",
                      help=f"one or more of {', '.join(OBJECTIVES)} (several: Pareto front; default speedup)")
    p.add_argument("--skim", metavar="NAME", help="the skim whose metrics count (default: mean over skims)")
    p.add_argument("--oracle", metavar="FILE", help="JSON of the Bayes-limit speedup per skim (benchmarks/oracle.py "
                   "results), for --objective oracle_fraction")
    p.add_argument("--pruner", default="median", choices=PRUNERS)
    p.add_argument("--seed", type=integer(0, SEED32_MAX), default=0, help="sampler seed (worker k: seed + k)")
    p.add_argument("--heartbeat", type=integer(1), default=30, metavar="S",
                   help="heartbeat interval of RDB storages; a trial is stale after 3 missed beats")
    p.add_argument("--max-retry", type=integer(0), default=3, metavar="N", help="re-queue a stale trial N times")
    p.add_argument("--config", metavar="FILE", help="YAML run configuration the trials start from")
    add_list_argument(p, "--data", commas=False, metavar="PATH", help="parquet shards (default: the embedded sample)")
    add_list_argument(p, "--skims", metavar="SKIM", help="skims to train on")
    p.add_argument("--events", type=integer(1), metavar="N", help="events of the embedded sample (without --data)")
    p.add_argument("--epochs", type=integer(1), metavar="N", help="maximum epochs per trial")
    p.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                   help="set any option of the trials' configuration (repeatable)")
    p.add_argument("--print-space", action="store_true", help="print the resolved search space and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def base_config(args):
    """The trials' common :class:`~smartbkg.train.config.RunConfig` of parsed arguments."""
    return RunConfig.from_dict(given_options(args, FLAG_KEYS))


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = base_config(args)
    model = args.model or (None if args.space else config.model.name)
    space = load_space(args.space, model) if args.space else default_space(model)
    if args.print_space:
        print(_yaml(space.to_dict()), end="")
        return 0
    missing = [flag for flag, value in (("--trials", args.trials), ("--study", args.study)) if value is None]
    if missing:
        raise ConfigError(f"smartbkg-tune: {' and '.join(missing)} required")
    if args.seed + args.workers - 1 > SEED32_MAX:
        raise ConfigError(f"smartbkg-tune: worker k seeds its sampler with --seed + k, which must stay <= {SEED32_MAX}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the study prints its own progress lines
    run_study(config, model=space.model, n_trials=args.trials, study_name=args.study, root=args.dir,
              storage=args.storage, space=space, objectives=args.objective or ["speedup"],
              skim=args.skim, pruner=args.pruner, workers=args.workers, timeout=args.timeout, seed=args.seed,
              heartbeat=args.heartbeat, max_retry=args.max_retry, quiet=args.quiet,
              oracle=read_oracle(args.oracle) if args.oracle else None)
    return 0


def _yaml(values):
    import yaml

    return yaml.safe_dump(values, sort_keys=False)


if __name__ == "__main__":
    import sys

    from ..cli import tune_main

    tune_main(sys.argv[1:])
