"""Registries of named components (models, losses) that users extend without touching smartbkg.

A component is added in one of two ways:

* a decorator in the user's own module (:func:`smartbkg.models.register_model`,
  :func:`smartbkg.losses.register_loss`), with the module imported before the run
  (``smartbkg-train --import MODULE``, or ``imports`` in the run config; :func:`import_modules`);
* an entry point of an installed package in the group ``smartbkg.models`` or
  ``smartbkg.losses``, e.g. in the package's ``setup.cfg``::

      [options.entry_points]
      smartbkg.models =
          mynet = mypackage.models:MyNet

  The entry point is loaded the first time its name is asked for; the object it names is
  registered under the entry point's name (unless loading its module registered it already).
"""

import importlib
import os
import sys
from importlib.metadata import entry_points

from .errors import ConfigError


class Registry:
    """Name -> object, filled by :meth:`register` and by the entry-point group ``group``.

    Args:
        kind: what the objects are, for messages ("model", "loss").
        group: the entry-point group searched for names not registered yet.
        adopt: ``adopt(name, obj)`` registers an object loaded from an entry point (default
            :meth:`register`).
    """

    def __init__(self, kind, group, adopt=None):
        self.kind, self.group = kind, group
        self._adopt = adopt or self.register
        self._items = {}

    def register(self, name, obj):
        """Register ``obj`` as ``name``; a name taken by another object raises ``ValueError``."""
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} name {name!r} is already registered")
        self._items[name] = obj
        return obj

    def names(self):
        """Registered names and those the entry-point group offers, sorted."""
        return sorted(set(self._items) | {ep.name for ep in entry_points(group=self.group)})

    def get(self, name):
        """The object registered as ``name``, loading its entry point first if needed.

        Raises:
            ConfigError: unknown name, or an entry point that cannot be loaded.
        """
        if name not in self._items:
            for ep in entry_points(group=self.group, name=name):
                try:
                    obj = ep.load()
                except Exception as exc:  # whatever the user's package raises on import
                    raise ConfigError(f"{self.kind} {name!r}: cannot load entry point {ep.value} of group "
                                      f"{self.group} ({type(exc).__name__}: {exc})") from None
                if name not in self._items:
                    self._adopt(name, obj)
                break
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())} (for one of your "
                              f"own, register it in a module named with --import, or in the entry-point group "
                              f"{self.group})")
        return self._items[name]


def import_modules(names):
    """Import the modules ``names`` (dotted names), e.g. to register components.

    They are looked up on ``sys.path`` and then in the working directory (a console script's
    ``sys.path`` does not hold it), as ``python -m`` would find them.

    Raises:
        ConfigError: a module that cannot be imported (missing, or failing on import).
    """
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in names or ():
        try:
            importlib.import_module(name)
        except Exception as exc:  # whatever the user's module raises on import
            raise ConfigError(f"cannot import module {name!r} ({type(exc).__name__}: {exc})") from None
