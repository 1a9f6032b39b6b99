"""Threshold + reweighting: threshold choice, speedup and closure by hand; the reweighting recovers
a known bias on a Gaussian toy, and a hard cut without weights fails closure."""

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import chi2 as chi2_distribution

from smartbkg.errors import ConfigError, DataError
from smartbkg.metrics import T_FAST, T_NN, T_SLOW
from smartbkg.sampling import closure
from smartbkg.threshold_reweighting import choose_threshold, reweight, threshold_performance


def test_threshold_for_a_target_false_negative_rate():
    logits = np.array([0.0, 1.0, 2.0, 3.0, 4.0, -5.0])
    y = np.array([1, 1, 1, 1, 1, 0])
    assert choose_threshold(logits, y, fnr=0.0) == 0.0
    assert choose_threshold(logits, y, fnr=0.2) == 1.0    # one of five passing events below
    assert choose_threshold(logits, y, fnr=0.39) == 1.0   # two would be 40 %
    assert choose_threshold(logits, y, fnr=0.4) == 2.0
    # weights: the event at 0 carries half of the passing weight
    assert choose_threshold(logits, y, fnr=0.49, weight=[4, 1, 1, 1, 1, 1]) == 0.0
    with pytest.raises(ConfigError, match="false-negative rate"):
        choose_threshold(logits, y, fnr=1.0)


def test_threshold_of_highest_speedup_separates_a_separable_sample():
    logits = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert choose_threshold(logits, y) == 1.0
    assert choose_threshold(logits, y, eps=0.05) == 1.0


def test_performance_by_hand():
    # 4 passing events (2 kept with weights 1 and 3), 4 failing (1 kept)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    kept = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    r = np.array([1.0, 3.0, 0, 0, 2.0, 0, 0, 0])
    perf = threshold_performance(kept, r, y)
    n_eff = 4**2 / (1 + 9)
    assert perf.f_tp == 0.5 and perf.f_fp == 0.25
    assert perf.a_eff == pytest.approx(n_eff / 4)
    assert perf.kish_efficiency == pytest.approx(n_eff / 2)
    assert perf.kept_fraction == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)
    t1, t2, t3 = T_FAST + T_NN + T_SLOW, T_FAST + T_NN, T_FAST + T_SLOW
    kept_fraction = 0.375
    assert perf.speedup == pytest.approx(t3 * n_eff / 4 / (kept_fraction * t1 + (1 - kept_fraction) * t2))
    # the hard cut without weights: N_eff = kept passing events
    assert threshold_performance(kept, kept.astype(float), y).a_eff == pytest.approx(0.5)
    with pytest.raises(DataError, match="passing"):
        threshold_performance(kept, r, np.zeros(8))


def gaussian_toy(n=20000, seed=0):
    """Passing events with score s ~ N(0, 1), a seen variable v = s + N(0, 0.5^2) and an unseen
    one u = s + N(0, 0.5^2); failing events with s ~ N(-2, 1). Given v, a passing event's score
    is N(v / 1.25, 0.2), so P(s >= t | v, pass) = Phi((v / 1.25 - t) / sqrt(0.2))."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < n // 2).astype(float)
    s = np.where(y == 1, rng.normal(0, 1, n), rng.normal(-2, 1, n))
    v = s + rng.normal(0, 0.5, n)
    u = s + rng.normal(0, 0.5, n)
    return s, y, v, u


def _closure(values, y, result, bins):
    """Closure of a threshold + reweighting result, with its chi2 p-value."""
    c = closure(values, y, result.kept, result.probability, bins=bins)
    return c, chi2_distribution.sf(c.chi2, c.ndf)


def test_reweighting_recovers_a_known_bias_on_a_gaussian_toy():
    s, y, v, u = gaussian_toy()
    threshold = choose_threshold(s, y, fnr=0.16)
    assert threshold == pytest.approx(-1.0, abs=0.05)
    result = reweight(v[:, None], s, y, threshold, seed=1)
    np.testing.assert_array_equal(result.kept, s >= threshold)
    # the second classifier finds the known P(TP | v, pass) in the bulk of the passing events
    passing = y == 1
    central = passing & (np.abs(v) < 1.5)
    known = ndtr((v / 1.25 - threshold) / np.sqrt(0.2))
    assert np.mean(np.abs(result.probability[central] - known[central])) < 0.03
    bins = np.quantile(v[passing], np.linspace(0, 1, 11))
    np.testing.assert_allclose(result.weights[result.kept], 1 / result.probability[result.kept])
    weighted, p_weighted = _closure(v, y, result, bins)
    assert p_weighted > 0.01 and weighted.chi2 / weighted.ndf < 2
    # the weighted kept events have the passing events' distribution in v, within their errors
    assert np.all(np.abs(weighted.sampled - weighted.reference) < 3 * weighted.difference_err)
    # the hard cut, normalised to the passing events (one constant per fold), keeps the bias in v
    hard_cut = reweight(v[:, None], s, y, threshold, seed=1, method="none")
    assert np.ptp(hard_cut.probability) < 0.005 and hard_cut.probability[0] == pytest.approx(0.84, abs=0.01)
    cut, p_cut = _closure(v, y, hard_cut, bins)
    assert p_cut < 1e-6 and cut.chi2 / cut.ndf > 20
    # the bias the weights cannot see: u carries information on s beyond v
    unseen, p_unseen = _closure(u, y, result, np.quantile(u[passing], np.linspace(0, 1, 11)))
    assert p_unseen < 1e-3


def test_cross_fitting_is_reproducible_and_weights_are_bounded():
    s, y, v, _ = gaussian_toy(n=4000)
    a = reweight(v[:, None], s, y, 0.5, seed=3, max_weight=10)
    b = reweight(v[:, None], s, y, 0.5, seed=3, max_weight=10)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.weights.max() <= 10 and np.all(a.weights[~a.kept] == 0)
    # everything kept: no bias to correct
    assert np.all(reweight(v[:, None], s, y, -100.0).weights == 1)
    with pytest.raises(DataError, match="above the threshold"):
        reweight(v[:, None], s, y, 100.0)
    with pytest.raises(ConfigError, match="reweighter"):
        reweight(v[:, None], s, y, 0.0, method="bdt")
    with pytest.raises(ConfigError, match="folds"):
        reweight(v[:, None], s, y, 0.0, folds=1)
