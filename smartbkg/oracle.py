"""The Bayes limit of a skim filter: the oracle filter on the embedded sample.

The embedded detector response (:func:`smartbkg.simulation.detector.reconstruct`) is random given
the generator record, so whether an event passes a skim is a coin flip with probability
q(x) = P(pass | generator record x), and no network that reads the record can do better than
knowing q. Maximising the speedup of :mod:`smartbkg.metrics` over the sampling probability p(x)
(cost per generated event t2 + t_slow E[p], effective passing events per generated event
(E q)^2 / E[q/p]) pointwise gives the oracle filter

.. math::

    p^*(x) = \\mathrm{clip}(C \\sqrt{q(x)}, 1/w_{max}, 1),

with one constant C found by a 1-D search (:func:`optimal_scale`). Its speedup is the Bayes limit
of the skim, below the perfect-classifier limit (:func:`smartbkg.metrics.perfect_speedup`)
whenever q is not 0 or 1.

q is estimated by running detector + skims K times with independent detector seeds
(:func:`pass_counts`). The raw pass fraction c/K is noisy, and an event that never passed gets
p at the floor, which lowers the measured speedup (the more, the smaller K). The posterior mean
of q given c (:func:`posterior_q`) under a prior fitted per group of events (skim and event type)
by maximum marginal likelihood shrinks that noise: a nonparametric prior on a grid of q that
includes q = 0 (:func:`fit_grid_prior`, the default), or a Beta prior (:func:`fit_beta_prior`).
For a group of events that K runs cannot tell apart the posterior mean is exactly the q that
p* needs. The speedup of p* is measured on the labels of one more, independent detector run
(:func:`oracle_speedup`) or in expectation over independent runs (:func:`expected_speedup`),
so noise in the estimate of q can only lower it, up to the statistical error of the
measurement; :func:`fit_convergence` extrapolates the dependence on K.
"""

from typing import NamedTuple

import numpy as np

from .errors import ConfigError, DataError
from .metrics import T_FAST, T_NN, T_SLOW, _array, _labels, auc, speedup_formula, speedup_function
from .sampling import _floor
from .simulation.beams import Beams
from .simulation.detector import DetectorConfig, reconstruct
from .simulation.skims import SKIMS, apply_skims


# ----------------------------------------------------------------------------- re-running the detector
def detector_seeds(seed, n_runs):
    """``n_runs`` independent 63-bit detector seeds derived from ``seed`` (a non-negative integer)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    state = np.random.SeedSequence([int(seed), 0x0AC1E]).generate_state(2 * n_runs, np.uint32).astype(np.int64)
    return [int(hi << 31 ^ lo) for hi, lo in state.reshape(n_runs, 2)]


def pass_counts(table, n_runs, seed, *, checkpoints=None, skims=None, beams=None, detector=None, progress=False):
    """Count how often each event passes each skim in ``n_runs`` independent detector runs.

    Args:
        table: :class:`~smartbkg.data.table.EventTable`, generator level (lab frame, GeV, cm, ns,
            before preprocessing), with ``event_id`` (the detector addresses its random numbers
            by event id).
        n_runs: number of detector runs K (>= 1).
        seed: seed of the runs (:func:`detector_seeds`); use one that differs from the
            production's detector seed, so that the sample's own labels stay independent.
        checkpoints: run counts at which to record the counts (default ``[n_runs]``); the
            counts at k use the first k runs.
        skims: skim names (default all of :data:`~smartbkg.simulation.skims.SKIMS`).
        beams, detector: :class:`~smartbkg.simulation.beams.Beams` and
            :class:`~smartbkg.simulation.detector.DetectorConfig` (defaults: the package's).
        progress: show a tqdm progress bar (runs).

    Returns:
        dict k -> (n_events, n_skims) int32 pass counts after the first k runs.
    """
    if not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
        raise ConfigError(f"number of detector runs must be a positive integer, got {n_runs!r}")
    checkpoints = sorted(set([n_runs] if checkpoints is None else map(int, checkpoints)))
    if checkpoints[0] < 1 or checkpoints[-1] > n_runs:
        raise ConfigError(f"checkpoints must lie in 1..{n_runs}, got {checkpoints}")
    skims = tuple(SKIMS if skims is None else skims)
    beams = Beams() if beams is None else beams
    detector = DetectorConfig() if detector is None else detector
    seeds = detector_seeds(seed, n_runs)
    if progress:
        from tqdm import tqdm

        seeds = tqdm(seeds, unit="run", desc="detector runs")
    counts = np.zeros((len(table), len(skims)), np.int32)
    out = {}
    for k, run_seed in enumerate(seeds, start=1):
        counts += apply_skims(reconstruct(table, run_seed, detector), beams, skims)
        if k in checkpoints:
            out[k] = counts.copy()
    return out


# ----------------------------------------------------------------------------- estimating q
class BetaPrior(NamedTuple):
    """Beta(a, b) prior of q; ``a = 0`` means q = 0 (a group without any pass)."""

    a: float
    b: float


def _log_rising(x, k):
    """(G, k + 1) array of log Gamma(x + j) - log Gamma(x) for j = 0..k, x (G,) > 0."""
    return np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(np.log(x[:, None] + np.arange(k)), axis=1)], axis=1)


def _beta_binomial_loglik(hist, k, a, b):
    """Log marginal likelihood (up to a constant) of pass counts with histogram ``hist`` (k + 1,)
    under Beta(a, b) priors, for arrays ``a``, ``b`` (G,)."""
    c = np.flatnonzero(hist)
    rise_a, rise_b, rise_ab = _log_rising(a, k), _log_rising(b, k), _log_rising(a + b, k)
    return (rise_a[:, c] + rise_b[:, k - c]) @ hist[c] - hist.sum() * rise_ab[:, k]


def fit_beta_prior(counts, n_runs):
    """Beta prior of q fitted to pass counts by maximum marginal (beta-binomial) likelihood.

    Parametrised by the prior mean m and concentration s = a + b; a grid search over
    (log m, log s), refined once around the best point. A group without passes gets ``a = 0``
    (q = 0), one where every run passed ``b = 0``.

    Args:
        counts: (n,) pass counts of n events, each out of ``n_runs`` runs.
        n_runs: K.

    Returns:
        :class:`BetaPrior`.
    """
    hist = _histogram(counts, n_runs)
    mean = hist @ np.arange(n_runs + 1) / hist.sum() / n_runs
    if mean == 0:
        return BetaPrior(0.0, 1.0)
    if mean == 1:
        return BetaPrior(1.0, 0.0)
    centre, log_s, width = np.log(mean / (1 - mean)), 1.0, (4.0, 5.0)
    for _ in range(2):
        logit_m, ls = np.meshgrid(np.linspace(centre - width[0], centre + width[0], 41),
                                  np.linspace(log_s - width[1], log_s + width[1], 41))
        m, s = 1 / (1 + np.exp(-logit_m.ravel())), np.exp(ls.ravel())
        best = int(np.argmax(_beta_binomial_loglik(hist, n_runs, m * s, (1 - m) * s)))
        centre, log_s = logit_m.ravel()[best], ls.ravel()[best]
        width = (width[0] / 10, width[1] / 10)
    m, s = 1 / (1 + np.exp(-centre)), np.exp(log_s)
    return BetaPrior(float(m * s), float((1 - m) * s))


class GridPrior(NamedTuple):
    """A discrete prior of q: probabilities ``weights`` (G,) on the values ``q`` (G,)."""

    q: np.ndarray
    weights: np.ndarray


#: Support of the nonparametric prior: q = 0 and 160 values from 1e-5 to 1, even in log q.
PRIOR_GRID = np.r_[0.0, np.geomspace(1e-5, 1.0, 160)]


def _binomial_likelihood(n_runs, q):
    """(K + 1, G) likelihood of c passes out of K for each q, up to a factor per c (which
    cancels in posteriors and in the EM update): q^c (1 - q)^(K - c) / max over q."""
    c = np.arange(n_runs + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.where(c > 0, c * np.log(q), 0.0) + np.where(c < n_runs, (n_runs - c) * np.log1p(-q), 0.0)
    log = np.nan_to_num(log, nan=-np.inf)
    return np.exp(log - log.max(axis=1, keepdims=True))


def fit_grid_prior(counts, n_runs, iterations=1000, grid=PRIOR_GRID):
    """Nonparametric maximum-likelihood prior of q (Kiefer-Wolfowitz), by EM on a grid.

    The prior is a distribution on ``grid`` (q = 0 included, so events that never pass are a
    point mass rather than the tail of a Beta); EM maximises the marginal likelihood of the pass
    counts, sum_i log sum_g w_g Binom(c_i; K, q_g), over the weights w.

    Args:
        counts: (n,) pass counts of n events, each out of ``n_runs`` runs.
        n_runs: K; iterations: EM steps; grid: (G,) support in [0, 1].

    Returns:
        :class:`GridPrior`.
    """
    hist = _histogram(counts, n_runs)
    like = _binomial_likelihood(n_runs, grid)
    used = hist > 0
    like, hist = like[used], hist[used]
    weights = np.full(grid.size, 1.0 / grid.size)
    for _ in range(iterations):
        weights *= like.T @ (hist / (like @ weights)) / hist.sum()
    return GridPrior(grid, weights)


def _histogram(counts, n_runs):
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or counts.min() < 0 or counts.max() > n_runs:
        raise DataError(f"pass counts must be a non-empty 1-D array of integers in 0..{n_runs}", field="counts")
    return np.bincount(counts, minlength=n_runs + 1).astype(np.float64)


#: Priors of :func:`posterior_q`.
PRIORS = ("grid", "beta")


def posterior_q(counts, n_runs, groups=None, prior="grid"):
    """Posterior mean of q per event given its pass count, the prior fitted per group.

    ``prior="grid"``: the nonparametric prior of :func:`fit_grid_prior`; ``"beta"``: the Beta
    prior of :func:`fit_beta_prior`, posterior mean (c + a) / (K + a + b).

    Args:
        counts: (n,) pass counts out of ``n_runs``.
        n_runs: K.
        groups: (n,) integer group of each event (e.g. the event type); one prior per group.
            None: one prior for all events.
        prior: ``"grid"`` or ``"beta"``.

    Returns:
        ``(q, priors)``: q (n,) float64 in [0, 1], priors dict group -> :class:`GridPrior` or
        :class:`BetaPrior`.
    """
    if prior not in PRIORS:
        raise ConfigError(f"unknown prior {prior!r}; choose from {list(PRIORS)}")
    counts = np.asarray(counts, dtype=np.int64)
    groups = np.zeros(counts.shape, np.int64) if groups is None else np.asarray(groups)
    if groups.shape != counts.shape:
        raise DataError(f"groups has shape {groups.shape}, expected {counts.shape}", field="groups")
    q, priors = np.empty(counts.shape), {}
    for g in np.unique(groups):
        rows = groups == g
        if prior == "beta":
            fitted = fit_beta_prior(counts[rows], n_runs)
            q[rows] = (counts[rows] + fitted.a) / (n_runs + fitted.a + fitted.b)
        else:
            fitted = fit_grid_prior(counts[rows], n_runs)
            seen, index = np.unique(counts[rows], return_inverse=True)
            joint = _binomial_likelihood(n_runs, fitted.q)[seen] * fitted.weights
            q[rows] = (joint @ fitted.q / joint.sum(axis=1))[index]
        priors[g.item()] = fitted
    return q, priors


# ----------------------------------------------------------------------------- the oracle filter
def optimal_probabilities(q, scale, max_weight=100.0):
    """The oracle sampling probabilities p* = clip(C sqrt(q), 1/max_weight, 1).

    Args:
        q: (n,) pass probabilities in [0, 1]; scale: C > 0; max_weight: the largest weight 1/p.

    Returns:
        (n,) float64.
    """
    return np.minimum(_floor(scale * np.sqrt(q), max_weight), 1.0)


def expected_speedup(p, q, *, weight=None, t_fast=T_FAST, t_nn=T_NN, t_slow=T_SLOW):
    """The speedup of a filter p in expectation over the labels given q (no input checks).

    The terms of :func:`smartbkg.metrics.speedup_formula` with soft labels: eps = E q,
    f_TP = E[q p] / E q, f_FP = E[(1 - q) p] / E[1 - q], a_eff = E q / E[q / p], so the result is
    t3 a_eff / (t2 + t_slow E[p]) with eps a_eff = (E q)^2 / E[q/p] effective passing events per
    generated event; for q in {0, 1} it equals :func:`smartbkg.metrics.speedup`.

    Args:
        p: (n,) sampling probabilities in (0, 1]; q: (n,) pass probabilities in [0, 1].
        weight: event weights, (n,) or (B, n) for B weightings at once (bootstrap resamplings).
        t_fast, t_nn, t_slow: times per event in ms.

    Returns:
        float, or (B,) for ``weight`` of shape (B, n).
    """
    # Unweighted sums without BLAS: a threaded dot product of one vector stalls on a busy machine.
    total = q.shape[0] if weight is None else weight.sum(axis=-1)
    weighted_sum = np.sum if weight is None else weight.__matmul__
    passing, kept_passing, kept = weighted_sum(q), weighted_sum(q * p), weighted_sum(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = weighted_sum(q / p)
        failing = total - passing
        f_fp = np.where(failing > 0, (kept - kept_passing) / np.where(failing > 0, failing, 1.0), 0.0)
        return speedup_formula(passing / total, kept_passing / passing, f_fp, passing / inverse,
                               t_fast, t_nn, t_slow)


def expected_speedup_function(q, **timings):
    """:func:`expected_speedup` as a function of p, for fixed q (checked once).

    Args:
        q: (n,) pass probabilities in [0, 1], some positive; timings: ``t_fast``, ``t_nn``,
            ``t_slow`` in ms.

    Returns:
        ``f(p) -> float`` for p (n,).
    """
    q = _array(q, "q")
    if np.any((q < 0) | (q > 1)):
        raise DataError("pass probabilities must lie in [0, 1]", field="q")
    if not np.any(q > 0):
        raise DataError("no event has q > 0", field="q")
    return lambda p: float(expected_speedup(p, q, **timings))


def optimal_scale(q, max_weight=100.0, **timings):
    """C of the oracle filter: maximises the expected speedup of :func:`optimal_probabilities`.

    A grid in log C over the range where p* changes (from every p at the floor to every event
    with q > 0 at 1), then golden-section refinement around the best grid point.

    Args:
        q: (n,) pass probabilities (estimated); max_weight: as in :func:`optimal_probabilities`;
        timings: ``t_fast``, ``t_nn``, ``t_slow`` in ms.

    Returns:
        ``(C, expected speedup at C)``.
    """
    objective = expected_speedup_function(q, **timings)
    positive = q[q > 0]
    lo, hi = np.log(1 / max_weight / np.sqrt(positive.max())), np.log(1 / np.sqrt(positive.min()))
    grid = np.linspace(lo, hi + 1e-9, 64)
    values = [objective(optimal_probabilities(q, np.exp(x), max_weight)) for x in grid]
    best = int(np.argmax(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        x1, x2 = b - ratio * (b - a), a + ratio * (b - a)
        f1, f2 = (objective(optimal_probabilities(q, np.exp(x), max_weight)) for x in (x1, x2))
        a, b = (a, x2) if f1 >= f2 else (x1, b)
    scale = float(np.exp((a + b) / 2))
    value = objective(optimal_probabilities(q, scale, max_weight))
    if value < values[best]:
        return float(np.exp(grid[best])), float(values[best])
    return scale, value


class OracleResult(NamedTuple):
    """The oracle filter of one skim: ``speedup`` measured on independent labels, the
    ``expected_speedup`` the estimated q promises, ``scale`` C, ``auc`` of q on the labels."""

    speedup: float
    expected_speedup: float
    scale: float
    auc: float


def oracle_speedup(q, y, *, max_weight=100.0, **timings):
    """Build the oracle filter from estimated q and measure it on independent labels.

    Args:
        q: (n,) estimated pass probabilities (from runs that did not make ``y``).
        y: (n,) skim flags of one more, independent detector run.
        max_weight: floor 1/max_weight of p; timings: ``t_fast``, ``t_nn``, ``t_slow`` in ms.

    Returns:
        :class:`OracleResult`.
    """
    y = _labels(y, len(q))
    scale, expected = optimal_scale(q, max_weight, **timings)
    p = optimal_probabilities(q, scale, max_weight)
    return OracleResult(speedup_function(y, **timings)(p), expected, scale, auc(y, q))


# ----------------------------------------------------------------------------- convergence in K
class Convergence(NamedTuple):
    """Fit S(K) = ``limit`` - ``amplitude`` K^-``power`` of speedups measured against K."""

    limit: float
    amplitude: float
    power: float


def fit_convergence(runs, speedups, powers=(0.5, 2.0)):
    """Extrapolate speedups measured with q from K runs to K -> infinity.

    Least squares of S(K) = S_inf - a K^-alpha with alpha on a grid within ``powers`` (S_inf
    and a are linear for a fixed alpha). The speedup is stationary at p*, so an error d of p
    costs O(d^2), and the variance of p = C sqrt(q_hat) is C^2 (1 - q) / (4K) once K q >> 1:
    alpha = 1 asymptotically; events with K q of order 1 converge more slowly, down to
    alpha = 1/2 (the lower end of the default range).

    Args:
        runs: (m,) K values (m >= 3); speedups: (m,) speedups measured at those K.

    Returns:
        :class:`Convergence`.
    """
    k, s = np.asarray(runs, np.float64), np.asarray(speedups, np.float64)
    if k.shape != s.shape or k.size < 3:
        raise DataError("fit_convergence needs at least three (K, speedup) points", field="runs")
    best = None
    for power in np.linspace(*powers, 61):
        design = np.stack([np.ones_like(k), -(k ** -power)], axis=1)
        coef, *_ = np.linalg.lstsq(design, s, rcond=None)
        sse = float(np.sum((design @ coef - s) ** 2))
        if best is None or sse < best[0]:
            best = (sse, Convergence(float(coef[0]), float(coef[1]), float(power)))
    return best[1]
