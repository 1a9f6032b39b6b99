"""Run configuration: one dataclass per concern, a YAML/JSON round trip and command-line overrides.

A run is fully described by a :class:`RunConfig` (sections ``data``, ``model``, ``loss``,
``train`` and the run folder ``out``). The resolved configuration is written as
``config.yaml`` into every run folder and stored in every checkpoint, so a result can be
reproduced from its folder alone.

Values are checked on construction (:meth:`RunConfig.validate`): an unknown option or an
impossible value raises :class:`~smartbkg.errors.ConfigError` with one line naming the option.
"""

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..cli_args import SEED_MAX
from ..errors import ConfigError
from ..losses import PER_EVENT_LOSSES
from ..metrics import T_FAST, T_NN, T_SLOW

#: What early stopping and the best checkpoint can follow, and whether larger is better.
MONITORS = {"val_loss": "min", "auc": "max", "speedup": "max", "significance": "max"}
SCHEDULES = ("plateau", "cosine", "constant")
AMP_MODES = ("auto", "bf16", "off")


@dataclass
class DataConfig:
    """Where the events come from and how they are split and batched.

    Attributes:
        path: parquet shards or folders of shards; ``None`` generates the embedded sample.
        val_path: separate validation shards; ``None`` splits ``val_fraction`` off ``path``.
        test_path: separate test shards; ``None`` splits ``test_fraction`` off ``path``.
        skims: label columns to train on (default: the generated sample's default skim, or
            every skim of the data).
        event_types: restrict to these event types (default: all).
        val_fraction, test_fraction: fractions of events split off at random (seeded by
            ``split_seed``) when no separate files are given.
        batch_size: global batch (summed over DDP ranks; must divide by the number of ranks).
        eval_batch_size: batch for validation and test (default ``batch_size``).
        in_memory: load all events into memory (``False`` streams parquet row groups).
        num_workers: DataLoader worker processes for streaming.
        retention: true retention rate eps per skim, {skim: eps} (default: measured on the
            training data, weighted).
        preprocess: options of the Belle II preprocessing (see ``smartbkg.data.preprocess``).
        generate_events, generate_seed, generate_types: the embedded sample made when
            ``path`` is None (setting them together with ``path`` is an error).
        cache_dir: where the embedded sample is cached (default: ``<out>/data``; only without
            ``path``).
        bucket_window: length bucketing (in-memory data; see :mod:`smartbkg.data.bucketing`):
            ``None`` (default) cuts batches from the shuffled events as they come; an integer k
            sorts the training events by particle count within windows of k batches (0: the
            whole epoch) and shuffles the batches of each window, and sorts the validation and
            test events by count. It cuts the padding of the transformer and ``lorentz`` models;
            allowed with the per-event losses only (``entropy``, ``extreme``, without DisCo),
            because batch-level losses depend on which events share a batch.
        event_features: give the network every event's generator-level skim emulation
            (:mod:`smartbkg.data.skim_emulation`: the skims on an ideal detector and the skim
            variables near their cuts) next to the decay tree; the models that take them
            (``deepsets``, ``gatgap``, ``transformer``, ``lorentz``) get ``num_event_features`` filled in from the data.
    """

    path: list[str] | None = None
    val_path: list[str] | None = None
    test_path: list[str] | None = None
    skims: list[str] | None = None
    event_types: list[str] | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    batch_size: int = 128
    eval_batch_size: int | None = None
    in_memory: bool = True
    num_workers: int = 0
    retention: dict[str, float] | None = None
    preprocess: dict = field(default_factory=dict)
    generate_events: int = 10000
    generate_seed: int = 1
    generate_types: list[str] | None = None
    cache_dir: str | None = None
    bucket_window: int | None = None
    event_features: bool = False


@dataclass
class ModelConfig:
    """The network: a registry name and the constructor's keyword arguments.

    ``num_skims``, ``num_event_types`` and ``vocab_size`` are filled in from the data.
    """

    name: str = "gatgap"
    options: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    """The training loss: a registry name (:data:`smartbkg.losses.LOSS_NAMES`) and its options.

    The true retention ``eps`` per skim comes from the data (``data.retention`` or the training
    set), the timings and ``max_weight`` from the ``train`` section; ``options`` holds the rest
    (``form``, ``tau``, ``class_weights``, ``disco_lambda``, ``disco_subset`` ...).
    ``disco_variable`` names the per-event variable the DisCo term decorrelates the output from:
    one of :data:`smartbkg.train.variables.EVENT_VARIABLES` (``n_particles``, ``n_final_state``,
    ``total_energy``, ``visible_energy``, ``visible_mass``, ``event_type``, ``weight``,
    ``event_id``).
    """

    name: str = "entropy"
    options: dict = field(default_factory=dict)
    disco_variable: str | None = None


@dataclass
class TrainConfig:
    """Optimisation, schedule, early stopping, precision, fine-tuning and evaluation settings.

    Attributes:
        epochs: maximum number of epochs.
        lr, weight_decay, betas: AdamW settings (one learning rate for the whole model unless
            ``lr_backbone`` / ``lr_head`` are set).
        schedule: ``plateau`` (reduce on plateau of the monitor, per epoch), ``cosine`` (linear
            warm-up over ``warmup_epochs`` then cosine decay to ``min_lr``, per step) or
            ``constant``.
        plateau_factor, plateau_patience: reduce-on-plateau settings.
        clip_grad_norm: clip the global gradient norm to this value (``None``: no clipping).
        monitor: what early stopping and the best checkpoint follow: ``val_loss``, ``auc``,
            ``speedup`` (calibrated) or ``significance``, averaged over skims unless
            ``monitor_skim`` names one.
        patience, min_delta: early stopping (``patience`` epochs without an improvement larger
            than ``min_delta``; ``None`` disables it).
        max_weight: sampling probabilities are floored at 1 / max_weight (losses and metrics).
        t_fast, t_nn, t_slow: times per event in ms of generation, network inference and
            detector simulation + reconstruction, for the speedup (losses and metrics); default
            the Belle II figures 0.08, 0.63, 97.04.
        significance_bins: bins of equal signal for the binned significance.
        calibrate_every_epoch: fit the sampling calibration on the validation set every epoch
            (else only for the final model).
        seed: seeds model initialisation, shuffling and dropout.
        device: ``auto`` (GPU of the local rank when available), ``cpu``, ``cuda`` (the GPU of
            the local rank) or ``cuda:N`` (one process only).
        amp: ``auto`` (bf16 autocast on GPUs with native bf16, else off), ``bf16`` or ``off``.
        init_from: checkpoint to start from (fine-tuning); the model architecture is taken from it.
        reset_head: re-initialise the output head (``None``: when the skims differ from the
            checkpoint's).
        freeze_backbone: train only the head (``lr_backbone`` must then be unset).
        lr_backbone, lr_head: separate learning rates (ParT fine-tuning: 1e-4 and 5e-3).
        find_unused_parameters: passed to DistributedDataParallel.
        quiet: no progress bar or epoch lines (the final result line and warnings are still
            printed).
        silent: print nothing at all (implies ``quiet``).
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "plateau"
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    clip_grad_norm: float | None = 5.0
    monitor: str = "val_loss"
    monitor_skim: str | None = None
    patience: int | None = 3
    min_delta: float = 1e-5
    max_weight: float = 100.0
    t_fast: float = T_FAST
    t_nn: float = T_NN
    t_slow: float = T_SLOW
    significance_bins: int = 5
    calibrate_every_epoch: bool = True
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    init_from: str | None = None
    reset_head: bool | None = None
    freeze_backbone: bool = False
    lr_backbone: float | None = None
    lr_head: float | None = None
    find_unused_parameters: bool = False
    quiet: bool = False
    silent: bool = False


SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
#: Options outside the sections: the run folder and the modules to import.
TOP_LEVEL = ("out", "imports")


@dataclass
class RunConfig:
    """Everything a run needs; ``out`` is the run folder.

    ``imports`` names Python modules imported before the run is built, e.g. ones that register
    a model or loss of the user's (:func:`smartbkg.models.register_model`,
    :func:`smartbkg.losses.register_loss`); a resumed run imports them again.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str | None = None
    imports: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------ (de)serialisation
    def to_dict(self):
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build from a nested dict; unknown sections or options raise :class:`ConfigError`."""
        values = dict(values or {})
        unknown = [k for k in values if k not in (*SECTIONS, *TOP_LEVEL)]
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; known: {[*SECTIONS, *TOP_LEVEL]}")
        sections = {}
        for name, section_cls in SECTIONS.items():
            section = values.get(name)
            section = {} if section is None else section
            if not isinstance(section, dict):
                raise ConfigError(f"config section {name!r} must be a mapping, got {section!r}")
            sections[name] = _build_section(section_cls, name, section)
        out, imports = _coerce(values.get("out"), str | None, "out"), values.get("imports") or []
        if isinstance(imports, str) or not all(isinstance(name, str) for name in imports):
            raise ConfigError(f"option imports must be a list of module names, got {imports!r}")
        return cls(**sections, out=out, imports=list(imports))

    def to_yaml(self, path=None):
        """YAML text; written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_file(cls, path):
        """Read a YAML (or JSON) config file."""
        return cls.from_dict(read_config_file(path))

    def with_overrides(self, overrides):
        """A new config with ``{"section.option": value}`` overrides applied (values checked)."""
        values = self.to_dict()
        for key, value in overrides.items():
            apply_override(values, key, value)
        return RunConfig.from_dict(values)

    # ------------------------------------------------------------ checks
    def validate(self):
        """Raise :class:`ConfigError` for impossible values."""
        d, t = self.data, self.train
        _check(t.epochs >= 0, "train.epochs", t.epochs, "must be >= 0")
        _check(t.lr > 0, "train.lr", t.lr, "must be > 0")
        for name in ("lr_backbone", "lr_head"):
            value = getattr(t, name)
            _check(value is None or value > 0, f"train.{name}", value, "must be > 0")
        _check(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "must be >= 0")
        _check(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), "train.betas", t.betas,
               "must be two numbers in [0, 1)")
        _check(t.schedule in SCHEDULES, "train.schedule", t.schedule, f"must be one of {list(SCHEDULES)}")
        _check(t.warmup_epochs >= 0, "train.warmup_epochs", t.warmup_epochs, "must be >= 0")
        _check(0 < t.plateau_factor < 1, "train.plateau_factor", t.plateau_factor, "must be in (0, 1)")
        _check(t.plateau_patience >= 0, "train.plateau_patience", t.plateau_patience, "must be >= 0")
        _check(t.clip_grad_norm is None or t.clip_grad_norm > 0, "train.clip_grad_norm",
               t.clip_grad_norm, "must be > 0 or null")
        _check(t.monitor in MONITORS, "train.monitor", t.monitor, f"must be one of {list(MONITORS)}")
        _check(t.patience is None or t.patience >= 0, "train.patience", t.patience, "must be >= 0 or null")
        _check(t.min_delta >= 0, "train.min_delta", t.min_delta, "must be >= 0")
        _check(t.max_weight >= 1, "train.max_weight", t.max_weight, "must be >= 1")
        _check(min(t.t_fast, t.t_nn) >= 0 and t.t_slow > 0, "train.t_fast/t_nn/t_slow",
               [t.t_fast, t.t_nn, t.t_slow], "must be >= 0, >= 0 and > 0 (ms)")
        _check(t.significance_bins >= 1, "train.significance_bins", t.significance_bins, "must be >= 1")
        for key, seed in (("train.seed", t.seed), ("data.split_seed", d.split_seed),
                          ("data.generate_seed", d.generate_seed)):
            _check(0 <= seed <= SEED_MAX, key, seed, "must be in [0, 2**63 - 1]")
        _check(t.amp in AMP_MODES, "train.amp", t.amp, f"must be one of {list(AMP_MODES)}")
        _check(t.device in ("auto", "cpu") or t.device.startswith("cuda"), "train.device", t.device,
               "must be auto, cpu or cuda[:N]")
        _check(not (t.freeze_backbone and t.init_from is None), "train.freeze_backbone", True,
               "needs train.init_from (a checkpoint to take the backbone from)")
        _check(not (t.freeze_backbone and t.lr_backbone is not None), "train.lr_backbone", t.lr_backbone,
               "contradicts train.freeze_backbone (a frozen backbone is not trained): give one or the other")
        if d.path is not None:
            defaults = DataConfig()
            for name in ("generate_events", "generate_seed", "generate_types", "cache_dir"):
                _check(getattr(d, name) == getattr(defaults, name), f"data.{name}", getattr(d, name),
                       "applies only to the embedded sample generated without data.path, but data.path is "
                       "given: drop one of them")
        _check(self.out is None or bool(str(self.out).strip()), "out", self.out, "must name the run folder")
        _check(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be >= 1")
        _check(d.eval_batch_size is None or d.eval_batch_size >= 1, "data.eval_batch_size",
               d.eval_batch_size, "must be >= 1")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(d, name)
            _check(0 <= value < 1, f"data.{name}", value, "must be in [0, 1)")
        _check(d.val_fraction + d.test_fraction < 1, "data.val_fraction + data.test_fraction",
               d.val_fraction + d.test_fraction, "must be < 1")
        _check(d.val_path is not None or d.val_fraction > 0, "data.val_fraction", d.val_fraction,
               "must be > 0 without data.val_path (validation drives early stopping and calibration)")
        _check(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
        if d.bucket_window is not None:
            _check(d.bucket_window >= 0, "data.bucket_window", d.bucket_window, "must be >= 0 or null")
            _check(d.in_memory, "data.bucket_window", d.bucket_window, "needs data.in_memory: true")
            _check(self.loss.name in PER_EVENT_LOSSES and not self.loss.options.get("disco_lambda"),
                   "data.bucket_window", d.bucket_window,
                   f"needs a per-event loss ({', '.join(PER_EVENT_LOSSES)}) without DisCo: a batch-level "
                   f"loss ({self.loss.name}) depends on which events share a batch")
        _check(d.generate_events >= 10, "data.generate_events", d.generate_events, "must be >= 10")
        if d.skims is not None:
            _check(len(d.skims) > 0 and len(set(d.skims)) == len(d.skims), "data.skims", d.skims,
                   "must be a non-empty list of distinct names")
        for skim, eps in (d.retention or {}).items():
            _check(0 < eps < 1, f"data.retention.{skim}", eps, "must be in (0, 1)")
        if t.monitor_skim is not None and d.skims is not None:
            _check(t.monitor_skim in d.skims, "train.monitor_skim", t.monitor_skim,
                   f"is not among data.skims {d.skims}")
        _check(bool(self.model.name), "model.name", self.model.name, "must be a model name")
        _check(bool(self.loss.name), "loss.name", self.loss.name, "must be a loss name")
        _check(not self.loss.options.get("disco_lambda") or self.loss.disco_variable is not None,
               "loss.options.disco_lambda", self.loss.options.get("disco_lambda"),
               "needs loss.disco_variable (what to decorrelate the output from)")


def read_config_file(path):
    """The nested dict of a YAML or JSON config file (``ConfigError`` if missing or malformed)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 text (byte {exc.start})") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: malformed config file ({first})") from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of sections")
    return values or {}


def apply_override(values, key, value):
    """Set ``values[section][option] = value`` for a dotted ``key`` (``out`` and ``imports`` have
    no section).

    Options that are mappings (``model.options``, ``loss.options``, ``data.preprocess``,
    ``data.retention``) take deeper keys: ``model.options.hidden=64``.
    """
    parts = key.split(".")
    if parts == ["imports"]:
        values["imports"] = value
        return
    if parts == ["out"]:
        if value is None or not str(value).strip():
            raise ConfigError(f"option out = {value!r} must name the run folder")
        values["out"] = value
        return
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise ConfigError(f"unknown option {key!r}; options are SECTION.NAME with SECTION in {list(SECTIONS)}")
    target = values.setdefault(parts[0], {})
    if not isinstance(target, dict):
        raise ConfigError(f"option {key!r}: config section {parts[0]!r} must be a mapping, got {target!r}")
    for part in parts[1:-1]:
        child = target.get(part)
        if child is None:
            child = target[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"option {key!r}: {part!r} is not a mapping")
        target = child
    target[parts[-1]] = value


def parse_assignment(text):
    """``"section.option=value"`` -> (key, value) with the value parsed as YAML (numbers, lists ...)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects SECTION.OPTION=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from None
    return key.strip(), value


# ------------------------------------------------------------------ helpers
def _build_section(section_cls, name, values):
    hints = typing.get_type_hints(section_cls)
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"unknown option(s) {[f'{name}.{k}' for k in unknown]}; known: {sorted(known)}")
    return section_cls(**{k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()})


def _coerce(value, hint, key):
    """Check ``value`` against the type ``hint`` (converting where lossless, e.g. "1e-3" -> 0.001)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"option {key} must not be null")
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _coerce_one(value, option)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
    raise ConfigError(f"option {key}: {errors[0] if errors else f'bad value {value!r}'}")


def _coerce_one(value, hint):
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"expected an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(f"expected a number, got {value!r}")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError(f"expected a string, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {value!r}")
        return [_coerce_one(v, item) for v in value]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping, got {value!r}")
        args = typing.get_args(hint)
        if args:
            return {_coerce_one(k, args[0]): _coerce_one(v, args[1]) for k, v in value.items()}
        return dict(value)
    raise TypeError(f"unsupported option type {hint}")


_UnionType = type(int | None)


def _check(ok, key, value, message):
    if not ok:
        raise ConfigError(f"option {key} = {value!r} {message}")
