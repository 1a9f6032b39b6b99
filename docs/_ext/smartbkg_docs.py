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
    """Rows of a table if ``value`` is a list of dicts or a dict of dicts with equal keys, else None."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [(None, v) for v in value]
    if (isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values())
            and len({frozenset(v) for v in value.values()}) == 1):      # the same keys in each
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
    """Tables for one JSON value, recursing into nested values.

    A dict's scalars become key/value rows; a list of dicts, a dict of dicts and sibling dicts
    with the same keys (e.g. one rate dict per stage) become one table with a row per record.
    """
    records = _records(value)
    if records is not None:
        return _render_records(records, title)
    if isinstance(value, list):          # a list of lists or of mixed values
        return [table(["index", "value"], [[str(i), fmt(v)] for i, v in enumerate(value)], title)]
    out = []
    scalars = [(k, v) for k, v in value.items() if _scalar(v)]
    if scalars:
        out.append(table(["key", "value"], [[k, fmt(v)] for k, v in scalars], title))
    groups = {}
    for key, sub in value.items():
        if isinstance(sub, dict) and sub and all(_scalar(v) for v in sub.values()):
            groups.setdefault(tuple(sub), []).append(key)
    grouped = set()
    for keys in groups.values():
        if len(keys) > 1:
            grouped.update(keys)
            out.extend(_render_records([(k, value[k]) for k in keys], title))
    for key, sub in value.items():
        if not _scalar(sub) and key not in grouped:
            out.extend(render(sub, f"{title}: {key}" if title else key))
    return out


def _render_records(records, title):
    columns = []
    for _, rec in records:
        columns += [k for k, v in rec.items() if _scalar(v) and k not in columns]
    named = any(name is not None for name, _ in records)
    header = (["name"] if named else []) + columns
    rows = [([name] if named else []) + [fmt(rec[c]) if c in rec else "" for c in columns]
            for name, rec in records]
    out = [table(header, rows, title)] if columns else []
    for name, rec in records:           # nested structure inside the records
        for key, sub in rec.items():
            if not _scalar(sub):
                label = name if name is not None else rec.get("name", rec.get("source", rec.get("model", "")))
                out.extend(render(sub, f"{title}: {label}: {key}" if title else f"{label}: {key}"))
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


def _summary_pipeline(data):
    fig = data["figures"]
    return [("read + validate + preprocess + batch, streaming, events/s per core",
             fmt(fig["pipeline_stream"]["events_per_s_cpu"])),
            ("batch collation versus PyG Batch.from_data_list", f"{fig['collate_ratio']:.1f} x")]


def _summary_generate(data):
    return [("generation + detector + six skims, events/s per core (CPU time)",
             fmt(data["events_per_s_per_core"]["end_to_end_cpu"]))]


def _summary_models(data):
    rows = []
    for name in ("gatgap32", "transformer"):
        res = _get(data["samples"], "synthetic", "results", name)
        if res and not res.get("compiled"):
            rows.append((f"{name} inference, one CPU thread, ms/event", f"{res['infer_ms_per_event']:.3f}"))
    return rows


def _summary_train(data):
    return [(f"{name} training to validation AUC {res['target_auc']}, {data['skim']}, "
             f"{res['train_events']:,} events",
             f"{res['epochs_to_target']} epoch(s), {res['train_s_to_target']:.1f} s")
            for name, res in data["models"].items() if res.get("reached_target")]


#: Headline figures: result file stem -> rows of (quantity, value).
SUMMARY = {"data_pipeline": _summary_pipeline, "generate": _summary_generate,
           "models_cpu": _summary_models, "train_cpu": _summary_train}


def summary_rows(results=RESULTS):
    """Headline figures of the known result files: (quantity, value, file) rows.

    Files that are missing or whose keys have changed contribute nothing; the README's results
    table quotes these values (a test checks that it does).
    """
    rows = []
    for stem, extract in SUMMARY.items():
        path = results / f"{stem}.json"
        if not path.exists():
            continue
        try:
            rows += [(quantity, value, stem) for quantity, value in extract(json.loads(path.read_text()))]
        except (KeyError, TypeError, AttributeError, ValueError):
            continue
    return rows


# ----------------------------------------------------------------------------- known files
def _ms(events_per_s):
    return f"{1000.0 / events_per_s:.3f}" if events_per_s else ""


def _models_tables(data):
    header = ["model", "parameters", "infer ms/event", "best", "train ms/event", "best"]
    out = []
    for sample in data["samples"]:
        rows = [[r["model"] + (" (compiled)" if r.get("compiled") else ""), fmt(r["parameters"]),
                 _ms(r.get("infer_events_per_s")), _ms(r.get("infer_best_events_per_s")),
                 _ms(r.get("train_events_per_s")), _ms(r.get("train_best_events_per_s"))]
                for r in sample["results"]]
        title = (f"{sample['source']} events, {sample['particles_per_event']:.1f} particles per event "
                 f"(median pass and best pass)")
        out.append(table(header, rows, title))
    return out


def _train_tables(data):
    header = ["model", "options", "parameters", "train events/s", "to target", "best val AUC"]
    rows = []
    for name, r in data["models"].items():
        target = (f"{r['epochs_to_target']} epoch(s), {r['train_s_to_target']:.1f} s"
                  if r.get("reached_target") else "not reached")
        rows.append([name, ", ".join(f"{k}={v}" for k, v in r.get("options", {}).items()),
                     fmt(r["parameters"]), fmt(r["train_events_per_s"]), target,
                     f"{r['best_val_auc']:.4f}"])
    target = next(iter(data["models"].values()))["target_auc"]
    return [table(header, rows, f"Training on {data['skim']} to validation AUC {target}")]


def _pipeline_tables(data):
    fig = data["figures"]
    stages = [("read parquet + validate + preprocess + batch (streaming)", "pipeline_stream"),
              ("the same through the in-memory dataset", "pipeline_memory"),
              ("collation only, GraphStore.batches", "collate_fast"),
              ("collation only, PyG Batch.from_data_list", "collate_pyg")]
    rows = [[label, fmt(fig[key]["events_per_s_cpu"]), fmt(fig[key]["events_per_s_wall"])]
            for label, key in stages]
    rows.append(["collation ratio", f"{fig['collate_ratio']:.1f} x", ""])
    title = (f"{fig['events']:,} {data['settings']['source']} events, "
             f"{fig['particles_per_event_preprocessed']:.1f} particles per event after preprocessing")
    return [table(["stage", "events/s per core (CPU time)", "events/s (wall)"], rows, title)]


def _generate_tables(data):
    rates = data["events_per_s_per_core"]
    labels = {"generation": "generation (Pythia + record + lab frame)",
              "detector_skims": "detector + skims", "end_to_end_wall": "end to end, wall clock",
              "end_to_end_cpu": "end to end, process CPU time"}
    rows = [[labels.get(k, k), fmt(v), f"{1000.0 / v:.3f}"] for k, v in rates.items()]
    return [table(["stage", "events/s per core", "ms per event"], rows,
                  f"{data['events']:,} events, {data['mix']} mix")]


def _readers_tables(data):
    rows = [[name, fmt(r["events_per_s"]), fmt(r["particles_per_event"])]
            for name, r in data["results"].items()]
    return [table(["read", "events/s", "particles per event"], rows,
                  f"{data['events']:,} events (HepMC {data['hepmc_events']:,})")]


#: Nicer tables for known result files (stem prefix -> renderer); the generic rendering follows.
KNOWN = {"models_": _models_tables, "train_": _train_tables, "data_pipeline": _pipeline_tables,
         "generate": _generate_tables, "readers": _readers_tables}


def known_tables(stem, data):
    """The nicer tables of a known file, or [] when it is unknown or its keys have changed."""
    for prefix, renderer in KNOWN.items():
        if stem.startswith(prefix):
            try:
                return renderer(data)
            except (KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError, StopIteration):
                return []
    return []


def describe(path, data):
    """A paragraph: the file, the command that wrote it and when."""
    para = nodes.paragraph()
    para += nodes.Text("File ")
    para += nodes.literal(text=f"benchmarks/results/{path.name}")
    if isinstance(data, dict) and isinstance(data.get("command"), str):
        para += nodes.Text(", written by ")
        para += nodes.literal(text=data["command"].strip())
    if isinstance(data, dict) and "when" in data:
        para += nodes.Text(f" on {data['when']}")
    para += nodes.Text(".")
    return para


def file_nodes(path, data, full):
    """Description, the nicer tables and (``full``) every recorded value of one result file."""
    out = [describe(path, data)] + known_tables(path.stem, data)
    if full or len(out) == 1:
        if isinstance(data, dict):
            context = {k: data[k] for k in CONTEXT_KEYS[2:] if k in data}
            if context:
                out += render(context, "machine and load")
            data = {k: v for k, v in data.items() if k not in CONTEXT_KEYS}
        out += render(data, "all recorded values" if len(out) > 1 else "")
    return out


# ----------------------------------------------------------------------------- the directive
class BenchmarkResults(Directive):
    """Benchmark result files of ``benchmarks/results/`` as tables.

    Without options: the headline figures, then one section per file with every value it holds.
    ``:files: a, b``: only those files (by stem), their main tables, no sections (for guide pages).
    """

    has_content = False
    option_spec = {"files": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        chosen = self.options.get("files")
        if chosen is not None:
            paths = [RESULTS / f"{stem.strip()}.json" for stem in chosen.split(",") if stem.strip()]
            missing = [p.name for p in paths if not p.exists()]
            if missing:
                raise self.error(f"benchmark-results: no such result file: {', '.join(missing)}")
        else:
            paths = sorted(RESULTS.glob("*.json"))
        out = []
        summary = summary_rows(RESULTS) if chosen is None else []
        if summary:
            out.append(table(["quantity", "measured", "file"], summary, "Headline figures"))
        for path in paths:
            env.note_dependency(str(path))
            data = json.loads(path.read_text())
            nodes_ = file_nodes(path, data, full=chosen is None)
            if chosen is not None:
                out += nodes_
                continue
            section = nodes.section(ids=[nodes.make_id(f"benchmark-{path.stem}")],
                                    names=[nodes.fully_normalize_name(f"benchmark {path.stem}")])
            section += nodes.title(text=TITLES.get(path.stem, path.stem))
            section += nodes_
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
