"""Package exceptions.

Every error caused by the user's input (files, options) is a :class:`SmartBkgError`; the console
scripts print its one-line message without a traceback and exit with status 2.
"""


class SmartBkgError(Exception):
    """Base class of all errors caused by user input (files, options, configuration).

    The message is one line: characters that are not printable (a newline in a file name, a
    control byte in a value) are shown escaped, as ``\\n``.
    """

    def __str__(self):
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in super().__str__())


class DataError(SmartBkgError):
    """Bad input data, located as precisely as known.

    The message reads ``FILE: event N: field F: what is wrong`` with the parts that are known.
    """

    def __init__(self, message, *, path=None, event=None, field=None):
        self.path, self.event, self.field, self.reason = path, event, field, message
        where = []
        if path is not None:
            where.append(str(path))
        if event is not None:
            where.append(f"event {event}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join(where + [message]))


class ConfigError(SmartBkgError):
    """An impossible or unknown option (unknown skim, model, loss, bad value)."""
