"""The model zoo: every model maps a PyG ``Batch`` (batch contract) to (B, num_skims) logits.

Models are built by name, so that the CLI, configs and Optuna can pick them::

    from smartbkg.models import build_model, list_models
    model = build_model("gatgap", num_skims=3, units=32)
    logits = model(batch)            # (B, 3), no sigmoid

Every model takes keyword-only plain numbers: ``num_skims`` (default 1), ``num_event_types``
(default 8: the seven generic types and "unknown", the code the readers give events whose file
names no type; :data:`smartbkg.data.table.NUM_EVENT_TYPES`), ``vocab_size`` (default: the
shipped PDG vocabulary) and its own sizes; it has ``reset_parameters()``. So
``build_model("gatgap")`` gives a one-skim model for any data the package reads, and a batch
with a PDG token or event type outside the model's tables raises a
:class:`~smartbkg.errors.ConfigError` naming the option to raise (``vocab_size`` or
``num_event_types``; checked on the CPU).

To train a model of your own through ``smartbkg-train``, register it in a module of yours and
name that module with ``--import`` (or publish it under the ``smartbkg.models`` entry-point
group)::

    from smartbkg.models import register_model

    @register_model("mynet")
    class MyNet(torch.nn.Module):
        def __init__(self, *, num_skims=1, num_event_types=8, vocab_size=None, width=64): ...

    # smartbkg-train --import mymodule --model mynet
"""

import inspect

from ..errors import ConfigError
from ..registry import Registry

_REGISTRY = Registry("model", "smartbkg.models")


def register_model(name):
    """Class decorator: make the model constructible as ``build_model(name, **cfg)``.

    Raises:
        ValueError: ``name`` is taken by another class.
    """
    return lambda cls: _REGISTRY.register(name, cls)


def list_models():
    """Names of the registered models (and of those the ``smartbkg.models`` entry points offer), sorted."""
    return _REGISTRY.names()


def model_class(name):
    """The class registered as ``name`` (ConfigError if unknown)."""
    return _REGISTRY.get(name)


def build_model(name, **cfg):
    """Build the model registered as ``name`` with keyword arguments ``cfg``.

    Raises:
        ConfigError: unknown name, arguments the model does not take, or a negative size
            (integer option).
    """
    cls = _REGISTRY.get(name)
    try:
        inspect.signature(cls).bind(**cfg)
    except TypeError as error:
        raise ConfigError(f"model {name!r}: {error}") from None
    negative = {key: value for key, value in cfg.items()
                if isinstance(value, int) and not isinstance(value, bool) and value < 0}
    if negative:
        raise ConfigError(f"model {name!r}: sizes must be >= 0, got {negative}")
    return cls(**cfg)


from . import deepsets, feature_tokens, gatgap, lorentz, transformer  # noqa: E402,F401  (registers the models)

__all__ = ["build_model", "list_models", "model_class", "register_model"]
