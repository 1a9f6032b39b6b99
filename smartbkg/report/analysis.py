"""Every number of an evaluation report, computed from per-event arrays, one skim at a time.

Three ways to filter the same events are measured side by side:

``sampling``
    importance sampling with the run's calibration (:mod:`smartbkg.sampling`): keep with
    p = f(logit), weight 1/p; one seeded draw of the keep decisions for the closure test;
    speedup, a_eff, kept fraction and Kish efficiency are expectations over draws.
``threshold_reweighting``
    the cut at a threshold with cross-fitted gradient-boosted weights on the event variables
    ``seen`` (:mod:`smartbkg.threshold_reweighting`); the other event variables are ``unseen``
    by its second classifier, where its residual bias shows.
``hard_cut``
    the same cut without per-event weights (normalised to the passing events): the bias a cut
    leaves.

Closure (:func:`smartbkg.sampling.closure`): per event variable, the weighted kept passing events
against all passing events, in bins of equal passing population (integer bins for counts);
chi2/ndf and its p-value per variable, pulls (sampled - reference) / error of every bin. The
verdict of a method is "closes" when no variable's p-value is below 0.05 / (number of
variables) (Bonferroni), else "biased" with the variables that fail.

The AUC error is the Hanley-McNeil standard error ("The meaning and use of the area under a
receiver operating characteristic (ROC) curve", Radiology 143 (1982) 29) with the Kish sizes of
the passing and failing events. N_eff per kept event is eps a_eff / kept fraction: the effective
passing events each simulated event brings.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2 as chi2_distribution

from .. import metrics as M
from ..data.event_variables import DISCRETE, VARIABLES
from ..errors import ConfigError
from ..sampling import closure, exp_calibration, kish_efficiency, sample
from ..threshold_reweighting import choose_threshold, reweight, threshold_performance

#: Event variables the second classifier of the threshold method sees by default; the others of
#: :data:`smartbkg.data.event_variables.VARIABLES` are left unseen, to show its residual bias.
DEFAULT_SEEN = ("n_particles", "n_charged", "n_photons", "visible_energy", "missing_momentum", "thrust",
                "fox_wolfram_r2", "leading_track_p", "event_type")
#: The methods compared, in table order.
METHODS = ("sampling", "threshold_reweighting", "hard_cut")
#: Family-wise significance of the closure verdict (Bonferroni over the variables).
ALPHA = 0.05


@dataclass
class Options:
    """Choices of an evaluation.

    Attributes:
        fnr: target false-negative rate of the threshold (None: the threshold of highest speedup
            before reweighting, :func:`smartbkg.threshold_reweighting.choose_threshold`).
        seen: event variables given to the second classifier.
        methods: methods to run (a subset of :data:`METHODS`; ``sampling`` always runs).
        folds: cross-fitting folds of the second classifier; seed: seeds the sampling draw,
            the folds and the classifier.
        closure_bins: bins per closure variable (fewer when the passing values repeat).
        heatmap_size: grid points per axis of the speedup map over the exp form's (a, b).
    """

    fnr: float | None = 0.1
    seen: tuple = DEFAULT_SEEN
    methods: tuple = METHODS
    folds: int = 2
    seed: int = 0
    closure_bins: int = 12
    heatmap_size: int = 25
    variables: tuple = field(default=VARIABLES)

    def __post_init__(self):
        unknown = [v for v in self.seen if v not in self.variables]
        if unknown or not self.seen:
            raise ConfigError(f"unknown event variable(s) {unknown or list(self.seen)} for the second classifier; "
                              f"choose from {', '.join(self.variables)}")
        if not self.unseen:
            raise ConfigError("the second classifier must leave some event variables unseen, to measure the bias "
                              "there")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
        self.methods = tuple(m for m in METHODS if m in self.methods or m == "sampling")
        if int(self.folds) != self.folds or self.folds < 2:
            raise ConfigError(f"cross-fitting needs folds >= 2, got {self.folds}")
        if self.fnr is not None and not 0 <= self.fnr < 1:
            raise ConfigError(f"the target false-negative rate must lie in [0, 1), got {self.fnr}")

    @property
    def unseen(self):
        return tuple(v for v in self.variables if v not in self.seen)


@dataclass
class SkimResult:
    """What :func:`analyse_skim` finds: ``numbers`` (JSON-ready, every number of the report for
    the skim) and ``arrays`` (per-event and per-point arrays the numbers and figures come from)."""

    numbers: dict
    arrays: dict


def analyse_skim(logits, y, weight, variables, calibration, eps, timings, options, oracle=None):
    """All numbers of one skim.

    Args:
        logits: (n,) network logits; y: (n,) skim flags 0/1; weight: (n,) event weights.
        variables: {name: (n,) values} event variables.
        calibration: the run's :class:`~smartbkg.sampling.Calibration` of the skim.
        eps: true retention of the skim (the run's); timings: {"t_fast", "t_nn", "t_slow"} [ms].
        options: :class:`Options`.
        oracle: {"speedup", "speedup_err", "perfect_limit"} of the skim, or None.

    Returns:
        :class:`SkimResult`.
    """
    x, y, w = (np.asarray(a, dtype=np.float64) for a in (logits, y, weight))
    kwargs = {"eps": eps, "weight": w, **timings}
    max_weight = calibration.max_weight
    passing = y == 1
    perfect = M.perfect_speedup(eps, **timings)
    numbers = {
        "events": {"total": int(len(y)), "passing": int(passing.sum()), "pass_fraction": float(w @ y / w.sum())},
        "eps": float(eps),
        "auc": auc_with_error(y, x, w),
        "calibration": calibration.to_dict(),
        "limits": {"perfect": perfect,
                   "perfect_floored": M.perfect_speedup(eps, max_weight=max_weight, **timings),
                   "oracle": None if oracle is None else {k: float(oracle[k]) for k in ("speedup", "speedup_err",
                                                                                       "perfect_limit")}},
        "methods": {},
    }
    arrays = {"logits": x, "y": y, "weight": w}
    edges = {name: closure_edges(variables[name][passing], name in DISCRETE, options.closure_bins)
             for name in options.variables}

    p = calibration.apply(x)
    keep, _ = sample(p, options.seed)
    kept_fraction = _kept_fraction(p, y, w, eps)
    a_eff = M.a_eff(p, y, weight=w)
    arrays.update(p=p, sampling_keep=keep)
    numbers["methods"]["sampling"] = {
        "speedup": M.speedup(p, y, **kwargs),
        "a_eff": a_eff,
        "kept_fraction": kept_fraction,
        "kish_efficiency": kish_efficiency(p, y, weight=w),
        "n_eff_per_kept": eps * a_eff / kept_fraction,
        "draw": _draw(keep, np.where(keep, 1 / p, 0.0), y, w),
        "closure": _closures(variables, y, keep, p, w, edges),
    }
    numbers["heatmap"], arrays["heatmap"] = speedup_map(x, y, w, calibration, eps, timings, options.heatmap_size)

    if len(options.methods) > 1:
        threshold = choose_threshold(x, y, fnr=options.fnr, **kwargs)
        features = np.column_stack([variables[name] for name in options.seen])
        numbers["threshold"] = {"value": threshold, "target_fnr": options.fnr, "seen": list(options.seen),
                                "unseen": list(options.unseen), "folds": options.folds}
        for method, reweighter in (("threshold_reweighting", "gbdt"), ("hard_cut", "none")):
            if method not in options.methods:
                continue
            result = reweight(features, x, y, threshold, weight=w, method=reweighter, folds=options.folds,
                              seed=options.seed, max_weight=max_weight)
            perf = threshold_performance(result.kept, result.weights, y, **kwargs)
            arrays.update({"kept": result.kept, f"{method}_probability": result.probability})
            numbers["methods"][method] = {
                "speedup": perf.speedup,
                "a_eff": perf.a_eff,
                "kept_fraction": perf.kept_fraction,
                "kish_efficiency": perf.kish_efficiency,
                "n_eff_per_kept": eps * perf.a_eff / perf.kept_fraction,
                "false_negative_rate": 1 - perf.f_tp,
                "false_positive_rate": perf.f_fp,
                "draw": _draw(result.kept, result.weights, y, w),
                "closure": _closures(variables, y, result.kept, result.probability, w, edges),
            }
    for method, values in numbers["methods"].items():
        _summarise(values, perfect, numbers["limits"]["oracle"], options)
    return SkimResult(numbers, arrays)


def auc_with_error(y, score, w):
    """{"value": weighted AUC, "error": Hanley-McNeil standard error with Kish sizes}."""
    a = M.auc(y, score, weight=w)
    n1, n0 = M.effective_sample_size(w[y == 1]), M.effective_sample_size(w[y == 0])
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return {"value": a, "error": float(np.sqrt(max(variance, 0.0)))}


def closure_edges(values, discrete, bins):
    """Bin edges of a closure variable from its passing values (k,): quantiles (at most ``bins``
    bins of equal population); for a discrete variable a bin from each distinct (rounded)
    quantile value to just below the next one, with half-integer edges."""
    q = np.quantile(values, np.linspace(0, 1, bins + 1))
    if discrete:
        centres = np.unique(np.round(q))
        return np.r_[centres - 0.5, centres[-1] + 0.5]
    edges = np.unique(q)
    return edges if len(edges) > 1 else np.r_[edges[0] - 0.5, edges[0] + 0.5]


def speedup_map(x, y, w, calibration, eps, timings, size):
    """Speedup of the exp calibration over a grid of (a, b), with the fitted and the best point.

    a: ``size`` values log-spaced over [0.02, 20] (the range :meth:`smartbkg.sampling.Calibration.fit` starts from);
    b: ``size`` values from the 1 % to the 99 % quantile of the logits.

    Returns:
        (numbers {"a", "b", "speedup" (size, size) rows a, "best", "fitted" or None}, the same as arrays).
    """
    speedup_of = M.speedup_function(y, eps=eps, weight=w, **timings)
    a_axis = np.geomspace(0.02, 20.0, size)
    b_axis = np.linspace(*np.quantile(x, [0.01, 0.99]), size)
    grid = np.array([[speedup_of(exp_calibration(x, a, b, calibration.max_weight)) for b in b_axis] for a in a_axis])
    i, j = np.unravel_index(np.argmax(grid), grid.shape)
    fitted = None
    if calibration.form == "exp":
        params = calibration.params
        fitted = {"a": params["a"], "b": params["b"], "speedup": speedup_of(calibration.apply(x))}
    numbers = {"a": a_axis.tolist(), "b": b_axis.tolist(), "speedup": grid.tolist(),
               "best": {"a": float(a_axis[i]), "b": float(b_axis[j]), "speedup": float(grid[i, j])},
               "fitted": fitted}
    return numbers, {"a": a_axis, "b": b_axis, "speedup": grid}


def _kept_fraction(p, y, w, eps):
    """eps E_w[p | pass] + (1 - eps) E_w[p | fail]."""
    passing = y == 1
    return float(eps * (w[passing] @ p[passing]) / w[passing].sum()
                 + (1 - eps) * (w[~passing] @ p[~passing]) / w[~passing].sum())


def _draw(keep, r, y, w):
    """Realised counts of one set of keep decisions with weights ``r``: kept events, kept passing
    events and their Kish N_eff (weights w r)."""
    kept_pass = keep & (y == 1)
    return {"kept": int(keep.sum()), "kept_passing": int(kept_pass.sum()),
            "n_eff": M.effective_sample_size(w[kept_pass] * r[kept_pass])}


def _closures(variables, y, keep, p, w, edges):
    """{variable: closure numbers} (chi2, ndf, chi2_ndf, p_value and the bins)."""
    out = {}
    for name, bins in edges.items():
        c = closure(variables[name], y, keep, p, weight=w, bins=bins)
        out[name] = {
            "chi2": c.chi2, "ndf": c.ndf, "chi2_ndf": c.chi2 / max(c.ndf, 1),
            "p_value": float(chi2_distribution.sf(c.chi2, c.ndf)) if c.ndf else 1.0,
            "edges": c.edges.tolist(), "reference": c.reference.tolist(), "reference_err": c.reference_err.tolist(),
            "sampled": c.sampled.tolist(), "sampled_err": c.sampled_err.tolist(),
            "difference_err": c.difference_err.tolist(),
        }
    return out


def pulls(closures):
    """(k,) pulls (sampled - reference) / difference_err of every bin with an error, all variables."""
    parts = []
    for c in closures.values():
        err = np.asarray(c["difference_err"])
        used = err > 0
        parts.append((np.asarray(c["sampled"])[used] - np.asarray(c["reference"])[used]) / err[used])
    return np.concatenate(parts) if parts else np.zeros(0)


def _summarise(values, perfect, oracle, options):
    """Add the worst closure, the verdict, the pull moments and the fractions of the limits."""
    closures = values["closure"]
    worst = max(closures, key=lambda v: closures[v]["chi2_ndf"])
    cut = ALPHA / len(closures)
    failing = [v for v in closures if closures[v]["p_value"] < cut]
    pull = pulls(closures)
    values["worst_closure"] = {"variable": worst, "chi2_ndf": closures[worst]["chi2_ndf"],
                               "min_p_value": min(c["p_value"] for c in closures.values())}
    for group, names in (("seen", options.seen), ("unseen", options.unseen)):
        values["worst_closure"][f"{group}_chi2_ndf"] = max(closures[v]["chi2_ndf"] for v in names)
    values["verdict"] = "closes" if not failing else "biased"
    values["failing_variables"] = failing
    values["pulls"] = {"n": int(pull.size), "mean": float(pull.mean()) if pull.size else 0.0,
                       "std": float(pull.std()) if pull.size else 0.0}
    values["fraction_of_perfect"] = values["speedup"] / perfect
    if oracle is not None:
        ratio = values["speedup"] / oracle["speedup"]
        values["fraction_of_oracle"] = {"value": ratio, "error": ratio * oracle["speedup_err"] / oracle["speedup"]}
