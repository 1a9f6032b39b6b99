"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain containers (dicts, lists, tuples, numbers,
strings) only, so it loads with the safe unpickler. Contents written by the trainer:

==================  ================================================================
key                 content
==================  ================================================================
format              checkpoint format version (int)
epoch               last completed epoch (1-based; 0 before training)
step                optimiser steps taken (skipped non-finite steps included)
model               ``state_dict`` of the bare model (never the DDP wrapper)
model_info          {name, options, skims, event_types, vocab_size}: rebuilds the model
config              the resolved :class:`~smartbkg.train.config.RunConfig` as a dict
optimizer           AdamW ``state_dict``
scheduler           scheduler ``state_dict`` ({} for a constant learning rate)
early_stopping      :class:`~smartbkg.train.schedule.EarlyStopping` state
history             list of per-epoch metric dicts
rng                 :func:`rng_state` (python, numpy, torch, CUDA)
retention           true retention eps per skim used by the loss and metrics
calibration         (best checkpoint, after training) the fitted sampling calibration
==================  ================================================================
"""

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import atomic_write

FORMAT_VERSION = 1


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, rename;
    :func:`smartbkg.files.atomic_write`).

    A run killed while writing leaves the previous checkpoint intact; the file gets the usual
    permissions (0666 less the umask).
    """
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint with the safe unpickler (``weights_only=True``).

    Raises:
        DataError: the file is missing, truncated or not a smartbkg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("checkpoint not found", path=path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files (pickle, zip, runtime)
        raise DataError(_load_error(path, exc), path=path) from None
    if not isinstance(state, dict) or "model" not in state or "format" not in state:
        raise DataError("not a smartbkg checkpoint (no 'model'/'format' entries)", path=path)
    if state["format"] > FORMAT_VERSION:
        raise DataError(f"checkpoint format {state['format']} is newer than this smartbkg "
                        f"({FORMAT_VERSION})", path=path)
    return state


#: How torch files start: a zip archive (torch >= 1.6) or a pickle (protocol 2, the legacy format).
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80\x02"


def _load_error(path, exc):
    """One line saying why ``torch.load(path, weights_only=True)`` failed with ``exc``."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "cannot read checkpoint: the file is empty"
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return (f"not a torch checkpoint: the file starts with {head!r}, neither a zip archive (torch.save) "
                "nor a legacy torch pickle")
    text = str(exc)
    if "Unsupported global" in text:  # the safe unpickler met a Python object
        name = text.split("Unsupported global: GLOBAL ", 1)[1].split(" ", 1)[0]
        return (f"cannot read checkpoint: it holds a Python object ({name}) that the safe loader "
                "(weights_only=True) refuses; smartbkg checkpoints hold only tensors and plain containers")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot read checkpoint: truncated or corrupt torch file ({first[:160]})"


def _on_gpu(device):
    return device is not None and torch.device(device).type == "cuda"


def rng_state(device=None):
    """The random states of python, numpy's legacy global generator, torch and, for a CUDA
    ``device`` (this process's GPU), that GPU's generator (plain types; ``cuda`` None otherwise).

    One GPU per process: a run saved on several GPUs resumes on any number of them, each rank
    restoring its own state (the states of every visible GPU would not fit a smaller machine).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if _on_gpu(device) else None,
    }


def set_rng_state(state, device=None):
    """Restore what :func:`rng_state` returned; the GPU state goes to the CUDA ``device``, if
    one is given and the state has one."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if isinstance(state["cuda"], torch.Tensor) and _on_gpu(device):
        torch.cuda.set_rng_state(state["cuda"], device)
