"""The figures of an evaluation report (matplotlib, the mplhep ROOT style, no display needed).

Each function takes the numbers and arrays of one skim (:class:`~smartbkg.report.analysis.SkimResult`)
and returns a ``matplotlib.figure.Figure``; :func:`skim_figures` makes all of them. Figures are
built without ``pyplot`` (no global state, no GUI backend); histograms are ``hist`` objects drawn
with ``mplhep.histplot``.
"""

import hist
import matplotlib.style
import mplhep
import numpy as np
from matplotlib.figure import Figure

from .. import metrics as M
from ..data.event_variables import DESCRIPTIONS
from .analysis import pulls

#: The mplhep ROOT style, with fonts small enough for panels of many variables.
STYLE = [mplhep.style.ROOT, {"font.size": 10, "axes.labelsize": 10, "axes.titlesize": 11, "legend.fontsize": 8,
                             "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 12}]
#: Label and colour of every method.
METHOD_STYLE = {
    "sampling": ("importance sampling", "tab:blue"),
    "threshold_reweighting": ("threshold + reweighting", "tab:orange"),
    "hard_cut": ("hard cut, no weights", "tab:red"),
}


#: One line on every figure of :func:`skim_figures`.
FIGURE_CAPTIONS = {
    "speedup": "speedup of each method, the perfect-classifier limit and (if given) the oracle limit",
    "roc": "ROC curve with the AUC and its Hanley-McNeil error; operating points of the methods",
    "scores": "network logit of passing and failing events; the threshold and the calibration's b",
    "calibration": "sampling probability p(logit) of the run's calibration over the logit histogram; the threshold",
    "speedup_map": "speedup of the exp calibration over (a, b); the run's fitted point and the best grid point",
    "weights": "weights of the kept passing events, with the Kish efficiency of each method",
    "closure_seen": "closure ratios in the variables the second classifier saw",
    "closure_unseen": "closure ratios in the variables the second classifier did not see",
    "pulls": "closure pulls of all bins of all variables against a unit Gaussian",
}


def _figure(width=7.0, height=5.0, **subplots):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots) if subplots else fig.subplots()


def roc_figure(result, skim):
    """ROC curve with the AUC and its error; the operating points of the methods."""
    n, a = result.numbers, result.arrays
    fpr, tpr, _ = M.roc_curve(a["y"], a["logits"], weight=a["weight"])
    fig, ax = _figure(6.0, 5.5)
    auc = n["auc"]
    ax.plot(fpr, tpr, color="black", label=f"network, AUC = {auc['value']:.4f} $\\pm$ {auc['error']:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    sampling = _operating_point(a["p"], a)
    ax.plot(*sampling, "o", color=METHOD_STYLE["sampling"][1], label="sampling: (E[p | fail], E[p | pass])")
    if "kept" in a:
        ax.plot(*_operating_point(a["kept"].astype(float), a), "s", color=METHOD_STYLE["threshold_reweighting"][1],
                label=f"threshold {n['threshold']['value']:.3g}")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{skim}: ROC", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _operating_point(p, a):
    """(f_FP, f_TP): weighted mean of ``p`` over failing and passing events."""
    y, w = a["y"], a["weight"]
    return [float((w * (1 - y)) @ p / (w * (1 - y)).sum())], [float((w * y) @ p / (w * y).sum())]


def _logit_histograms(a):
    """[(label, number of events, colour, weighted ``hist.Hist`` of the logits)] of the passing
    and the failing events, 50 bins over the logit range."""
    axis = hist.axis.Regular(50, *np.quantile(a["logits"], [0.0, 1.0]) + [0, 1e-9], name="logit")
    return [(label, int(mask.sum()), colour,
             hist.Hist(axis, storage=hist.storage.Weight()).fill(a["logits"][mask], weight=a["weight"][mask]))
            for label, mask, colour in (("passing", a["y"] == 1, "tab:green"), ("failing", a["y"] == 0, "tab:gray"))]


def score_figure(result, skim):
    """Logit distributions of passing and failing events (normalised), the threshold and b."""
    n, a = result.numbers, result.arrays
    fig, ax = _figure()
    for label, count, colour, h in _logit_histograms(a):
        mplhep.histplot(h, ax=ax, density=True, label=f"{label} ({count})", color=colour, flow="none")
    _mark_cuts(ax, n)
    ax.set(xlabel="network logit", ylabel="density", title=f"{skim}: score distributions", yscale="log")
    ax.legend(fontsize="small")
    return fig


def _mark_cuts(ax, n):
    if "threshold" in n:
        ax.axvline(n["threshold"]["value"], color=METHOD_STYLE["threshold_reweighting"][1], linestyle="--",
                   label="threshold")
    if n["calibration"]["form"] == "exp":
        ax.axvline(n["calibration"]["params"]["b"], color=METHOD_STYLE["sampling"][1], linestyle=":",
                   label="calibration b (p = 1 above)")


def heatmap_figure(result, skim):
    """Speedup over (a, b) of the exp calibration, the run's fitted point and the grid's best."""
    heat = result.numbers["heatmap"]
    fig, ax = _figure(7.0, 5.5)
    mesh = ax.pcolormesh(heat["b"], heat["a"], np.asarray(heat["speedup"]), shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="speedup")
    best = heat["best"]
    ax.plot(best["b"], best["a"], "*", color="white", markersize=14, markeredgecolor="black",
            label=f"best on these events: {best['speedup']:.3f}")
    if heat["fitted"] is not None:
        fitted = heat["fitted"]
        ax.plot(fitted["b"], fitted["a"], "X", color="red", markersize=11, markeredgecolor="black",
                label=f"run's fit (a={fitted['a']:.3g}, b={fitted['b']:.3g}): {fitted['speedup']:.3f}")
    ax.set(yscale="log", xlabel="b (logit)", ylabel="a", title=f"{skim}: speedup of p = min(exp(a (x - b)), 1)")
    ax.legend(loc="lower left", fontsize="small")
    return fig


def calibration_figure(result, skim):
    """The calibrated p(logit) of the run over the logit histogram, and the threshold step."""
    n, a = result.numbers, result.arrays
    fig, ax = _figure()
    histograms = _logit_histograms(a)
    for label, _, colour, h in histograms:
        mplhep.histplot(h, ax=ax, label=f"{label} events", color=colour, histtype="fill", alpha=0.35, flow="none")
    ax.set(xlabel="network logit", ylabel="events", yscale="log", title=f"{skim}: calibration")
    right = ax.twinx()
    edges = histograms[0][3].axes[0].edges
    x = np.linspace(edges[0], edges[-1], 400)
    order = np.argsort(a["logits"])
    right.plot(a["logits"][order], a["p"][order], color=METHOD_STYLE["sampling"][1], linewidth=2,
               label=f"sampling p(logit), {n['calibration']['form']}")
    if "threshold" in n:
        right.step(x, (x >= n["threshold"]["value"]).astype(float), where="post", linestyle="--",
                   color=METHOD_STYLE["threshold_reweighting"][1], label="threshold: keep or drop")
    right.set(ylabel="probability to keep", ylim=(0, 1.05))
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    right.legend(lines[0] + more[0], lines[1] + more[1], loc="center left", fontsize="small")
    return fig


def weights_figure(result, skim):
    """Weights of the kept passing events of each method, with their Kish efficiencies."""
    n, a = result.numbers, result.arrays
    fig, ax = _figure()
    max_weight = n["calibration"]["max_weight"]
    axis = hist.axis.Regular(40, 1.0, max_weight * 1.001, transform=hist.axis.transform.log, name="event_weight")
    passing = a["y"] == 1
    kept = {"sampling": (a["sampling_keep"] & passing, a["p"])}
    if "threshold_reweighting_probability" in a:
        kept["threshold_reweighting"] = (a["kept"] & passing, a["threshold_reweighting_probability"])
    for method, (mask, p) in kept.items():
        values = n["methods"][method]
        h = hist.Hist(axis).fill(np.clip(1 / p[mask], 1.0, max_weight), weight=a["weight"][mask])
        label, colour = METHOD_STYLE[method]
        mplhep.histplot(h, ax=ax, color=colour, flow="none",
                        label=f"{label}: Kish efficiency {values['kish_efficiency']:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="weight of a kept passing event", ylabel="events",
           title=f"{skim}: weights of kept passing events")
    ax.legend(fontsize="small")
    return fig


def closure_figure(result, skim, variables, title):
    """Ratio panels (weighted kept passing / all passing) of every method in ``variables``, with
    the expected spread of sampling as a band and chi2/ndf per method."""
    n = result.numbers
    columns = 3
    rows = -(-len(variables) // columns)
    fig = Figure(figsize=(4.0 * columns, 2.8 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, name in zip(axes, variables):
        for offset, (method, values) in enumerate(n["methods"].items()):
            c = values["closure"][name]
            edges, ref = np.asarray(c["edges"]), np.asarray(c["reference"])
            safe = np.where(ref > 0, ref, 1.0)
            centres = 0.5 * (edges[1:] + edges[:-1])
            label, colour = METHOD_STYLE[method]
            if method == "sampling":
                band = np.asarray(c["difference_err"]) / safe
                ax.stairs(1 + band, edges, baseline=1 - band, fill=True, color=colour, alpha=0.25)
            shift = (offset - 1) * 0.15 * np.diff(edges)
            ax.errorbar(centres + shift, np.asarray(c["sampled"]) / safe, yerr=np.asarray(c["difference_err"]) / safe,
                        fmt="o", markersize=3, color=colour,
                        label=f"{c['chi2_ndf']:.2f}")
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_ylim(0.5, 1.5)
        ax.set_xlabel(DESCRIPTIONS[name])
        ax.set_ylabel("weighted / all")
        ax.legend(title="$\\chi^2$/ndf", fontsize="x-small", title_fontsize="x-small", loc="best", framealpha=0.6)
    for ax in axes[len(variables):]:
        ax.set_axis_off()
    handles = [axes[0].errorbar([], [], fmt="o", color=METHOD_STYLE[m][1]) for m in n["methods"]]
    fig.legend(handles, [METHOD_STYLE[m][0] for m in n["methods"]], loc="outside lower center",
               ncols=len(handles), fontsize="small")
    fig.suptitle(f"{skim}: closure, {title} (band: expected spread of sampling)")
    return fig


def pulls_figure(result, skim):
    """Pulls of every closure bin of every variable, per method, against a unit Gaussian."""
    n = result.numbers
    fig, ax = _figure()
    axis = hist.axis.Regular(24, -6, 6, name="pull")
    total = 0
    for method, values in n["methods"].items():
        pull = pulls(values["closure"])
        total = max(total, pull.size)
        h = hist.Hist(axis).fill(np.clip(pull, -5.99, 5.99))
        label, colour = METHOD_STYLE[method]
        moments = values["pulls"]
        mplhep.histplot(h, ax=ax, color=colour, flow="none",
                        label=f"{label}: mean {moments['mean']:.2f}, std {moments['std']:.2f}")
    x = np.linspace(-6, 6, 200)
    ax.plot(x, total * 0.5 * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi), color="black", linestyle=":",
            label="unit Gaussian")
    ax.set(xlabel="pull (weighted - all) / error (outside +-6 in the last bins)", ylabel="bins",
           title=f"{skim}: closure pulls, all variables")
    ax.legend(fontsize="small")
    return fig


def speedup_figure(result, skim):
    """Speedup of each method against the perfect-classifier limit (and the oracle limit)."""
    n = result.numbers
    fig, ax = _figure(7.0, 3.8)
    methods = list(n["methods"])
    values = [n["methods"][m]["speedup"] for m in methods]
    ax.barh(range(len(methods)), values, color=[METHOD_STYLE[m][1] for m in methods])
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize="small")
    limits = n["limits"]
    ax.axvline(limits["perfect"], color="black", linestyle="--", label=f"perfect classifier {limits['perfect']:.2f}")
    if limits["oracle"] is not None:
        o = limits["oracle"]
        ax.axvspan(o["speedup"] - o["speedup_err"], o["speedup"] + o["speedup_err"], color="grey", alpha=0.3)
        ax.axvline(o["speedup"], color="grey", label=f"oracle (Bayes) limit {o['speedup']:.2f}")
    ax.set_yticks(range(len(methods)), [METHOD_STYLE[m][0] for m in methods], fontsize="small")
    ax.set(xlabel="speedup", title=f"{skim}: speedup at eps = {n['eps']:.3g}",
           xlim=(0, 1.15 * max(values + [limits["perfect"]])))
    ax.legend(fontsize="small", loc="lower right")
    return fig


def skim_figures(result, skim, seen, unseen):
    """{name: Figure} of every figure of one skim (closure split into the variables the second
    classifier saw and those it did not)."""
    with matplotlib.style.context(STYLE):
        figures = {
            "speedup": speedup_figure(result, skim),
            "roc": roc_figure(result, skim),
            "scores": score_figure(result, skim),
            "calibration": calibration_figure(result, skim),
            "speedup_map": heatmap_figure(result, skim),
            "weights": weights_figure(result, skim),
            "closure_seen": closure_figure(result, skim, seen, "variables the second classifier saw"),
            "closure_unseen": closure_figure(result, skim, unseen, "variables the second classifier did not see"),
            "pulls": pulls_figure(result, skim),
        }
    return figures
