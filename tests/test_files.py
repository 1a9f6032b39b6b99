"""Atomic writes: the file appears whole or not at all, with the permissions the umask gives."""

import os
import stat

import pytest
import torch

from smartbkg.files import atomic_write, make_temp_dir, write_text_atomic
from smartbkg.train.checkpoint import save_checkpoint
from smartbkg.train.logging import write_history, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_run_files_respect_the_umask(tmp_path, umask_022):
    save_checkpoint({"format": 1, "model": {"w": torch.ones(2)}}, tmp_path / "checkpoints" / "last.pt")
    write_json(tmp_path / "summary.json", {"auc": 0.9})
    write_history(tmp_path, [{"epoch": 1, "train/loss": 0.5}])
    for name in ("checkpoints/last.pt", "summary.json", "metrics.json", "metrics.csv"):
        assert _mode(tmp_path / name) == 0o644, name
    folder = make_temp_dir(tmp_path / "cache", "sample")
    assert _mode(folder) == 0o755 and folder.name.startswith(".sample.")


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == 0o600


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as f:
            f.write(b"new, half written")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
