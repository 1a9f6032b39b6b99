"""The documentation: the Sphinx site builds with warnings as errors and broken cross-references
failing, shows every module, notebook and benchmark result file, and the README is valid
reStructuredText that quotes the benchmark results as they are."""

import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.rst").read_text()

_MISSING = [name for name in ("sphinx", "furo", "myst_nb") if importlib.util.find_spec(name) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI must build the documentation: install the docs extra ({', '.join(_MISSING)} missing)")
pytestmark = pytest.mark.skipif(
    bool(_MISSING), reason=f"documentation tools not installed (pip install -e '.[docs]'): {', '.join(_MISSING)}")


def _extension():
    spec = importlib.util.spec_from_file_location("smartbkg_docs", DOCS / "_ext" / "smartbkg_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_build_and_show_every_module_notebook_and_result_file(tmp_path):
    """One test (one build): pytest-xdist would run a shared fixture once per worker."""
    import smartbkg

    site = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), str(DOCS), str(site)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"

    modules = ["smartbkg"] + [m.name for m in pkgutil.walk_packages(smartbkg.__path__, "smartbkg.")]
    missing = [m for m in modules if not (site / "api" / "generated" / f"{m}.html").exists()]
    assert not missing, f"modules without an API page: {missing}"
    index = (site / "index.html").read_text()
    for name in sorted(p.stem for p in (DOCS / "guide").glob("*.rst")):   # the glob toctree
        assert f'href="guide/{name}.html"' in index

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        page = (site / "notebooks" / f"{path.stem}.html").read_text()
        outputs = [out for cell in notebook["cells"] for out in cell.get("outputs", [])]
        assert page.count("<img") >= sum("image/png" in out.get("data", {}) for out in outputs)
        for out in outputs:       # the committed outputs are on the page
            text = "".join(out.get("text", out.get("data", {}).get("text/plain", "")))
            line = next((s for s in text.splitlines() if s.strip() and "<" not in s), None)
            if line:
                assert line.strip().split()[0] in page

    page = (site / "benchmarks.html").read_text()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert f'id="benchmark-{path.stem.replace("_", "-")}"' in page
        assert f"benchmarks/results/{path.name}" in page


def test_benchmark_tables_render_any_json():
    ext = _extension()
    unknown = {"command": "python benchmarks/new.py", "machine": {"cpu": "x"}, "rate": 1234.5,
               "per_type": {"a": {"n": 1, "s": 0.5}, "b": {"n": 2, "s": [1, 2]}},
               "stages": {"x": {"cpu": 1.0}, "y": {"cpu": 2.0, "wall": 3.0}, "note": "n"},
               "runs": [{"model": "m", "t": 1e-5, "curve": [[0, 1], [1, 2]]}], "flags": [True, None]}
    tables = ext.render(unknown, "")
    titles = [t[0].astext() for t in tables if t.children and t[0].tagname == "title"]
    assert {"per_type", "runs", "runs: m: curve", "stages: x", "stages: y"} <= set(titles)
    text = " ".join(t.astext() for t in tables)
    assert "1,234" in text and "1e-05" in text and "1, 2" in text and "true, null" in text
    assert ext.known_tables("models_cpu", {"samples": [{"no": "keys"}]}) == []   # changed keys
    assert ext.fmt(217638.2) == "217,638" and ext.fmt(0.12569) == "0.1257" and ext.fmt(17) == "17"


def test_readme_is_short_valid_rst_quoting_the_benchmark_results():
    from docutils.core import publish_doctree

    publish_doctree(README, settings_overrides={"halt_level": 2, "report_level": 2})  # raises on warnings
    assert len(README.splitlines()) <= 220
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(r"python -m pytest[^\n&|;]*", ci).group(0).strip()
    assert test_command == "python -m pytest -n 2" and test_command in README
    for quantity, value, _ in _extension().summary_rows():
        assert value in README, f"README results table lacks {quantity}: {value}"


def _blocks_after(marker):
    """The text of the indented block that follows the line containing ``marker`` in the README."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line) + 1
    block = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            if block:
                break
            continue
        block.append(line[4:])
    return "\n".join(block).strip("\n")


def test_readme_tour_is_docs_tour():
    assert _blocks_after(".. code-block:: python") == (DOCS / "tour.py").read_text().strip("\n")
    assert _blocks_after("Output (``python docs/tour.py``") == (DOCS / "tour.out").read_text().strip("\n")


@pytest.mark.slow
def test_tour_prints_what_the_docs_show(tmp_path):
    result = subprocess.run([sys.executable, str(DOCS / "tour.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=1800, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == (DOCS / "tour.out").read_text()


def test_documents_speak_of_the_project_only():
    texts = {p: p.read_text() for p in [ROOT / "README.rst", ROOT / "CHANGELOG.rst", ROOT / "CONTRIBUTING.rst",
                                         *DOCS.rglob("*.rst")] if "generated" not in p.parts}
    for path, text in texts.items():
        for pattern in (r"\bissue \d", r"\bseed 00\d", r"SCIENCE\.md", r"/work/", r"\bthe lead\b"):
            assert not re.search(pattern, text, re.IGNORECASE), f"{path}: {pattern}"
