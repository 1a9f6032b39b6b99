"""The example notebooks: the committed files hold exactly the cells defined in
notebooks/build_notebooks.py (its small or its full settings), executed without errors, with
their figures; the small settings execute end to end in the suite, so the committed outputs can
always be rebuilt from the current code."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _builder()

#: Figures each notebook draws at least (PNG outputs).
FIGURES = {"calibration_and_speedup.ipynb": 3}


def _check_outputs(name, notebook):
    """Every code cell ran, none failed, and the notebook's figures are there."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    assert all(cell.execution_count for cell in code)
    assert all(output.output_type != "error" for output in outputs)
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= FIGURES.get(name, 0)


@pytest.mark.parametrize("name", sorted(BUILDER.NOTEBOOKS))
def test_committed_notebook_is_the_executed_definition(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = [(cell.cell_type, cell.source) for cell in notebook.cells]
    assert cells in (BUILDER.NOTEBOOKS[name](full=False), BUILDER.NOTEBOOKS[name](full=True))
    _check_outputs(name, notebook)


@pytest.mark.parametrize("name", sorted(BUILDER.NOTEBOOKS))
def test_notebook_executes_in_its_small_settings(name, tmp_path, monkeypatch):
    pytest.importorskip("nbclient", reason='executing notebooks needs pip install -e ".[notebooks]"')
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, as the suite's (conftest.py)
    BUILDER.main([name, "--out", str(tmp_path)])
    notebook = nbformat.read(tmp_path / name, as_version=4)
    _check_outputs(name, notebook)
