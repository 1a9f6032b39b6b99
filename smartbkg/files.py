"""Files and folders written atomically, with the permissions of any other new file.

A file is written to a temporary file in the same folder and renamed over its target, so a
process killed while writing leaves the previous version intact. The temporary file (or folder)
is created with the ordinary mode 0666 (0777 for a folder) less the process umask, as
``open()`` and ``mkdir`` create files: with a umask of 022 a run's files are readable by the
group and by other users (a TensorBoard server under another account, colleagues on a shared
cluster), where ``tempfile.mkstemp`` would make them private (0600).
"""

import contextlib
import os
import secrets
from pathlib import Path


def _temp_name(path):
    """A fresh hidden name beside ``path`` (48 random bits; creation with O_EXCL never reuses one)."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Open ``path`` for writing (``mode`` "w" text or "wb" binary) through a temporary file.

    On leaving the block without an error the file is flushed, synced to disk and renamed to
    ``path``; on an error it is removed and ``path`` is left as it was. Missing parent folders
    are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(text)


def make_temp_dir(parent, prefix):
    """A new empty folder ``parent/prefix<random>.tmp`` (mode 0777 less the umask), to be filled
    and then renamed into place."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = _temp_name(parent / prefix.lstrip("."))
    folder.mkdir(mode=0o777)
    return folder
