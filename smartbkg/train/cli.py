"""``smartbkg-train``: train a filter network from the command line.

Every option of :class:`~smartbkg.train.config.RunConfig` can be set in a YAML file
(``--config``); the flags below override the file, and ``--set SECTION.OPTION=VALUE`` (repeatable,
YAML values) overrides anything, e.g. ``--set model.options.units=64``. Precedence: defaults <
config file < flags < ``--set``.

A model or loss of your own trains through the same command: register it in a module
(:func:`smartbkg.models.register_model`, :func:`smartbkg.losses.register_loss`) and name the
module with ``--import MODULE`` (it must be importable: on ``sys.path`` or installed), or publish
it in the ``smartbkg.models`` / ``smartbkg.losses`` entry-point group of an installed package.

Multi-GPU / multi-node: ``torchrun --nproc-per-node K $(which smartbkg-train) ...`` (or
``torchrun ... -m smartbkg.train.cli ...``).
"""

import sys
import time
from pathlib import Path

from ..cli_args import ArgumentParser, add_list_argument
from ..errors import ConfigError
from ..locking import run_folder_lock
from .checkpoint import RESUME_KEYS, load_checkpoint
from .config import MONITORS, SCHEDULES, RunConfig, apply_override, parse_assignment, read_config_file

#: Flag destination -> config key.
FLAG_KEYS = {
    "data": "data.path",
    "val_data": "data.val_path",
    "test_data": "data.test_path",
    "skims": "data.skims",
    "event_types": "data.event_types",
    "event_features": "data.event_features",
    "batch_size": "data.batch_size",
    "events": "data.generate_events",
    "cache_dir": "data.cache_dir",
    "model": "model.name",
    "loss": "loss.name",
    "epochs": "train.epochs",
    "lr": "train.lr",
    "weight_decay": "train.weight_decay",
    "schedule": "train.schedule",
    "monitor": "train.monitor",
    "patience": "train.patience",
    "seed": "train.seed",
    "device": "train.device",
    "amp": "train.amp",
    "init_from": "train.init_from",
    "freeze_backbone": "train.freeze_backbone",
    "lr_backbone": "train.lr_backbone",
    "lr_head": "train.lr_head",
    "quiet": "train.quiet",
    "silent": "train.silent",
    "out": "out",
    "imports": "imports",
}

#: Options a resumed run may change: they do not alter the epochs already run. More epochs
#: extend a run (a cosine schedule follows the new number of epochs); a larger patience lets an
#: early-stopped run continue.
RESUMABLE = ("train.epochs", "train.patience", "train.quiet", "train.silent", "train.device", "data.num_workers",
             "data.cache_dir")


def build_parser():
    p = ArgumentParser(
        prog="smartbkg-train",
        description="Train a network that predicts skim decisions from generator-level decay trees. "
                    "Without --data, a small sample is generated first (embedded Pythia 8 generator).")
    p.add_argument("--config", metavar="FILE", help="YAML (or JSON) run configuration")
    add_list_argument(p, "--data", commas=False, metavar="PATH", help="parquet shards or folders of shards")
    add_list_argument(p, "--val-data", commas=False, metavar="PATH", help="separate validation shards")
    add_list_argument(p, "--test-data", commas=False, metavar="PATH", help="separate test shards")
    add_list_argument(p, "--skims", metavar="SKIM", help="skims to train on (multi-label)")
    add_list_argument(p, "--event-types", metavar="TYPE", help="event types to keep")
    p.add_argument("--event-features", action="store_true", default=None,
                   help="give the network the generator-level skim emulation of every event (graph models)")
    p.add_argument("--events", type=int, metavar="N", help="events to generate when there is no --data")
    p.add_argument("--cache-dir", metavar="DIR", help="cache of the generated sample (default RUN_DIR/data)")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--model", metavar="NAME", help="gatgap, transformer, lorentz or a baseline")
    p.add_argument("--loss", metavar="NAME", help="entropy, speedup, entropeedup or extreme")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="X")
    p.add_argument("--weight-decay", type=float, metavar="X")
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--monitor", choices=list(MONITORS), help="early stopping / best checkpoint metric")
    p.add_argument("--patience", type=int, metavar="N")
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=("auto", "bf16", "off"))
    p.add_argument("--init-from", metavar="CKPT", help="fine-tune from this checkpoint")
    p.add_argument("--freeze-backbone", action="store_true", default=None, help="train only the head")
    p.add_argument("--lr-backbone", type=float, metavar="X")
    p.add_argument("--lr-head", type=float, metavar="X")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                   help="set any config option, e.g. model.options.units=64 (repeatable)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/MODEL-LOSS-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--quiet", action="store_true", default=None,
                   help="no progress bar or epoch lines (the final result line and warnings are printed)")
    p.add_argument("--silent", action="store_true", default=None, help="print nothing, not even the final line")
    p.add_argument("--import", action="append", metavar="MODULE", dest="imports",
                   help="import this module first, e.g. one that registers a model or loss of yours with "
                        "smartbkg.models.register_model / smartbkg.losses.register_loss (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def resolve_config(args):
    """The :class:`RunConfig` of parsed arguments (without ``--resume``)."""
    given = given_options(args)
    config = RunConfig.from_dict(given)
    if config.out is None:
        config.out = str(Path("runs") / f"{config.model.name}-{config.loss.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    _check_init_from(config, given.get("model") or {})
    return config


def given_options(args, flag_keys=FLAG_KEYS):
    """The options set explicitly (``--config`` file, then flags, then ``--set``) as a nested dict.

    Args:
        args: parsed arguments with ``config`` (a YAML file or None), ``assignments`` (the
            ``--set KEY=VALUE`` texts) and the destinations of ``flag_keys``.
        flag_keys: {flag destination: dotted config key} (default: those of ``smartbkg-train``).
    """
    values = read_config_file(args.config) if args.config else {}
    for key, value in config_overrides(args, flag_keys).items():
        apply_override(values, key, value)
    return values


def _check_init_from(config, model):
    """Fine-tuning (``train.init_from``) trains the checkpoint's architecture: a model name or
    options given explicitly (``model``: the given part of the model section) must agree with it."""
    if config.train.init_from is None or not model:
        return
    info = load_checkpoint(config.train.init_from)["model_info"]
    name = model.get("name")
    if name is not None and name != info["name"]:
        raise ConfigError(f"model.name {name!r} contradicts train.init_from {config.train.init_from}, a "
                          f"{info['name']!r} checkpoint (fine-tuning trains the checkpoint's architecture): drop --model")
    options = model.get("options") or {}
    differ = {k: v for k, v in options.items() if info["options"].get(k, object()) != v}
    if differ:
        raise ConfigError(f"model.options {differ} contradict train.init_from {config.train.init_from}, whose "
                          f"architecture is {info['name']!r} with options {info['options']}: drop them")


def config_overrides(args, flag_keys=FLAG_KEYS):
    """{dotted config key: value} of the flags given (``flag_keys``, see :func:`given_options`), then
    of ``--set`` (which wins)."""
    overrides = {}
    for dest, key in flag_keys.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[key] = value
    overrides.update(parse_assignment(text) for text in args.assignments)
    return overrides


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.resume:
        overrides = config_overrides(args)
        if overrides.get("out") == args.resume:
            del overrides["out"]
        fixed = sorted(k for k in overrides if k not in RESUMABLE)
        if fixed or args.config:
            raise ConfigError(f"--resume continues a run as it was configured; only {list(RESUMABLE)} may "
                              f"change (got {fixed or ['--config']})")
        if not Path(args.resume).is_dir():
            raise ConfigError(f"--resume {args.resume}: no such run folder")
        run_dir = args.resume
    else:
        config = resolve_config(args)
        if args.print_config:
            print(config.to_yaml(), end="")
            return 0
        run_dir = config.out
    with run_folder_lock(run_dir):
        from .loop import Trainer  # the heavy imports only when there is work to do

        if args.resume:
            last = Path(args.resume) / "checkpoints" / "last.pt"
            if last.is_file():
                load_checkpoint(last, require=RESUME_KEYS)  # a damaged entry is one line, not a traceback
            trainer = Trainer.resume(args.resume, overrides=overrides)
        else:
            if (Path(config.out) / "checkpoints" / "last.pt").exists():
                raise ConfigError(f"{config.out} already holds a run; continue it with --resume {config.out} "
                                  "or choose another --out")
            trainer = Trainer(config)
        try:
            trainer.fit()
        finally:
            trainer.close()
    return 0


if __name__ == "__main__":
    from ..cli import train_main

    train_main(sys.argv[1:])
