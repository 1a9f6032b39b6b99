"""The model zoo: every model maps a PyG ``Batch`` (batch contract) to (B, num_skims) logits.

Models are built by name, so that the CLI, configs and Optuna can pick them::

    from smartbkg.models import build_model, list_models
    model = build_model("gatgap", num_skims=3, units=32)
    logits = model(batch)            # (B, 3), no sigmoid

Every model takes keyword-only plain numbers: ``num_skims`` (required), ``num_event_types``
(default 7), ``vocab_size`` (default: the shipped PDG vocabulary) and its own sizes; it has
``reset_parameters()``.
"""

import inspect

from ..errors import ConfigError

_REGISTRY = {}


def register_model(name):
    """Class decorator: make the model constructible as ``build_model(name, **cfg)``."""
    def register(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = cls
        return cls
    return register


def list_models():
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def build_model(name, **cfg):
    """Build the model registered as ``name`` with keyword arguments ``cfg``.

    Raises:
        ConfigError: unknown name, arguments the model does not take, or a negative size
            (integer option).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    try:
        inspect.signature(_REGISTRY[name]).bind(**cfg)
    except TypeError as error:
        raise ConfigError(f"model {name!r}: {error}") from None
    negative = {key: value for key, value in cfg.items()
                if isinstance(value, int) and not isinstance(value, bool) and value < 0}
    if negative:
        raise ConfigError(f"model {name!r}: sizes must be >= 0, got {negative}")
    return _REGISTRY[name](**cfg)


from . import deepsets, feature_tokens, gatgap, lorentz, transformer  # noqa: E402,F401  (registers the models)

__all__ = ["build_model", "list_models", "register_model"]
