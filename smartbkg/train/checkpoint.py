"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` after their checksums.

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
import re
import zipfile
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


#: Entries every checkpoint written by the trainer holds; :meth:`Trainer.resume` needs them all.
RESUME_KEYS = ("format", "epoch", "step", "skipped_steps", "stopped", "model", "model_info", "config", "optimizer",
               "scheduler", "early_stopping", "history", "rng", "retention")


def _names(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: What each entry must be, when present: (test, description for the message).
_ENTRIES = {
    "format": (lambda v: _count(v) and v >= 1, "a format version (a positive integer)"),
    "model": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                                    for k, t in v.items()), "a state_dict of named tensors"),
    "model_info": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str)
                   and isinstance(v.get("options"), dict) and _names(v.get("skims"))
                   and _names(v.get("event_types")) and _count(v.get("vocab_size")),
                   "{name, options, skims, event_types, vocab_size}"),
    "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
                  and isinstance(v.get("param_groups"), list), "an optimizer state_dict {state, param_groups}"),
    "config": (lambda v: isinstance(v, dict), "a run configuration (a mapping)"),
    "epoch": (_count, "a count"), "step": (_count, "a count"), "skipped_steps": (_count, "a count"),
    "stopped": (lambda v: isinstance(v, bool), "true or false"),
    "scheduler": (lambda v: isinstance(v, dict), "a mapping"), "early_stopping": (lambda v: isinstance(v, dict), "a mapping"),
    "history": (lambda v: isinstance(v, list), "a list"),
    "rng": (lambda v: isinstance(v, (list, dict)) and len(v) > 0, "random states (one per rank)"),
    "retention": (lambda v: isinstance(v, dict), "a mapping"),
}


def load_checkpoint(path, map_location="cpu", require=("model_info",)):
    """Read a checkpoint with the safe unpickler (``weights_only=True``) and check its entries.

    Args:
        path: the checkpoint file.
        map_location: where tensors go.
        require: entries needed besides ``format`` and ``model`` (:data:`RESUME_KEYS` to resume a run).

    Raises:
        DataError: one line: the file is missing, truncated or not a smartbkg checkpoint, holds a
            Python object, is of a newer format, lacks a required entry or has an entry of the
            wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("checkpoint not found", path=path)
    _verify_checksums(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files (pickle, zip, runtime)
        raise DataError(_load_error(path, exc), path=path) from None
    if not isinstance(state, dict) or "model" not in state or "format" not in state:
        raise DataError("not a smartbkg checkpoint (no 'model'/'format' entries)", path=path)
    missing = [key for key in require if key not in state]
    if missing:
        raise DataError(f"incomplete checkpoint: no {missing} entries", path=path)
    for key, (ok, what) in _ENTRIES.items():
        if key in state and not ok(state[key]):
            raise DataError(f"damaged checkpoint: entry {key!r} is not {what} (got {type(state[key]).__name__})",
                            path=path)
    if state["format"] > FORMAT_VERSION:
        raise DataError(f"checkpoint format {state['format']} is newer than this smartbkg "
                        f"({FORMAT_VERSION})", path=path)
    return state


def _verify_checksums(path):
    """Check the CRC-32 of every record of a zip checkpoint (``torch.load`` does not): a changed
    byte is a :class:`DataError`, not a changed weight. Files that are no zip archive are left to
    ``torch.load``."""
    with open(path, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:
            return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read checkpoint: truncated or corrupt zip archive ({reason})", path=path) from None
    if bad is not None:
        raise DataError(f"cannot read checkpoint: record {bad!r} fails its checksum (the file changed after it was "
                        "written)", path=path)


def load_model_state(model, weights, path):
    """``model.load_state_dict(weights)``, with a one-line :class:`DataError` naming the checkpoint
    ``path`` when the weights do not fit the model (missing or extra tensors, other shapes)."""
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise DataError(f"model weights do not fit the {type(model).__name__} model: missing {missing[:3]}"
                        f"{' ...' if len(missing) > 3 else ''}, unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}",
                        path=path)
    wrong = [(name, tuple(weights[name].shape), tuple(t.shape)) for name, t in expected.items()
             if weights[name].shape != t.shape]
    if wrong:
        name, found, shape = wrong[0]
        raise DataError(f"model weights do not fit the {type(model).__name__} model: {name} has shape {found}, "
                        f"the model {shape}{f' ({len(wrong) - 1} more tensors differ)' if len(wrong) > 1 else ''}",
                        path=path)
    model.load_state_dict(weights)


#: How torch files start: a zip archive (torch >= 1.6) or a pickle (protocol 2, the legacy format).
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80\x02"
#: How the safe unpickler names a refused object ("Unsupported global: GLOBAL random.Random" up to
#: torch 2.x, "unsupported GLOBAL posix.system" in torch 2.13).
_REFUSED_GLOBAL = re.compile(r"unsupported global:?\s+(?:global\s+)?([\w.]+)", re.IGNORECASE)


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
    refused = _REFUSED_GLOBAL.search(text)
    if refused:  # the safe unpickler met a Python object
        return (f"cannot read checkpoint: it holds a Python object ({refused.group(1)}) that the safe loader "
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
