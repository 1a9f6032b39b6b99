"""One writer per output folder: an exclusive lock on a file inside it.

:func:`locked_folder` creates the folder if needed and holds an exclusive ``flock`` on
``FOLDER/.lock`` while a command writes there. A second process asking for the same folder is
refused at once with a one-line :class:`~smartbkg.errors.ConfigError` naming the folder and the
process that holds it, before it does any work, so two runs cannot mix their files (one run's
config with the other's checkpoints). The operating system releases the lock when the holder
exits, however it ends (``kill -9`` included); the lock file itself stays and holds the last
holder's process id.

Locks are advisory (they bind only smartbkg commands) and local to one machine on file systems
without working ``flock`` across hosts (some NFS setups).
"""

import contextlib
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

LOCK_FILE = ".lock"


@contextmanager
def locked_folder(path):
    """Hold the exclusive lock of output folder ``path`` (created with its parents) in a ``with`` block.

    Raises:
        ConfigError: ``path`` is a file or cannot be created, or another process holds its lock.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output folder {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {path} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise ConfigError(f"output folder {path} is in use by another smartbkg process"
                              f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end "
                              "or choose another folder") from None
        except OSError as exc:
            raise ConfigError(f"cannot lock output folder {path} ({exc.strerror or exc})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def run_folder_lock(path):
    """:func:`locked_folder` for a command that every DDP rank runs (under ``torchrun``): only the
    first rank (``RANK`` 0 or unset) writes the folder and takes its lock; the others get a no-op
    context."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return locked_folder(path)
