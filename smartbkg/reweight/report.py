"""Figures and a self-contained HTML page of a reweighting (matplotlib with the mplhep style).

:func:`write_report` writes into a folder: ``report.json`` (every number), one PNG per figure
(``variable_<name>.png``: A against B before and after reweighting with a ratio panel;
``weights.png``: the weight distribution; ``fit.png`` when a parameter fit was made) and
``report.html`` with the figures embedded (base64), readable offline.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np

from ..train.logging import finite_or_null


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    return plt


def variable_figure(name, before, after, label, path):
    """A (points), B and reweighted B (steps), and their ratios to A with error bands."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    edges, centres = before.edges, 0.5 * (before.edges[1:] + before.edges[:-1])
    top.errorbar(centres, before.a, yerr=before.a_err, fmt="ko", ms=3, label="A (target)")
    top.stairs(before.b, edges, color="tab:blue", label=f"B, chi2/ndf {before.chi2 / before.ndf:.2f}")
    top.stairs(after.b, edges, color="tab:red", label=f"B reweighted, chi2/ndf {after.chi2 / after.ndf:.2f}")
    top.set_ylabel("events")
    top.legend(fontsize="small", loc="upper right")
    safe = np.where(before.a > 0, before.a, np.nan)
    for comparison, colour in ((before, "tab:blue"), (after, "tab:red")):
        ratio = comparison.b / safe
        err = np.hypot(comparison.b_err, comparison.a_err * ratio) / safe
        bottom.stairs(ratio, edges, color=colour)
        bottom.stairs(ratio + err, edges, baseline=ratio - err, fill=True, alpha=0.25, color=colour)
    bottom.axhline(1.0, color="k", lw=0.8)
    bottom.set_ylim(0.7, 1.3)
    bottom.set_ylabel("B / A")
    bottom.set_xlabel(label)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def weights_figure(weights, path):
    """Histogram of the weights of B's test events (log scale), with the clip if there is one."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    w = weights.w[weights.w > 0]
    ax.hist(w, bins=np.geomspace(w.min(), w.max() * 1.0001, 60), histtype="step", color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if np.isfinite(weights.clip):
        ax.axvline(weights.clip, color="k", ls="--", label=f"clip {weights.clip:g} ({weights.clipped_fraction:.2%})")
        ax.legend(fontsize="small")
    ax.set_xlabel(f"weight (N_eff / N = {weights.n_eff / len(weights.w):.3f})")
    ax.set_ylabel("events")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def fit_figure(fit, path):
    """chi2 of reweighted nominal against pseudo-data versus the parameter, with the fitted parabola."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(fit["values"], fit["chi2"], "ko", label="reweighted nominal vs data")
    grid = np.linspace(min(fit["values"]), max(fit["values"]), 200)
    ax.plot(grid, np.polyval(fit["parabola"], grid), "tab:red", label="parabola")
    ax.axvline(fit["best"], color="tab:red", ls="--", label=f"fit {fit['best']:.4f} +- {fit['best_err']:.4f}")
    if fit.get("truth") is not None:
        ax.axvline(fit["truth"], color="k", ls=":", label=f"truth {fit['truth']:g}")
    ax.set_xlabel(fit["parameter"])
    ax.set_ylabel("chi2")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _image(path):
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'


def write_report(out, result, labels=None, fit=None, title="Classifier reweighting of B into A"):
    """Write ``report.json``, the PNG figures and ``report.html`` of a reweighting into ``out``.

    Args:
        out: the report folder (created).
        result: :class:`~smartbkg.reweight.reweighting.ReweightResult`.
        labels: {feature name: axis label} (default the names).
        fit: optional parameter-fit dict of :func:`smartbkg.reweight.fit.fit_parameter`.

    Returns:
        the summary dict written to ``report.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = labels or {}
    summary = result.summary()
    if fit is not None:
        summary["fit"] = fit
    (out / "report.json").write_text(json.dumps(finite_or_null(summary), indent=1, allow_nan=False) + "\n")
    figures = []
    for name in result.names:
        path = out / f"variable_{name}.png"
        variable_figure(name, result.before[name], result.after[name], labels.get(name, name), path)
        figures.append(path)
    weights_figure(result.weights, out / "weights.png")
    figures.append(out / "weights.png")
    if fit is not None:
        fit_figure(fit, out / "fit.png")
        figures.append(out / "fit.png")
    a, b = summary["auc_before"], summary["auc_after"]
    w = summary["weights"]
    rows = [("second classifier AUC, B vs A", f"{a['auc']:.4f} &plusmn; {a['auc_err']:.4f}",
             f"{b['auc']:.4f} &plusmn; {b['auc_err']:.4f}"),
            ("mean chi2/ndf over the variables", f"{summary['mean_chi2_ndf_before']:.2f}",
             f"{summary['mean_chi2_ndf_after']:.2f}"),
            ("effective sample size N_eff / N", "1", f"{w['n_eff_fraction']:.3f}"),
            ("clipped fraction", "", f"{w['clipped_fraction']:.4f}")]
    if fit is not None:
        rows.append((f"fitted {html.escape(fit['parameter'])}", "",
                     f"{fit['best']:.4f} &plusmn; {fit['best_err']:.4f}"
                     + ("" if fit.get("truth") is None else f" (truth {fit['truth']:g})")))
    summary_rows = "".join(f"<tr><td>{n}</td><td>{x}</td><td>{y}</td></tr>" for n, x, y in rows)
    variable_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{c['chi2_ndf']:.2f}</td><td>{summary['chi2_after'][n]['chi2_ndf']:.2f}"
        f"</td><td>{summary['chi2_after'][n]['p_value']:.3g}</td></tr>" for n, c in summary["chi2_before"].items())
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:3px 8px}}img{{max-width:48%;margin:4px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<table><tr><th></th><th>before</th><th>after reweighting</th></tr>{summary_rows}</table>
<h2>Variables (test events)</h2>
<table><tr><th>variable</th><th>chi2/ndf before</th><th>chi2/ndf after</th><th>p-value after</th></tr>
{variable_rows}</table>
<h2>Figures</h2>
{''.join(_image(p) for p in figures)}
</body></html>
"""
    (out / "report.html").write_text(page)
    return summary
