"""Evaluation metrics of a skim filter: ROC/AUC, speedup, effective sample size, significance,
distance correlation.

Pure functions on numpy arrays (1-D, one skim at a time; loop over skims for multi-label
output). Every function takes optional per-event weights ``weight`` (n,) (the Monte Carlo event
weights; 1 when omitted). Bad input (labels not 0/1, non-finite values, probabilities outside
[0, 1], no events of a needed class) raises :class:`~smartbkg.errors.DataError` naming the field;
impossible options raise :class:`~smartbkg.errors.ConfigError`.

The speedup of importance sampling (keep event i with probability p_i, weight it by 1/p_i) is

.. math::

    S = \\frac{t_3\\, a_{eff}}{(\\epsilon f_{TP} + (1-\\epsilon) f_{FP})\\, t_1
        + ((1-\\epsilon) f_{TN} + \\epsilon f_{FN})\\, t_2}

with f_TP = E[p | pass], f_FP = E[p | fail], f_TN = 1 - f_FP, f_FN = 1 - f_TP,
a_eff = 1 / E[1/p | pass], t1 = t_fast + t_NN + t_slow (kept event), t2 = t_fast + t_NN (dropped
event), t3 = t_fast + t_slow (no filter). Derivation: per generated event the filtered chain costs
(keep fraction) t1 + (drop fraction) t2 and yields, in expectation, eps * a_eff effective passing
events (Kish N_eff of the kept passing events is N_pass^2 / sum_pass 1/p); the unfiltered chain
costs t3 per event and yields eps passing events. Times in ms (only their ratios matter).
"""

from typing import NamedTuple

import numpy as np

from .errors import ConfigError, DataError

#: Belle II timings per event in ms, generation, network inference, detector simulation +
#: reconstruction (as measured in "Smart Background Simulation with Graph Attention Networks
#: and Weighting Methods", Belle II, 2022).
T_FAST, T_NN, T_SLOW = 0.08, 0.63, 97.04


# ----------------------------------------------------------------------------- input checks
def _array(values, field, *, n=None):
    """``values`` as a finite 1-D float64 array of length ``n`` (when given)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"expected a 1-D array, got shape {arr.shape}", field=field)
    if n is not None and arr.shape[0] != n:
        raise DataError(f"length {arr.shape[0]} does not match {n} events", field=field)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{np.count_nonzero(~np.isfinite(arr))} non-finite values", field=field)
    return arr


def _labels(y, n=None):
    """Skim flags as a float64 0/1 array."""
    arr = _array(y, "y", n=n)
    if not np.all((arr == 0) | (arr == 1)):
        raise DataError("labels must be 0 or 1", field="y")
    return arr


def _weights(weight, n):
    """Event weights (n,), ones when ``weight`` is None."""
    if weight is None:
        return np.ones(n)
    return _array(weight, "weight", n=n)


def _probabilities(p, n):
    arr = _array(p, "p", n=n)
    if np.any((arr < 0) | (arr > 1)):
        raise DataError("sampling probabilities must lie in [0, 1]", field="p")
    return arr


def _check_timings(t_fast, t_nn, t_slow):
    if min(t_fast, t_nn) < 0 or t_slow <= 0:
        raise ConfigError(
            f"timings must be t_fast >= 0, t_nn >= 0, t_slow > 0 (ms), got {t_fast}, {t_nn}, {t_slow}"
        )


def _check_eps(eps):
    if np.size(eps) == 0 or not 0 < float(np.min(eps)) <= float(np.max(eps)) <= 1:
        raise ConfigError(f"retention rate eps must lie in (0, 1], got {eps}")


def _floor(p, max_weight):
    """Sampling probabilities floored at 1/max_weight (no floor when ``max_weight`` is None)."""
    if max_weight is None:
        return p
    if max_weight < 1:
        raise ConfigError(f"max_weight must be >= 1, got {max_weight}")
    return np.maximum(p, 1.0 / max_weight)


# ----------------------------------------------------------------------------- ROC and AUC
def roc_curve(y, score, *, weight=None):
    """Weighted ROC curve.

    Events are ordered by decreasing ``score``; every distinct score value is one threshold, so
    tied events enter together (a diagonal segment), as in :func:`sklearn.metrics.roc_curve`
    with ``drop_intermediate=False``.

    Args:
        y: (n,) skim flags 0/1.
        score: (n,) classifier output (any monotonic scale: logit or probability).
        weight: (n,) event weights.

    Returns:
        ``(fpr, tpr, thresholds)``, each (k + 1,) for k distinct scores:
        fpr_j = sum_{fail, score >= thr_j} w / sum_fail w, tpr_j likewise over passing events;
        the first point is (0, 0) at threshold +inf.
    """
    y = _labels(y)
    score = _array(score, "score", n=y.shape[0])
    w = _weights(weight, y.shape[0])
    order = np.argsort(-score, kind="mergesort")
    score, y, w = score[order], y[order], w[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), score.shape[0] - 1]
    tp = np.r_[0.0, np.cumsum(w * y)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(w * (1 - y))[last_of_tie]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        raise DataError("the ROC curve needs passing and failing events of positive weight", field="y")
    return fp / fp[-1], tp / tp[-1], np.r_[np.inf, score[last_of_tie]]


def auc(y, score, *, weight=None):
    """Weighted area under the ROC curve, trapezoidal rule over :func:`roc_curve`.

    Equals the weighted probability that a random passing event scores above a random failing
    one, ties counting one half. Arguments as in :func:`roc_curve`; returns a float in [0, 1].
    """
    fpr, tpr, _ = roc_curve(y, score, weight=weight)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


# ----------------------------------------------------------------------------- speedup
def speedup_formula(eps, f_tp, f_fp, a_eff, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW):
    """The speedup of the module docstring from its terms.

    Only arithmetic operators are used, so the arguments may be floats, numpy arrays or torch
    tensors (broadcast together); :mod:`smartbkg.losses` computes the differentiable batch
    speedup with this same function.

    Args:
        eps: true skim retention rate (fraction of events that pass).
        f_tp: E[p | pass]; f_fp: E[p | fail]; a_eff: 1 / E[1/p | pass].
        t_fast, t_nn, t_slow: time per event in ms of generation, network inference,
            detector simulation + reconstruction.
    """
    t1, t2, t3 = t_fast + t_nn + t_slow, t_fast + t_nn, t_fast + t_slow
    kept = eps * f_tp + (1 - eps) * f_fp
    dropped = (1 - eps) * (1 - f_fp) + eps * (1 - f_tp)
    return t3 * a_eff / (kept * t1 + dropped * t2)


def speedup(p, y, *, eps=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW, max_weight=None, weight=None):
    """Speedup of sampling events with probabilities ``p`` (see the module docstring).

    Args:
        p: (n,) sampling probabilities in [0, 1] (calibrated network output). A passing event
            with p = 0 has infinite weight: a_eff = 0 and the speedup is 0.
        y: (n,) skim flags 0/1.
        eps: true retention rate; default: the weighted pass fraction of this sample.
        t_fast, t_nn, t_slow: times per event in ms (default Belle II 0.08, 0.63, 97.04).
        max_weight: floor p at 1/max_weight first (as the production filter does).
        weight: (n,) event weights: class means are weighted means.

    Returns:
        float, > 1 when the filter saves time; 1/speedup is the relative cost.

    The class-conditional means are taken within each class, so the result does not depend on
    the class balance of the sample except through ``eps``.
    """
    function = speedup_function(y, eps=eps, t_fast=t_fast, t_nn=t_nn, t_slow=t_slow, weight=weight)
    return function(_floor(_probabilities(p, function.n), max_weight))


def speedup_function(y, *, eps=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW, weight=None):
    """The speedup as a function of the probabilities, for fixed labels, weights, eps, timings.

    Checks the arguments once (as :func:`speedup`) and returns ``f(p) -> float`` with
    attributes ``n`` (number of events) and ``eps`` (resolved); ``f`` does not check ``p``
    (n,) again: for optimisers that evaluate many candidate probabilities.
    """
    _check_timings(t_fast, t_nn, t_slow)
    y = _labels(y)
    w = _weights(weight, y.shape[0])
    passing, failing = np.flatnonzero(w * y), np.flatnonzero(w * (1 - y))
    w_pass, w_fail = w[passing], w[failing]
    sum_pass, sum_fail = w_pass.sum(), w_fail.sum()
    if sum_pass <= 0:
        raise DataError("speedup needs passing events of positive weight", field="y")
    if eps is None:
        eps = float(sum_pass / (sum_pass + sum_fail))
    _check_eps(eps)
    if sum_fail <= 0 and eps < 1:
        raise DataError(f"speedup with eps={eps} < 1 needs failing events of positive weight", field="y")

    def function(p):
        p_pass = p[passing]
        f_fp = w_fail @ p[failing] / sum_fail if sum_fail > 0 else 0.0
        with np.errstate(divide="ignore"):
            a_eff = sum_pass / np.sum(w_pass / p_pass)
        return float(speedup_formula(eps, w_pass @ p_pass / sum_pass, f_fp, a_eff, t_fast, t_nn, t_slow))

    function.n, function.eps = y.shape[0], eps
    return function


def perfect_speedup(eps, *, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW, max_weight=None):
    """Speedup of a perfect classifier: p = 1 on passing events, p = 1/max_weight (0 without a
    floor) on failing ones: t3 / (eps t1 + (1 - eps) t2) without a floor, the physical limit.

    About 17.46 for eps = 0.05 and the Belle II times; 14.98 with max_weight = 100.
    """
    _check_timings(t_fast, t_nn, t_slow)
    _check_eps(eps)
    floor = 0.0 if max_weight is None else float(_floor(0.0, max_weight))
    return float(speedup_formula(eps, 1.0, floor, 1.0, t_fast, t_nn, t_slow))


def effective_sample_size(w):
    """Kish effective sample size N_eff = (sum w)^2 / sum w^2 of weights ``w`` (n,); 0 if empty."""
    w = _array(w, "weight")
    sum_sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sum_sq if sum_sq > 0 else 0.0


def a_eff(p, y=None, *, weight=None, max_weight=None):
    """Effective events per passing event, a_eff = 1 / E_w[1/p | pass].

    Sampling N_pass passing events with probabilities p and weights 1/p gives, in expectation,
    Kish N_eff = N_pass * a_eff. ``y`` (n,) selects the passing events (all events when None);
    ``max_weight`` floors p first. Returns 0 if a selected event has p = 0.
    """
    p = _probabilities(p, None)
    p = _floor(p, max_weight)
    y = np.ones_like(p) if y is None else _labels(y, p.shape[0])
    w = _weights(weight, p.shape[0]) * y
    if w.sum() <= 0:
        raise DataError("a_eff needs passing events of positive weight", field="y")
    passing = w != 0
    with np.errstate(divide="ignore"):
        return float(w.sum() / np.sum(w[passing] / p[passing]))


# ----------------------------------------------------------------------------- significance
def asimov_significance(s, b):
    """Asimov discovery significance Z = sqrt(2 ((s + b) ln(1 + s/b) - s)), elementwise.

    ``s``, ``b``: expected signal and background counts (arrays or floats); Z = 0 where s = 0 and
    Z = inf where b = 0 < s.
    """
    s, b = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(b, dtype=np.float64))
    z = np.zeros(s.shape)
    ok = (s > 0) & (b > 0)
    z[ok] = np.sqrt(np.maximum(2 * ((s[ok] + b[ok]) * np.log1p(s[ok] / b[ok]) - s[ok]), 0.0))
    z[(s > 0) & (b <= 0)] = np.inf
    return z


class BinnedSignificance(NamedTuple):
    """Result of :func:`binned_significance`: total ``z``, per bin ``z_bins``, ``s``, ``b``
    (n_bins,) and the ``n_bins - 1`` inner bin ``edges`` in score."""

    z: float
    z_bins: np.ndarray
    s: np.ndarray
    b: np.ndarray
    edges: np.ndarray


def binned_significance(score, y, *, weight=None, n_bins=10, min_background=None, merge_empty=False):
    """Combined significance of a signal (y = 1) over background (y = 0) in bins of the score.

    The bins hold equal weighted signal: the inner edges are the weighted signal quantiles
    k/n_bins (k = 1 .. n_bins-1) of ``score``; an event with score equal to an edge goes to the
    lower bin (ties make some bins unequal or empty). Per bin the Asimov significance
    Z_i = sqrt(2 ((s_i + b_i) ln(1 + s_i/b_i) - s_i)) of the summed weights s_i, b_i; combined in
    quadrature, Z = sqrt(sum_i Z_i^2).

    A bin with signal and no background has Z_i = inf (the Asimov limit), and so has the total:
    with a finite background sample the highest-score bins of a good classifier are often empty of
    background. Two remedies:

    * ``merge_empty=True``: every bin without background (b_i <= 0) is merged into its
      lower-score neighbour, repeatedly from the highest bin down, so each merged bin reaches down
      to the first background event below it; bins without background at the bottom join the
      bin above them. The result is finite whenever the sample has background, uses no arbitrary
      scale (unlike a floor on b), and can only lower Z (merging bins never raises the quadrature
      sum): the significance a counting experiment could claim with a background estimate in
      every bin. The returned ``s``, ``b``, ``z_bins`` and ``edges`` are those of the merged bins.
    * ``min_background``: b_i is floored at this value (in units of the weights), after merging.

    Args:
        score: (n,) classifier output; y: (n,) 0/1; weight: (n,) event weights (expected yields).
        n_bins: number of bins (>= 1) before merging.
        min_background: floor of b_i (None: no floor).
        merge_empty: merge bins without background as described above.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins}")
    y = _labels(y)
    score = _array(score, "score", n=y.shape[0])
    w = _weights(weight, y.shape[0])
    signal = y == 1
    order = np.argsort(score[signal], kind="mergesort")
    sig_score, sig_cum = score[signal][order], np.cumsum(w[signal][order])
    if sig_cum.size == 0 or sig_cum[-1] <= 0:
        raise DataError("significance needs signal events of positive weight", field="y")
    targets = sig_cum[-1] * np.arange(1, n_bins) / n_bins
    edges = sig_score[np.minimum(np.searchsorted(sig_cum, targets * (1 - 1e-12)), sig_score.size - 1)]
    bins = np.searchsorted(edges, score, side="left")
    s = np.bincount(bins, weights=w * y, minlength=n_bins)
    b = np.bincount(bins, weights=w * (1 - y), minlength=n_bins)
    if merge_empty:
        s, b, edges = _merge_background_free(s, b, edges)
    b_used = b if min_background is None else np.maximum(b, min_background)
    z_bins = asimov_significance(s, b_used)
    return BinnedSignificance(float(np.sqrt(np.sum(z_bins**2))), z_bins, s, b, edges)


def _merge_background_free(s, b, edges):
    """Bins of :func:`binned_significance` with every bin without background merged downwards.

    Walking from the highest-score bin down, bins are collected into a group until the group has
    background; the group then closes. Left-over bins at the bottom (no background) join the
    lowest closed group. Returns the merged (s, b) and the inner edges between the groups.
    """
    starts, pending = [], 0.0
    for k in range(len(b) - 1, -1, -1):
        pending += b[k]
        if pending > 0:
            starts.append(k)
            pending = 0.0
    starts = sorted(starts[:-1]) if starts else []
    starts = np.array([0, *starts], dtype=np.int64)
    return np.add.reduceat(s, starts), np.add.reduceat(b, starts), edges[starts[1:] - 1]


# ----------------------------------------------------------------------------- distance correlation
def distance_correlation(x, z, *, weight=None, block_elements=2**22):
    """Weighted distance correlation dCor(x, z) of two scalar variables, in [0, 1].

    The V-statistic (biased) estimator with weighted double centring, the same estimator as the
    DisCo regulariser (Kasieczka & Shih, arXiv:2001.05310) and :func:`smartbkg.losses.disco`:
    with normalised weights v = w / sum w, a_ij = abs(x_i - x_j), row means abar_i = sum_j v_j a_ij,
    grand mean abar = sum_i v_i abar_i and A_ij = a_ij - abar_i - abar_j + abar (B likewise
    from z)::

        dCov^2(x, z) = sum_ij v_i v_j A_ij B_ij
                     = sum_ij v_i v_j a_ij b_ij - 2 sum_i v_i abar_i bbar_i + abar bbar,
        dCor^2 = dCov^2(x, z) / sqrt(dCov^2(x, x) dCov^2(z, z)).

    dCor = 0 iff x and z are independent (in the population); = 1 for z = c x + d. The V-statistic
    is biased upwards on finite samples (independent samples give dCor^2 of order 1/n).
    Returns 0 when either variable is constant.

    Args:
        x, z: (n,) values; weight: (n,) non-negative event weights.
        block_elements: memory bound: the n x n distance matrices are summed in row blocks of
            about this many elements (time is O(n^2): subsample very large sets).
    """
    x = _array(x, "x")
    z = _array(z, "z", n=x.shape[0])
    w = _weights(weight, x.shape[0])
    if np.any(w < 0) or w.sum() <= 0:
        raise DataError("distance correlation needs non-negative weights with a positive sum", field="weight")
    v = w / w.sum()
    rows = max(1, block_elements // max(1, x.shape[0]))
    row_a, row_b = np.empty_like(x), np.empty_like(x)
    sums = np.zeros(3)  # sum v v a b, sum v v a a, sum v v b b
    for start in range(0, x.shape[0], rows):
        block = slice(start, start + rows)
        a = np.abs(x[block, None] - x[None, :])
        b = np.abs(z[block, None] - z[None, :])
        row_a[block], row_b[block] = a @ v, b @ v
        sums += v[block] @ np.stack([(a * b) @ v, (a * a) @ v, (b * b) @ v], axis=1)
    mean_a, mean_b = v @ row_a, v @ row_b
    dcov_ab = sums[0] - 2 * v @ (row_a * row_b) + mean_a * mean_b
    dvar_a = sums[1] - 2 * v @ (row_a * row_a) + mean_a**2
    dvar_b = sums[2] - 2 * v @ (row_b * row_b) + mean_b**2
    if dvar_a <= 0 or dvar_b <= 0:
        return 0.0
    return float(np.sqrt(max(dcov_ab, 0.0) / np.sqrt(dvar_a * dvar_b)))
