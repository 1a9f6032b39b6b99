"""The test suite is a package: its helpers import as ``tests.<folder>.<module>`` in any pytest
import mode (prepend, append, importlib)."""

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_folder_is_a_package():
    folders = [TESTS, *(p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"
                        and not p.name.startswith("."))]
    assert [f for f in folders if not (f / "__init__.py").is_file()] == []


def test_helpers_import_in_importlib_mode():
    """A test module that imports helpers (batches, invariance) under a folder with its own
    conftest collects with ``--import-mode=importlib``, which adds nothing to ``sys.path``."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                             "--import-mode=importlib", str(TESTS / "models" / "test_gatgap.py")],
                            cwd=TESTS.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "tests collected" in result.stdout
