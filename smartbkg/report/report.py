"""Write an evaluation report folder: the library call behind ``smartbkg-evaluate``.

Report folder::

    report.json        every number (per skim: AUC, limits, speedup map, and per method speedup,
                       a_eff, kept fraction, Kish efficiency, N_eff per kept event, closure per
                       variable with its bins, pulls, verdict), the run, data, options, timings
    arrays.npz         the per-event arrays the numbers come from (``variables/NAME``;
                       ``SKIM/logits``, ``SKIM/y``, ``SKIM/weight``, ``SKIM/p``, ``SKIM/sampling_keep``,
                       ``SKIM/kept``, ``SKIM/threshold_reweighting_probability``,
                       ``SKIM/hard_cut_probability``) and the speedup map
    SKIM_FIGURE.png    one PNG per figure (:data:`smartbkg.report.figures.FIGURE_CAPTIONS`)
    report.html        one self-contained page: the summary table, per skim the facts, the closure
                       table and every figure (embedded)
"""

import io
import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..train.run_folder import load_run
from .analysis import ALPHA, Options, analyse_skim
from .figures import skim_figures
from .html import render, summary_rows
from .inputs import load_inputs

#: Keys of an oracle limit entry (one per skim) in an oracle JSON file.
ORACLE_KEYS = ("speedup", "speedup_err", "perfect_limit")


def evaluate(run_dir, data, out, *, skims=None, options=None, oracle=None, batch_size=512, dpi=90):
    """Evaluate the run in ``run_dir`` on the events ``data`` and write the report to ``out``.

    Args:
        run_dir: a finished ``smartbkg-train`` run folder.
        data: event files or folders with the skim labels.
        out: the report folder (created; an existing one must be empty).
        skims: skims to report on (default every skim of the run).
        options: :class:`~smartbkg.report.analysis.Options` (default: all methods, FNR 0.1).
        oracle: path of an oracle-limit JSON ``{"skims": {SKIM: {"speedup", "speedup_err",
            "perfect_limit"}}}`` (optional).
        batch_size: events per network call; dpi: resolution of the PNG figures.

    Returns:
        the report dict (the content of ``report.json``).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} exists and is not empty; choose a new one")
    options = options or Options()
    oracle_limits = read_oracle(oracle) if oracle is not None else {}
    run = load_run(run_dir)
    inputs = load_inputs(run, data, skims=skims, batch_size=batch_size)
    retention = run.config.data.retention or {}
    report = {
        "run": str(run_dir), "model": run.model_info["name"], "data": [str(p) for p in _as_list(data)],
        "oracle_file": None if oracle is None else str(oracle),
        "skims": list(inputs.skims), "timings": run.timings,
        "events": {"read": inputs.events_read, "invalid": inputs.events_invalid, "dropped_empty": inputs.events_dropped,
                   "evaluated": int(len(inputs.weight))},
        "options": {"target_fnr": options.fnr, "seen": list(options.seen), "unseen": list(options.unseen),
                    "methods": list(options.methods), "folds": options.folds, "seed": options.seed,
                    "closure_bins": options.closure_bins, "heatmap_size": options.heatmap_size,
                    "variables": list(options.variables), "alpha": ALPHA},
        "results": {}, "figures": {},
    }
    arrays = {f"variables/{name}": values for name, values in inputs.variables.items()}
    images = {}
    for j, skim in enumerate(inputs.skims):
        y = inputs.y[:, j]
        eps = retention.get(skim, float(inputs.weight @ y / inputs.weight.sum()))
        result = analyse_skim(inputs.logits[:, j], y, inputs.weight, inputs.variables, run.calibrations[skim], eps,
                              run.timings, options, oracle=oracle_limits.get(skim))
        report["results"][skim] = result.numbers
        arrays.update({f"{skim}/{k}": v for k, v in result.arrays.items() if k != "heatmap"})
        arrays.update({f"{skim}/heatmap_{k}": v for k, v in result.arrays["heatmap"].items()})
        images[skim] = {name: _png(fig, dpi) for name, fig in
                        skim_figures(result, skim, options.seen, options.unseen).items()}
        report["figures"][skim] = {name: f"{skim}_{name}.png" for name in images[skim]}
    out.mkdir(parents=True, exist_ok=True)
    for skim, pngs in images.items():
        for name, png in pngs.items():
            (out / report["figures"][skim][name]).write_bytes(png)
    np.savez_compressed(out / "arrays.npz", **arrays)
    (out / "report.json").write_text(json.dumps(_plain(report), indent=1, allow_nan=False) + "\n")
    (out / "report.html").write_text(render(report, images), encoding="utf-8")
    return report


def read_oracle(path):
    """{skim: {"speedup", "speedup_err", "perfect_limit"}} of an oracle-limit JSON file."""
    try:
        data = json.loads(Path(path).read_text())
        skims = data["skims"]
        return {skim: {k: float(entry[k]) for k in ORACLE_KEYS} for skim, entry in skims.items()}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"oracle file {path}: unreadable ({exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"oracle file {path}: expected {{\"skims\": {{SKIM: {{{', '.join(ORACLE_KEYS)}}}}}}}, "
                          f"missing {exc}") from None


def summary_table(report):
    """The side-by-side table of the methods (plain text, one line per skim and method)."""
    header = ("skim", "method", "speedup", "N_eff/kept", "kept frac", "worst chi2/ndf", "verdict")
    lines = [[r["skim"], r["method"], f"{r['speedup']:.3f}", f"{r['n_eff_per_kept']:.3f}",
              f"{r['kept_fraction']:.3f}", f"{r['worst_chi2_ndf']:.2f} ({r['worst_variable']})", r["verdict"]]
             for r in summary_rows(report)]
    widths = [max(len(str(row[k])) for row in [header, *lines]) for k in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, *lines])


def _as_list(data):
    return [data] if isinstance(data, (str, Path)) else list(data)


def _png(fig, dpi):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _plain(value):
    """JSON-ready copy: numpy scalars to Python numbers, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
