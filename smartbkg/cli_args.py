"""Argument parsing shared by every console script: one error style, ``--version``, list options.

Every ``smartbkg-*`` command builds its parser as ``ArgumentParser(prog="smartbkg-NAME", ...)``:

* a wrong command line raises :class:`~smartbkg.errors.ConfigError` (``PROG: message``), which
  the console-script wrapper prints as one line ``error: ...`` with exit status 2 (argparse's
  own behaviour is a usage block);
* ``--version`` prints ``PROG VERSION`` and exits 0.

List options take their values one syntax everywhere: space-separated after the option
(``--data a.parquet b.parquet``, ``--skims hadronic leptonic``), which shell globs fill.
Options that take names (:func:`add_list_argument` with ``commas=True``, the default) also
accept commas, ``--skims hadronic,leptonic``, since no name holds a comma; paths do not (a
comma may be part of a file name). Repeating an option adds to its list.

A list option followed by positional arguments takes them as values too: put positional
arguments first, or end the list with ``--``.
"""

import argparse

from . import __version__
from .errors import ConfigError

#: Largest seed a command takes: seeds are non-negative 63-bit integers.
SEED_MAX = 2**63 - 1
#: Largest seed of the commands whose seeds go to scikit-learn or Optuna (NumPy's legacy
#: ``RandomState``, which takes 32-bit seeds).
SEED32_MAX = 2**32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` with one-line :class:`~smartbkg.errors.ConfigError` errors
    and a ``--version`` option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                          help="print the smartbkg version and exit")

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message}")


class _ExtendList(argparse.Action):
    """Append the option's values to its list, splitting each value at commas when ``commas``."""

    def __init__(self, option_strings, dest, commas=True, **kwargs):
        self.commas = commas
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            parts = value.split(",") if self.commas else [value]
            items += [part.strip() for part in parts if part.strip()]
        if not items:
            parser.error(f"argument {option_string}: expected at least one non-empty value")
        setattr(namespace, self.dest, items)


def add_list_argument(parser, *flags, commas=True, **kwargs):
    """Add a list option: ``--opt A B``, repeatable, and ``--opt A,B`` when ``commas`` (names, not paths).

    The parsed value is a list of strings, or ``default`` (None unless given) when the option is absent.
    """
    return parser.add_argument(*flags, nargs="+", action=_ExtendList, commas=commas, **kwargs)


def integer(minimum=None, maximum=None):
    """An argparse ``type``: an integer within [``minimum``, ``maximum``] (either bound optional)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected an integer {_bounds(minimum, maximum)}, got {text!r}")
        return value

    return parse


def _bounds(minimum, maximum):
    if minimum is not None and maximum is not None:
        return f"in [{minimum}, {maximum}]"
    return f">= {minimum}" if minimum is not None else (f"<= {maximum}" if maximum is not None else "")
