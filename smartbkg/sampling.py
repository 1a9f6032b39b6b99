"""Importance sampling of events: calibrated sampling probabilities, the filter, the closure test.

The network's logit x of an event is mapped to the probability p of keeping the event by a
monotonic calibration function; kept events get the weight 1/p, so weighted distributions of the
kept events are unbiased estimates of the distributions of all events (every event has a chance).

Calibration forms (p is clamped to [1/max_weight, 1]; production uses max_weight = 100):

``exp``
    f(x) = min(exp(a (x - b)), 1), a > 0: p = 1 above the logit b, an exponential tail below.
``skewed_sigmoid``
    f(x) = (1 + a exp(-c (x - b)))^(-1/a), a, c > 0: the general three-parameter form
    (a = c = 1: the logistic sigmoid shifted by b).
``sigmoid``
    f(x) = 1 / (1 + exp(-x)): the network's own probability (no parameters), the "raw" filter.
    :meth:`Calibration.fit` with several forms keeps the one of highest speedup, so a fitted
    calibration is never worse on its fit sample than the raw output when ``sigmoid`` is among them.

Why the exp form suffices (not a proof of uniqueness; the published derivations give none): maximising the
speedup of :mod:`smartbkg.metrics` over p(x) pointwise gives p(x) = clip(C sqrt(q(x)),
1/max_weight, 1) with q(x) = P(pass | x) and C fixed by the sample; for a calibrated classifier
in its tail q ~ e^x, so p ~ e^(x/2): the exp form with a = 1/2.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .errors import ConfigError, DataError
from .metrics import T_FAST, T_NN, T_SLOW, _array, _labels, _probabilities, _weights, speedup_function


# ----------------------------------------------------------------------------- calibration functions
def _floor(p, max_weight):
    if not 1 <= max_weight < np.inf:
        raise ConfigError(f"max_weight must be a finite number >= 1, got {max_weight}")
    return np.maximum(p, 1.0 / max_weight)


def exp_calibration(x, a, b, max_weight=100.0):
    """p = clip(exp(a (x - b)), 1/max_weight, 1) of logits ``x`` (n,); a > 0, b a logit."""
    return _floor(np.exp(np.minimum(a * (np.asarray(x, dtype=np.float64) - b), 0.0)), max_weight)


def skewed_sigmoid(x, a, b, c, max_weight=100.0):
    """p = max((1 + a exp(-c (x - b)))^(-1/a), 1/max_weight) of logits ``x`` (n,); a, c > 0.

    Computed as exp(-softplus(ln a - c (x - b)) / a), stable for any x.
    """
    t = np.log(a) - c * (np.asarray(x, dtype=np.float64) - b)
    return _floor(np.exp(-np.logaddexp(0.0, t) / a), max_weight)


def sigmoid_calibration(x, max_weight=100.0):
    """p = max(1 / (1 + exp(-x)), 1/max_weight) of logits ``x`` (n,): the uncalibrated output."""
    return _floor(np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))), max_weight)


#: form -> (function of ``(x, *params, max_weight)``, parameter names, positive parameters).
FORMS = {
    "exp": (exp_calibration, ("a", "b"), ("a",)),
    "skewed_sigmoid": (skewed_sigmoid, ("a", "b", "c"), ("a", "c")),
    "sigmoid": (sigmoid_calibration, (), ()),
}


def kish_efficiency(p, y, *, weight=None):
    """Expected Kish efficiency N_eff / N_kept of the kept passing events, in (0, 1].

    With final weights w/p (event weight w): E[sum_kept w/p] = sum_pass w,
    E[sum_kept (w/p)^2] = sum_pass w^2/p, E[N_kept] = sum_pass p, so the efficiency is
    (sum_pass w)^2 / (sum_pass w^2/p * sum_pass p) = 1 / (1 + CV^2) with CV the coefficient of
    variation of the kept weights: 1 for equal weights, small for a wide weight distribution.
    """
    y = _labels(y)
    p = _probabilities(p, y.shape[0])
    w = _weights(weight, y.shape[0])
    passing = (y == 1) & (w != 0)
    if not passing.any() or np.any(p[passing] == 0):
        raise DataError("kish_efficiency needs passing events, all with p > 0", field="p")
    return _kish_efficiency(p[passing], w[passing])


def _kish_efficiency(p_pass, w_pass):
    """:func:`kish_efficiency` of the passing events' probabilities and weights, unchecked."""
    return float(np.sum(w_pass) ** 2 / (np.sum(w_pass * w_pass / p_pass) * np.sum(p_pass)))


# ----------------------------------------------------------------------------- the fit
def _grid(logits, y, form):
    """Axes of the starting grid in the unconstrained coordinates (ln a, b[, ln c])."""
    levels = np.linspace(0.0, 1.0, 21)
    b_axis = np.unique(np.r_[np.quantile(logits, levels), np.quantile(logits[y == 1], levels)])
    if form == "exp":
        return [np.log(np.geomspace(0.02, 20.0, 19)), b_axis]
    return [np.log(np.geomspace(0.1, 10.0, 6)), b_axis, np.log(np.geomspace(0.05, 20.0, 10))]


def _params(form, theta):
    names, positive = FORMS[form][1:]
    return {n: float(np.exp(t)) if n in positive else float(t) for n, t in zip(names, theta)}


def _pattern_search(objective, start, steps, *, max_evaluations=400, min_step=1e-6):
    """Deterministic compass search from ``start``: try +-step on every axis, move to the best
    improvement, halve all steps when none improves, stop when the steps are below ``min_step``."""
    best, best_value = np.array(start, dtype=np.float64), objective(start)
    steps = np.array(steps, dtype=np.float64)
    for _ in range(max_evaluations // (2 * len(best))):
        if np.all(steps < min_step):
            break
        trials = [best + sign * step * unit for unit, step in zip(np.eye(len(best)), steps) for sign in (1, -1)]
        values = [objective(t) for t in trials]
        if max(values) > best_value:
            best, best_value = trials[int(np.argmax(values))], max(values)
        else:
            steps = steps / 2
    return best


@dataclass
class Calibration:
    """A fitted map from logits to sampling probabilities.

    Attributes:
        form: "exp", "skewed_sigmoid" or "sigmoid" (see the module docstring).
        params: the form's parameters ("a", "b"[, "c"]; none for "sigmoid"); b is a logit.
        max_weight: p is floored at 1/max_weight.
        fit_info: speedup, kish_efficiency, eps and number of events of the fit sample.
    """

    form: str
    params: dict
    max_weight: float = 100.0
    fit_info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.form not in FORMS:
            raise ConfigError(f"unknown calibration form {self.form!r}; choose one of {', '.join(FORMS)}")
        names, positive = FORMS[self.form][1:]
        if set(self.params) != set(names):
            raise ConfigError(f"calibration form {self.form!r} takes parameters {names}, got {sorted(self.params)}")
        if any(not self.params[n] > 0 for n in positive):
            raise ConfigError(f"calibration parameters {positive} must be > 0, got {self.params}")
        if not 1 <= self.max_weight < np.inf:
            raise ConfigError(f"max_weight must be a finite number >= 1, got {self.max_weight}")

    def apply(self, logits):
        """Sampling probabilities (n,) in [1/max_weight, 1] of logits (n,)."""
        function, names = FORMS[self.form][:2]
        return function(_array(logits, "logits"), *(self.params[n] for n in names), max_weight=self.max_weight)

    @classmethod
    def fit(
        cls,
        logits,
        y,
        *,
        form="exp",
        weight=None,
        eps=None,
        max_weight=100.0,
        t_fast=T_FAST,
        t_nn=T_NN,
        t_slow=T_SLOW,
        rtol=0.01,
    ):
        """Fit the parameters on held-out events to maximise :func:`smartbkg.metrics.speedup`.

        A grid (ln a over [0.02, 20] for exp, [0.1, 10] for the skewed sigmoid, ln c over
        [0.05, 20]; b over the 0, 5, ..., 100 % quantiles of all and of the passing logits) and a
        compass search from its best point; deterministic. Among all evaluated points whose
        speedup is within ``rtol`` (relative) of the best, the one with the narrowest weight
        distribution (largest :func:`kish_efficiency`) is chosen. ``sigmoid`` has no parameters:
        it is evaluated as it is.

        ``form`` may be a sequence of forms, e.g. ``("exp", "sigmoid")``: each is fitted and the
        one with the highest speedup (of its chosen point) is returned, the first listed on a tie;
        ``fit_info["candidates"]`` holds the speedup of every form.

        Args:
            logits: (n,) network logits of one skim; y: (n,) its flags 0/1; weight: (n,).
            form: a form name (see the module docstring) or a sequence of them.
            eps: true retention rate (default: the weighted pass fraction of the sample).
            max_weight, t_fast, t_nn, t_slow: as in :func:`smartbkg.metrics.speedup`.
            rtol: relative speedup tolerance of the narrow-weights preference (0: best speedup).
        """
        forms = (form,) if isinstance(form, str) else tuple(form)
        unknown = [f for f in forms if f not in FORMS]
        if unknown or not forms:
            raise ConfigError(f"unknown calibration form {(unknown or [form])[0]!r}; choose one of {', '.join(FORMS)}")
        if not 0 <= rtol < 1:
            raise ConfigError(f"rtol must lie in [0, 1), got {rtol}")
        y = _labels(y)
        logits = _array(logits, "logits", n=y.shape[0])
        w = _weights(weight, y.shape[0])
        if not np.any(w * y > 0):
            raise DataError("calibration needs passing events of positive weight", field="y")
        speedup_of = speedup_function(y, eps=eps, weight=w, t_fast=t_fast, t_nn=t_nn, t_slow=t_slow)
        fits = [cls._fit_form(f, logits, y, w, speedup_of, float(max_weight), rtol) for f in forms]
        best = max(fits, key=lambda c: c.fit_info["speedup"])  # max keeps the first of equal ones
        if len(forms) > 1:
            best.fit_info["candidates"] = {c.form: c.fit_info["speedup"] for c in fits}
        return best

    @classmethod
    def _fit_form(cls, form, logits, y, w, speedup_of, max_weight, rtol):
        """:meth:`fit` of one form, arguments checked."""
        passing = (y == 1) & (w != 0)
        evaluated = {}

        def objective(theta):
            key = tuple(np.round(theta, 12))
            if key not in evaluated:
                p = cls(form, _params(form, theta), max_weight).apply(logits)
                evaluated[key] = (speedup_of(p), _kish_efficiency(p[passing], w[passing]))
            return evaluated[key][0]

        if FORMS[form][1]:
            axes = _grid(logits, y, form)
            for theta in np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes)):
                objective(theta)
            start = max(evaluated, key=lambda k: evaluated[k][0])
            steps = [np.diff(axis).mean() if axis.size > 1 else 1.0 for axis in axes]
            _pattern_search(objective, np.array(start), steps)
        else:
            objective(np.zeros(0))
        best_speedup = max(v[0] for v in evaluated.values())
        chosen = max(
            (k for k, v in evaluated.items() if v[0] >= best_speedup * (1 - rtol)),
            key=lambda k: (evaluated[k][1], evaluated[k][0]),
        )
        info = {
            "speedup": evaluated[chosen][0],
            "best_speedup": best_speedup,
            "kish_efficiency": evaluated[chosen][1],
            "eps": speedup_of.eps,
            "n_events": int(y.shape[0]),
        }
        return cls(form, _params(form, chosen), max_weight, info)

    def to_dict(self):
        """Plain-data form (JSON/YAML-serialisable) to save next to a checkpoint."""
        return {"form": self.form, "params": dict(self.params), "max_weight": self.max_weight, "fit_info": dict(self.fit_info)}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`; raises ConfigError on a malformed dict."""
        try:
            return cls(data["form"], dict(data["params"]), float(data.get("max_weight", 100.0)), dict(data.get("fit_info", {})))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"malformed calibration {data!r}: {error}") from None


# ----------------------------------------------------------------------------- the filter
def sample(p, seed):
    """The importance-sampling filter: keep event i with probability p_i.

    Args:
        p: (n,) sampling probabilities in [0, 1]; seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(keep, weight)``: (n,) bool mask and (n,) float64 weights, 1/p_i for kept events and 0
        for dropped ones (multiply by the event weights, if any).
    """
    p = _probabilities(p, None)
    keep = np.random.default_rng(seed).random(p.shape[0]) < p
    weight = np.zeros(p.shape[0])
    weight[keep] = 1.0 / p[keep]
    return keep, weight


class Closure(NamedTuple):
    """Result of :func:`closure`: bin ``edges`` (k+1,); per bin (k,) the ``reference``
    histogram of all passing events and its error, the ``sampled`` histogram of kept passing
    events weighted by 1/p and its error, the error of their difference (for pulls);
    ``chi2`` of the difference over ``ndf`` bins."""

    edges: np.ndarray
    reference: np.ndarray
    reference_err: np.ndarray
    sampled: np.ndarray
    sampled_err: np.ndarray
    difference_err: np.ndarray
    chi2: float
    ndf: int


def closure(values, y, keep, p, *, weight=None, bins=20, range=None):
    """Closure (bias) test of importance sampling in one variable.

    Reference: histogram of ``values`` over all passing events (weights w, error sqrt(sum w^2)).
    Sampled: histogram over kept passing events with weights w/p (error sqrt(sum (w/p)^2)).
    Given the generated events, the difference sampled - reference in a bin has mean 0 and
    variance V = sum_{passing in bin} w^2 (1 - p)/p (exactly known, p is known for every event;
    ``difference_err`` = sqrt(V)),
    so chi2 = sum_bins (sampled - reference)^2 / V over the ndf bins with V > 0 follows a
    chi2(ndf) for an unbiased filter. Passing events with p = 0 can never be kept: they add no
    variance, so the bias they cause shows up in chi2 (inf if a bin has no variance at all).

    Args:
        values: (n,) the variable; y: (n,) skim flags; keep: (n,) bool mask from :func:`sample`;
        p: (n,) the probabilities the filter used; weight: (n,) event weights.
        bins, range: as in :func:`numpy.histogram` (range default: that of the passing values).
    """
    y = _labels(y)
    n = y.shape[0]
    values, p, w = _array(values, "values", n=n), _probabilities(p, n), _weights(weight, n)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (n,):
        raise DataError(f"keep mask of shape {keep.shape} does not match {n} events", field="keep")
    if np.any(keep & (p == 0)):
        raise DataError("events with p = 0 cannot have been kept", field="keep")
    passing = y == 1
    if not passing.any():
        raise DataError("closure needs passing events", field="y")
    edges = np.histogram_bin_edges(values[passing], bins=bins, range=range)
    kept = passing & keep
    safe_p = np.where(p > 0, p, 1.0)
    variance = np.where(passing & (p > 0), w**2 * (1 - p) / safe_p, 0.0)

    def histogram(mask, weights):
        return np.histogram(values[mask], bins=edges, weights=weights[mask])[0]

    reference, reference_sq = histogram(passing, w), histogram(passing, w**2)
    sampled, sampled_sq = histogram(kept, w / safe_p), histogram(kept, (w / safe_p) ** 2)
    v = histogram(passing, variance)
    used = v > 0
    chi2 = float(np.sum((sampled[used] - reference[used]) ** 2 / v[used]))
    if not np.allclose(sampled[~used], reference[~used]):
        chi2 = np.inf  # a bin without variance differs: events of p = 0 were lost
    return Closure(
        edges, reference, np.sqrt(reference_sq), sampled, np.sqrt(sampled_sq), np.sqrt(v), chi2, int(used.sum())
    )
