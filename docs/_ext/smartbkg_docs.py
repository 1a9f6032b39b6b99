"""Sphinx helpers of the smartbkg documentation.

* ``.. benchmark-results::`` renders every ``benchmarks/results/*.json`` as tables at build time:
  a summary of the headline figures (:func:`summary_rows`), then, per file, its command, machine
  and every value it holds (a generic rendering that works for files and keys it has never seen).
* ``copy_notebooks`` puts ``notebooks/*.ipynb`` into the (git-ignored) source folder
  ``docs/notebooks/`` so that myst-nb renders them with their committed outputs.
* A ``missing-reference`` handler resolves references to re-exported names (e.g.
  ``smartbkg.data.read_events``, documented in ``smartbkg.data.readers``) and unqualified names
  used in a docstring of a module that imports them, to the object's documented location.
"""

import importlib
import json
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.ext.napoleon import _process_docstring as napoleon_process_docstring

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

#: Titles of known result files (stem -> title); other files are titled by their name.
TITLES = {
    "data_pipeline": "Data pipeline, synthetic events",
    "data_pipeline_pythia": "Data pipeline, embedded Pythia sample",
    "generate": "Embedded sample generation",
    "models_cpu": "Models on CPU",
    "models_cuda": "Models on GPU",
    "readers": "Readers",
    "train_cpu": "Training to a target AUC on CPU",
    "train_gpu": "Training to a target AUC on GPU",
}

#: Keys that describe how a file was made; shown above its tables, not inside them.
CONTEXT_KEYS = ("command", "when", "machine", "load_average_before", "load_average_after")


# ----------------------------------------------------------------------------- formatting
def fmt(value):
    """A JSON value as table text: thousands separators for large numbers, 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _scalar(value):
    return not isinstance(value, (dict, list)) or (
        isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value))


def _records(value):
    """Rows of a table if ``value`` is a list of dicts or a dict of dicts, else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [(None, v) for v in value]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return list(value.items())
    return None


# ----------------------------------------------------------------------------- docutils nodes
def _row(cells):
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph(text=cell)
        row += entry
    return row


def table(header, rows, title=None):
    """A docutils table of text cells."""
    node = nodes.table(classes=["benchmark-table"])
    if title:
        node += nodes.title(text=title)
    group = nodes.tgroup(cols=len(header))
    node += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    head += _row(header)
    body = nodes.tbody()
    for cells in rows:
        body += _row(cells)
    group += head
    group += body
    return node


def render(value, title):
    """Tables for one JSON value: scalars as key/value rows, records as one table each, recursing."""
    out = []
    if isinstance(value, dict):
        scalars = [(k, v) for k, v in value.items() if _scalar(v)]
        if scalars:
            out.append(table(["key", "value"], [[k, fmt(v)] for k, v in scalars], title))
        for key, sub in value.items():
            if not _scalar(sub):
                out.extend(render(sub, f"{title}: {key}" if title else key))
        return out
    records = _records(value)
    if records is None:          # a list of lists or mixed values
        return [table(["index", "value"], [[str(i), fmt(v)] for i, v in enumerate(value)], title)]
    columns = []
    for _, rec in records:
        columns += [k for k, v in rec.items() if _scalar(v) and k not in columns]
    named = any(name is not None for name, _ in records)
    header = (["name"] if named else []) + columns
    rows = [([name] if named else []) + [fmt(rec[c]) if c in rec else "" for c in columns]
            for name, rec in records]
    if columns:
        out.append(table(header, rows, title))
    for name, rec in records:           # nested structure inside the records
        for key, sub in rec.items():
            if not _scalar(sub):
                label = name if name is not None else rec.get("name", rec.get("source", rec.get("model", "")))
                out.extend(render(sub, f"{title}: {label}: {key}"))
    return out


# ----------------------------------------------------------------------------- headline figures
def _get(data, *keys):
    for key in keys:
        if not isinstance(data, (dict, list)):
            return None
        if isinstance(data, list):
            data = next((d for d in data if isinstance(d, dict) and key in d.values()), None)
        else:
            data = data.get(key)
    return data


def summary_rows(results=RESULTS):
    """Headline figures of the known result files: (quantity, value, file) rows.

    Only files that exist contribute; the README's results table quotes these values.
    """
    def load(stem):
        path = results / f"{stem}.json"
        return json.loads(path.read_text()) if path.exists() else None

    rows = []
    pipe = load("data_pipeline")
    if pipe:
        fig = pipe["figures"]
        rows.append(("read + validate + preprocess + batch, streaming, events/s per core",
                     fmt(fig["pipeline_stream"]["events_per_s_cpu"]), "data_pipeline"))
        rows.append(("batch collation versus PyG Batch.from_data_list",
                     f"{fig['collate_ratio']:.1f} x", "data_pipeline"))
    gen = load("generate")
    if gen:
        rows.append(("generation + detector + six skims, events/s per core (CPU time)",
                     fmt(gen["events_per_s_per_core"]["end_to_end_cpu"]), "generate"))
    models = load("models_cpu")
    if models:
        for name in ("gatgap32", "transformer"):
            res = _get(models["samples"], "synthetic", "results", name)
            if res and not res.get("compiled"):
                rows.append((f"{name} inference, one CPU thread, ms/event",
                             f"{res['infer_ms_per_event']:.3f}", "models_cpu"))
    train = load("train_cpu")
    if train:
        for name, res in train["models"].items():
            if res.get("reached_target"):
                rows.append((f"{name} training to validation AUC {res['target_auc']}, "
                             f"{train['skim']}, {res['train_events']:,} events",
                             f"{res['epochs_to_target']} epoch(s), {res['train_s_to_target']:.1f} s",
                             "train_cpu"))
    return rows


# ----------------------------------------------------------------------------- the directive
class BenchmarkResults(Directive):
    """Every result file of ``benchmarks/results/`` as a section of tables."""

    has_content = False
    option_spec = {"path": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        results = ROOT / self.options.get("path", "benchmarks/results")
        files = sorted(results.glob("*.json"))
        out = []
        summary = summary_rows(results)
        if summary:
            out.append(table(["quantity", "measured", "file"], summary, "Headline figures"))
        for path in files:
            env.note_dependency(str(path))
            data = json.loads(path.read_text())
            section = nodes.section(ids=[nodes.make_id(f"benchmark-{path.stem}")],
                                    names=[nodes.fully_normalize_name(f"benchmark {path.stem}")])
            section += nodes.title(text=TITLES.get(path.stem, path.stem))
            para = nodes.paragraph()
            para += nodes.Text("File ")
            para += nodes.literal(text=f"benchmarks/results/{path.name}")
            if isinstance(data, dict) and "command" in data:
                para += nodes.Text(", written by ")
                para += nodes.literal(text=data["command"].strip())
            if isinstance(data, dict) and "when" in data:
                para += nodes.Text(f" on {data['when']}")
            para += nodes.Text(".")
            section += para
            if isinstance(data, dict):
                context = {k: data[k] for k in CONTEXT_KEYS[2:] if k in data}
                if context:
                    section += render(context, "machine and load")
                data = {k: v for k, v in data.items() if k not in CONTEXT_KEYS}
            for node in render(data, ""):
                section += node
            out.append(section)
        return out


# ----------------------------------------------------------------------------- notebooks
def copy_notebooks(app):
    """Copy ``notebooks/*.ipynb`` into ``docs/notebooks/`` (git-ignored), dropping stale copies."""
    target = Path(app.srcdir) / "notebooks"
    target.mkdir(exist_ok=True)
    sources = {p.name: p for p in (ROOT / "notebooks").glob("*.ipynb")}
    for old in target.glob("*.ipynb"):
        if old.name not in sources:
            old.unlink()
    for name, path in sources.items():
        dest = target / name
        if not dest.exists() or dest.read_bytes() != path.read_bytes():
            shutil.copyfile(path, dest)


# ----------------------------------------------------------------------------- references
def _import(dotted):
    """The object named by a dotted path (module attributes included), or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(target, module):
    """Documented dotted name of ``target`` seen from ``module``, or None."""
    for name in (target, f"{module}.{target}" if module else None):
        if not name or not name.startswith("smartbkg"):
            continue
        head, _, tail = name.rpartition(".")
        obj = _import(name)
        owner = _import(head)
        if isinstance(owner, type) and getattr(owner, "__module__", "").startswith("smartbkg"):
            return f"{owner.__module__}.{owner.__qualname__}.{tail}"
        if obj is not None and getattr(obj, "__module__", "").startswith("smartbkg") and hasattr(obj, "__qualname__"):
            return f"{obj.__module__}.{obj.__qualname__}"
    return None


def resolve_reexports(app, env, node, contnode):
    """``missing-reference``: point a reference to a re-export at the documented object.

    Tried in turn: the object the name stands for (imported, by its ``__module__``), then the one
    documented object of the package whose dotted name ends with the target (module constants).
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target = node["reftarget"].lstrip("~.")
    canonical = _canonical(target, node.get("py:module"))
    if canonical is None:
        matches = [name for name in domain.objects
                   if name.startswith("smartbkg.") and name.endswith(f".{target}")]
        canonical = matches[0] if len(matches) == 1 else None
    if canonical is None or canonical == node["reftarget"]:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical,
                               node, contnode)


def _napoleon_except_data(app, what, name, obj, options, lines):
    """Napoleon for everything but constants and properties.

    Napoleon reads the first line of a constant's docstring as ``type: description``; the
    package's ``#:`` comments and property docstrings are prose ("Belle II timings per event in ms: ..."), so they are
    left as plain reStructuredText.
    """
    if what not in ("data", "attribute", "property"):
        napoleon_process_docstring(app, what, name, obj, options, lines)


def setup(app):
    app.setup_extension("sphinx.ext.napoleon")
    listeners = app.events.listeners["autodoc-process-docstring"]
    for listener in [lst for lst in listeners if lst.handler is napoleon_process_docstring]:
        app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_data)
    app.add_directive("benchmark-results", BenchmarkResults)
    app.connect("builder-inited", copy_notebooks)
    app.connect("missing-reference", resolve_reexports)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
