"""Threshold + reweighting: the alternative to importance sampling, with its speedup and closure.

Importance sampling (:mod:`smartbkg.sampling`) keeps every event with a chance and is unbiased by
construction. The threshold method of "Smart Background Simulation with Graph Attention Networks
and Weighting Methods" (Belle II, 2022) instead keeps an event if and only if its network logit
is at least a ``threshold``, and corrects the bias of the kept passing events (the true
positives, TP) with respect to all passing events (TP and the false negatives, FN) by weights:

``gbdt``
    A second classifier (scikit-learn's ``HistGradientBoostingClassifier``) on event-level
    variables v, trained on the passing events to tell TP from FN, estimates
    c(v) = P(TP | v, pass); a kept event gets the weight r = 1 / c(v).
``none``
    The hard cut without per-event weights: c is the (weighted) fraction f_TP of passing events
    kept, the same for every event, so the kept events only get the normalisation 1 / f_TP.

c is floored at 1 / max_weight (weights at most max_weight), as sampling probabilities are. The classifier is
cross-fitted: the events are split at random (seeded) into ``folds`` parts and each part is
weighted by a classifier trained on the others, so no event is weighted by a classifier that saw it.

If c is exact, the weighted TP reproduce the passing events in every function of v. In variables
that v does not determine, the events lost below the threshold stay lost: the residual bias the
paper reports. Given v, a passing event is kept with probability c(v) and weighted 1/c(v), just as
importance sampling keeps it with probability p and weights it 1/p, so the closure test of
sampling applies unchanged: :func:`smartbkg.sampling.closure` with ``keep = kept`` and
``p = probability`` (the variance of a bin difference, sum w^2 (1 - c)/c, is what the method
itself claims; a bias beyond it is one the weights do not correct).

The method drops events for good, so its effective sample size counts the kept events only:
the speedup is that of :mod:`smartbkg.metrics` (same timings, retention eps) with a_eff = N_eff of
the kept passing events (weights w r) over N_eff of all passing events (weights w), kept fraction
eps f_TP + (1 - eps) f_FP, f_TP (f_FP) the weighted fraction of passing (failing) events above the
threshold.
"""

from typing import NamedTuple

import numpy as np

from .errors import ConfigError, DataError
from .metrics import T_FAST, T_NN, T_SLOW, _array, _check_eps, _check_timings, _labels, _weights, speedup_formula

#: Ways to turn the second classifier into weights (see the module docstring).
REWEIGHTERS = ("gbdt", "none")
#: Options of the second classifier that differ from scikit-learn's defaults (besides
#: :func:`min_samples_leaf`): an L2 penalty on the leaf values keeps the probabilities of small
#: leaves away from 0, whose inverses would be huge weights. On a one-epoch network's test sample
#: (2000 events, 165 passing events per training fold) the default 0 gave kept events weights up
#: to 81 and a Kish efficiency of 0.08; 10 gave at most 7 and 0.76, with the same closure of the
#: Gaussian toy of the tests.
CLASSIFIER_OPTIONS = {"l2_regularization": 10.0}


def min_samples_leaf(n_train):
    """Smallest leaf of the second classifier for ``n_train`` training events: a tenth of them,
    between scikit-learn's default 20 and 100. Large leaves keep the small probabilities in the
    tails, whose inverses are the weights, from following the noise of the training fold (on a
    Gaussian toy with 5000 passing events per fold, leaves of 20 gave one seed in six a weighted
    tail bin twice too high, leaves of 100 none); small samples need smaller leaves to split at all.
    """
    return int(min(100, max(20, n_train // 10)))


def choose_threshold(logits, y, *, fnr=None, weight=None, eps=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW):
    """The logit threshold of the cut: kept events have ``logits >= threshold``.

    Args:
        logits: (n,) network logits; y: (n,) skim flags 0/1; weight: (n,) event weights.
        fnr: target false-negative rate in [0, 1): the highest threshold whose weighted fraction
            of passing events below it is at most ``fnr``. None: the threshold of highest speedup
            before reweighting (kept passing events at weight 1, an upper bound of the speedup
            after reweighting, whose weights lower N_eff).
        eps, t_fast, t_nn, t_slow: retention and timings (ms) as in :func:`smartbkg.metrics.speedup`.
    """
    y = _labels(y)
    logits = _array(logits, "logits", n=y.shape[0])
    w = _weights(weight, y.shape[0])
    passing = (y == 1) & (w > 0)
    if not passing.any():
        raise DataError("a threshold needs passing events of positive weight", field="y")
    order = np.argsort(logits[passing], kind="mergesort")
    candidates, w_pass = logits[passing][order], w[passing][order]
    below = np.r_[0.0, np.cumsum(w_pass)[:-1]] / w_pass.sum()  # FNR of a cut at each candidate
    if fnr is not None:
        if not 0 <= fnr < 1:
            raise ConfigError(f"the target false-negative rate must lie in [0, 1), got {fnr}")
        return float(candidates[np.searchsorted(below, fnr, side="right") - 1])
    _check_timings(t_fast, t_nn, t_slow)
    failing = (y == 0) & (w > 0)
    eps = _resolve_eps(eps, w, passing, failing)
    fail_sorted = np.sort(logits[failing])
    fail_w = w[failing][np.argsort(logits[failing], kind="mergesort")]
    fail_above = np.r_[np.cumsum(fail_w[::-1])[::-1], 0.0]  # weight of failing events at or above index
    f_fp = fail_above[np.searchsorted(fail_sorted, candidates, side="left")] / max(fail_w.sum(), 1e-300)
    f_tp = 1 - below
    speedups = speedup_formula(eps, f_tp, f_fp, f_tp, t_fast, t_nn, t_slow)
    return float(candidates[int(np.argmax(speedups))])


class Reweighting(NamedTuple):
    """Result of :func:`reweight`: the ``threshold``; per event (n,) the ``kept`` mask, the
    ``weights`` (1/c for kept events, 0 for dropped ones; multiply by the event weights) and the
    cross-fitted ``probability`` c = P(TP | v, pass) of every event."""

    threshold: float
    kept: np.ndarray
    weights: np.ndarray
    probability: np.ndarray


def reweight(features, logits, y, threshold, *, weight=None, method="gbdt", folds=2, seed=0, max_weight=100.0,
             classifier_options=None, threads=1):
    """Cut at ``threshold`` and weight the kept events (see the module docstring).

    Args:
        features: (n, k) event-level variables v given to the second classifier.
        logits: (n,) network logits; y: (n,) skim flags 0/1; weight: (n,) event weights.
        threshold: kept events have ``logits >= threshold`` (:func:`choose_threshold`).
        method: ``"gbdt"`` or ``"none"``.
        folds: number of cross-fitting folds (>= 2); seed: seeds the folds and the classifier.
        max_weight: weights are at most this (c floored at 1 / max_weight).
        classifier_options: keyword arguments of ``HistGradientBoostingClassifier`` (defaults:
            :data:`CLASSIFIER_OPTIONS`, ``min_samples_leaf`` from :func:`min_samples_leaf`).
        threads: OpenMP threads of the classifier (None: all cores). One by default: on a busy
            machine OpenMP threads that wait for each other cost more than they bring (a fit on
            250 events took 4.5 s with two threads and 0.17 s with one, on a loaded 2-core machine).

    Returns:
        :class:`Reweighting`.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    if method not in REWEIGHTERS:
        raise ConfigError(f"unknown reweighter {method!r}; choose one of {', '.join(REWEIGHTERS)}")
    if int(folds) != folds or folds < 2:
        raise ConfigError(f"cross-fitting needs folds >= 2, got {folds}")
    if not 1 <= max_weight < np.inf:
        raise ConfigError(f"max_weight must be a finite number >= 1, got {max_weight}")
    y = _labels(y)
    n = y.shape[0]
    logits = _array(logits, "logits", n=n)
    w = _weights(weight, n)
    features = np.asarray(features, dtype=np.float64).reshape(n, -1)
    kept = logits >= threshold
    passing = (y == 1) & (w > 0)
    if not (passing & kept).any():
        raise DataError(f"no passing event has a logit above the threshold {threshold:g}", field="logits")
    fold = np.random.default_rng(seed).permutation(n) % folds
    probability = np.ones(n)
    for k in range(folds):
        train, test = passing & (fold != k), fold == k
        target = kept[train]
        if method == "none" or target.all() or not target.any():  # c: the fraction kept
            probability[test] = w[train] @ target.astype(float) / w[train].sum() if target.size else 1.0
            continue
        options = {"random_state": seed, "min_samples_leaf": min_samples_leaf(int(train.sum())),
                   **CLASSIFIER_OPTIONS, **(classifier_options or {})}
        with threadpool_limits(limits=threads, user_api="openmp"):
            model = HistGradientBoostingClassifier(**options).fit(features[train], target, sample_weight=w[train])
            probability[test] = model.predict_proba(features[test])[:, 1]
    probability = np.clip(probability, 1.0 / max_weight, 1.0)
    weights = np.where(kept, 1.0 / probability, 0.0)
    return Reweighting(float(threshold), kept, weights, probability)


class Performance(NamedTuple):
    """Result of :func:`threshold_performance`: ``speedup``; ``a_eff``, N_eff of the kept passing
    events per N_eff of all passing events; ``kept_fraction`` of all events (at the retention
    eps); ``kish_efficiency``, N_eff of the kept passing events with and without the weights r
    (their weight spread); ``f_tp``, ``f_fp``, the weighted fractions of passing and failing
    events kept."""

    speedup: float
    a_eff: float
    kept_fraction: float
    kish_efficiency: float
    f_tp: float
    f_fp: float


def threshold_performance(kept, weights, y, *, weight=None, eps=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW):
    """Speedup and effective sample size of the threshold method (module docstring).

    Args:
        kept: (n,) bool, events above the threshold; weights: (n,) their weights r (ignored for
            dropped events; ones for the hard cut without weights).
        y: (n,) skim flags 0/1; weight: (n,) event weights.
        eps, t_fast, t_nn, t_slow: as in :func:`smartbkg.metrics.speedup`.
    """
    _check_timings(t_fast, t_nn, t_slow)
    y = _labels(y)
    n = y.shape[0]
    w = _weights(weight, n)
    r = _array(weights, "weights", n=n)
    kept = np.asarray(kept, dtype=bool).reshape(n)
    passing, failing = (y == 1) & (w > 0), (y == 0) & (w > 0)
    if not passing.any():
        raise DataError("the speedup needs passing events of positive weight", field="y")
    eps = _resolve_eps(eps, w, passing, failing)
    kept_pass = passing & kept
    f_tp = w[kept_pass].sum() / w[passing].sum()
    f_fp = w[failing & kept].sum() / w[failing].sum() if failing.any() else 0.0
    n_eff_kept = _kish(w[kept_pass] * r[kept_pass])
    a_eff = n_eff_kept / _kish(w[passing])
    kish = n_eff_kept / _kish(w[kept_pass]) if kept_pass.any() else 0.0
    speedup = float(speedup_formula(eps, f_tp, f_fp, a_eff, t_fast, t_nn, t_slow))
    return Performance(speedup, float(a_eff), float(eps * f_tp + (1 - eps) * f_fp), float(kish), float(f_tp),
                       float(f_fp))


def _kish(w):
    """Kish N_eff = (sum w)^2 / sum w^2 of weights (k,); 0 when empty."""
    sum_sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sum_sq if sum_sq > 0 else 0.0


def _resolve_eps(eps, w, passing, failing):
    """The retention eps: given, or the weighted pass fraction."""
    if eps is None:
        eps = float(w[passing].sum() / (w[passing].sum() + w[failing].sum()))
    _check_eps(eps)
    return float(eps)
