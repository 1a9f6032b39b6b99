"""Search spaces: which options of a :class:`~smartbkg.train.config.RunConfig` a study varies, and how.

A search space is data: a mapping from a config key (``section.option``, deeper for the mapping
options, e.g. ``model.options.units`` or ``loss.options.tau``) to either

* a distribution: ``{type: int, low: 8, high: 64, log: true}`` (``step`` optional),
  ``{type: float, low: 1e-4, high: 1e-2, log: true}`` or
  ``{type: categorical, choices: [gat, gatv2]}`` (a choice may be a list, e.g. a set of pair
  features); any of them may carry ``when: {KEY: VALUE or [VALUES]}``, so that it is only
  sampled when an earlier parameter took one of those values (``loss.options.tau`` only for the
  ``entropeedup`` loss);
* a plain value: the option is fixed for every trial (a restriction of the default space).

:func:`~smartbkg.tune.space.default_space` is the documented default per model: :data:`~smartbkg.tune.space.TRAINING_SPACE` (loss and its
options, learning rate, weight decay, batch size, schedule) followed by the model's entry of
:data:`~smartbkg.tune.space.MODEL_SPACES`. A YAML space file (:func:`~smartbkg.tune.space.load_space`) overrides it key by key::

    model: gatgap                  # optional; must agree with --model
    params:
      model.options.units: {type: int, low: 8, high: 32, log: true}   # a narrower range
      model.options.attention: gat                                      # fixed, not searched
      train.weight_decay: null                                          # not searched (config value)
      loss.options.tau: null
      train.warmup_epochs: {type: float, low: 0, high: 2, when: {train.schedule: cosine}}

Parameter names are the Optuna parameter names, so a trial's ``params`` apply to a config with
:meth:`~smartbkg.train.config.RunConfig.with_overrides`.
"""

import copy
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..losses import build_loss
from ..models import build_model, list_models
from ..train.config import read_config_file

#: Training options searched for every model (in this order; conditions refer to earlier keys).
TRAINING_SPACE = {
    "loss.name": {"type": "categorical", "choices": ["entropy", "speedup", "entropeedup"]},
    "loss.options.tau": {"type": "float", "low": 1.0, "high": 30.0, "log": True,
                         "when": {"loss.name": "entropeedup"}},
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "data.batch_size": {"type": "categorical", "choices": [64, 128, 256]},
    "train.schedule": {"type": "categorical", "choices": ["plateau", "cosine", "constant"]},
}

#: Architecture options searched per model (widths divisible by every head count offered).
MODEL_SPACES = {
    "gatgap": {
        "model.options.units": {"type": "int", "low": 8, "high": 64, "log": True},
        "model.options.heads": {"type": "categorical", "choices": [1, 2, 4, 8]},
        "model.options.layers": {"type": "int", "low": 2, "high": 8},
        "model.options.attention": {"type": "categorical", "choices": ["gat", "gatv2"]},
    },
    "transformer": {
        "model.options.dim": {"type": "categorical", "choices": [32, 64, 128]},
        "model.options.blocks": {"type": "int", "low": 1, "high": 8},
        "model.options.heads": {"type": "categorical", "choices": [2, 4, 8]},
        "model.options.pair_features": {"type": "categorical", "choices": [
            ["adjacency"], ["adjacency", "ln_m2", "angle"],
            ["adjacency", "ln_m2", "angle", "ln_delta", "ln_kt", "ln_z"]]},
        "model.options.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    },
    "lorentz": {
        "model.options.dim": {"type": "categorical", "choices": [32, 64, 128]},
        "model.options.blocks": {"type": "int", "low": 1, "high": 8},
        "model.options.heads": {"type": "categorical", "choices": [2, 4, 8]},
        "model.options.adjacency": {"type": "categorical", "choices": [True, False]},
        "model.options.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    },
    "deepsets": {
        "model.options.hidden": {"type": "categorical", "choices": [32, 64, 128]},
        "model.options.layers": {"type": "int", "low": 2, "high": 4},
    },
}

_KEYS = {"int": {"low", "high", "log", "step"}, "float": {"low", "high", "log", "step"},
         "categorical": {"choices"}}


@dataclass(frozen=True)
class Parameter:
    """One searched option: ``kind`` int, float or categorical, and when it applies.

    ``when`` maps earlier keys to the tuple of values under which this one is sampled.
    """

    name: str
    kind: str
    low: float = None
    high: float = None
    log: bool = False
    step: float = None
    choices: tuple = ()
    when: tuple = ()

    @classmethod
    def from_spec(cls, name, spec):
        spec = dict(spec)
        kind = spec.pop("type", None)
        when = spec.pop("when", None) or {}
        if kind not in _KEYS:
            raise ConfigError(f"parameter {name!r}: type must be one of {', '.join(_KEYS)}, got {kind!r}")
        unknown = sorted(set(spec) - _KEYS[kind])
        if unknown:
            raise ConfigError(f"parameter {name!r}: unknown field(s) {unknown} for type {kind}")
        if not isinstance(when, dict):
            raise ConfigError(f"parameter {name!r}: when must map keys to values, got {when!r}")
        when = tuple((key, tuple(v if isinstance(v, list) else [v])) for key, v in when.items())
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"parameter {name!r}: choices must be a non-empty list")
            return cls(name, kind, choices=tuple(_freeze(c) for c in choices), when=when)
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"parameter {name!r}: {kind} needs numbers low and high") from None
        log, step = bool(spec.get("log", False)), spec.get("step")
        if not low <= high or (log and low <= 0) or (log and step is not None):
            raise ConfigError(f"parameter {name!r}: needs low <= high, low > 0 with log, and no step with log")
        if kind == "int" and (low != int(low) or high != int(high)):
            raise ConfigError(f"parameter {name!r}: int bounds must be integers, got {low}, {high}")
        return cls(name, kind, low, high, log, step, when=when)

    def to_spec(self):
        spec = {"type": self.kind}
        if self.kind == "categorical":
            spec["choices"] = [_thaw(c) for c in self.choices]
        else:
            cast = int if self.kind == "int" else float
            spec.update(low=cast(self.low), high=cast(self.high), log=self.log)
            if self.step is not None:
                spec["step"] = self.step
        if self.when:
            spec["when"] = {key: list(values) for key, values in self.when}
        return spec

    def applies(self, values):
        """Whether the conditions hold for the values chosen so far ({key: value})."""
        return all(_freeze(values.get(key)) in options for key, options in self.when)

    def suggest(self, trial):
        """The value of this parameter in an Optuna ``trial``."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        labels = [_label(c) for c in self.choices]
        return _thaw(self.choices[labels.index(trial.suggest_categorical(self.name, labels))])

    def candidates(self):
        """Values to check the parameter with: the bounds, or every choice."""
        if self.kind == "categorical":
            return [_thaw(c) for c in self.choices]
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]


class SearchSpace:
    """An ordered mapping of config keys to :class:`~smartbkg.tune.space.Parameter` s or fixed values.

    Args:
        model: the model name (``model.name`` of every trial).
        params: {key: spec} as described in :mod:`smartbkg.tune.space`.
    """

    def __init__(self, model, params):
        if model not in list_models():
            raise ConfigError(f"unknown model {model!r}; known: {', '.join(list_models())}")
        self.model = model
        self.params = {}
        for name, spec in params.items():
            if not isinstance(name, str) or len(name.split(".")) < 2:
                raise ConfigError(f"parameter {name!r}: a parameter is a config key SECTION.OPTION")
            self.params[name] = Parameter.from_spec(name, spec) if isinstance(spec, dict) else copy.deepcopy(spec)
        for name, param in self.params.items():
            earlier = list(self.params)[:list(self.params).index(name)]
            for key, _ in getattr(param, "when", ()):
                if key not in earlier:
                    raise ConfigError(f"parameter {name!r}: its condition names {key!r}, which is not an "
                                      "earlier parameter of the space")

    @property
    def searched(self):
        """The parameters that are sampled (not fixed)."""
        return [p for p in self.params.values() if isinstance(p, Parameter)]

    def to_dict(self):
        """{"model": name, "params": {key: spec or value}} (JSON/YAML-safe; :func:`~smartbkg.tune.space.load_space` reads it)."""
        return {"model": self.model,
                "params": {name: p.to_spec() if isinstance(p, Parameter) else p for name, p in self.params.items()}}

    def suggest(self, trial):
        """The config overrides of one trial: {key: value} for the fixed and the applicable sampled keys."""
        values = {"model.name": self.model}
        for name, param in self.params.items():
            if not isinstance(param, Parameter):
                values[name] = param
            elif param.applies(values):
                values[name] = param.suggest(trial)
        return values

    def check(self, config):
        """Raise :class:`~smartbkg.errors.ConfigError` unless ``config`` with the space's values gives a valid config,
        model and loss: every candidate (bounds, choices) and fixed value alone (with the values its
        conditions need), then all at their first candidate together."""
        for name, param in self.params.items():
            values = param.candidates() if isinstance(param, Parameter) else [param]
            need = {key: _thaw(allowed[0]) for key, allowed in getattr(param, "when", ())}
            for value in values:
                _check_values(config, {"model.name": self.model, **need, name: value},
                              f"parameter {name!r} = {value!r}", model=name.startswith("model."))
        first = {"model.name": self.model}
        for name, param in self.params.items():
            if not isinstance(param, Parameter):
                first[name] = param
            elif param.applies(first):
                first[name] = param.candidates()[0]
        _check_values(config, first, "the lower bounds and first choices together")


def default_space(model):
    """The documented default space of ``model``: :data:`~smartbkg.tune.space.TRAINING_SPACE` + :data:`~smartbkg.tune.space.MODEL_SPACES` [model]."""
    if model not in list_models():
        raise ConfigError(f"unknown model {model!r}; known: {', '.join(list_models())}")
    return SearchSpace(model, {**TRAINING_SPACE, **MODEL_SPACES.get(model, {})})


def load_space(source, model=None):
    """The search space of a YAML/JSON file or dict (see :mod:`smartbkg.tune.space`).

    ``params`` update :func:`~smartbkg.tune.space.default_space` of the model: a spec replaces the default of its key,
    a plain value fixes the option, ``null`` drops the key (the option keeps the base config's
    value). ``model`` (the ``--model`` of the command line) and the file's ``model`` must agree
    when both are given.
    """
    values = source if isinstance(source, dict) else read_config_file(source)
    where = "space" if isinstance(source, dict) else f"space file {source}"
    unknown = sorted(set(values) - {"model", "params"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; a space has 'model' and 'params'")
    named = values.get("model")
    if named is not None and model is not None and named != model:
        raise ConfigError(f"{where}: model {named!r} contradicts --model {model!r}")
    model = model or named
    if model is None:
        raise ConfigError(f"{where}: no model given (set 'model' or --model)")
    params = values.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a mapping of config keys")
    merged = default_space(model).to_dict()["params"]
    for name, spec in params.items():
        if spec is None:
            merged.pop(name, None)
        else:
            merged[name] = spec
    try:
        return SearchSpace(model, merged)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_values(config, values, what, *, model=True):
    """Build the config, the loss and (``model``) the model of one assignment (``what`` names it
    in the error)."""
    try:
        trial = config.with_overrides(values)
        if model:
            with torch.device("meta"):  # the constructor's checks without allocating weights
                build_model(trial.model.name, num_skims=1, **trial.model.options)
        loss = trial.loss
        build_loss(loss.name, eps=[0.5], **loss.options)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _freeze(value):
    """Lists as tuples, so that choices can be compared and hashed."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _thaw(value):
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _label(choice):
    """What Optuna stores for a choice: the value, or a list joined by commas (Optuna's choices are scalars)."""
    return ",".join(map(str, choice)) if isinstance(choice, tuple) else choice


