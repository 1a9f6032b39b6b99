import json
import math

import numpy as np
import pytest

from smartbkg.errors import ConfigError, DataError
from smartbkg.metrics import T_FAST, T_NN, T_SLOW, a_eff, effective_sample_size, perfect_speedup, speedup
from smartbkg.sampling import (Calibration, closure, exp_calibration, kish_efficiency, sample, sigmoid_calibration,
                               skewed_sigmoid)


def test_exp_calibration_values():
    np.testing.assert_allclose(
        exp_calibration([1.0, 1 - math.log(2) / 2, 3.0, -100.0], a=2.0, b=1.0), [1.0, 0.5, 1.0, 0.01]
    )
    assert exp_calibration([-100.0], a=2.0, b=1.0, max_weight=10)[0] == pytest.approx(0.1)
    assert exp_calibration([1e6], a=2.0, b=1.0)[0] == 1.0  # no overflow


def test_skewed_sigmoid_values():
    x = np.array([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(skewed_sigmoid(x, a=1.0, b=0.0, c=1.0, max_weight=1e9), 1 / (1 + np.exp(-x)))
    direct = (1 + 2.0 * np.exp(-3.0 * (x - 0.5))) ** (-1 / 2.0)
    np.testing.assert_allclose(skewed_sigmoid(x, a=2.0, b=0.5, c=3.0, max_weight=1e9), direct, rtol=1e-12)
    np.testing.assert_allclose(skewed_sigmoid([-1e4, 1e4], a=2.0, b=0.5, c=3.0), [0.01, 1.0])


def test_kish_efficiency_by_hand():
    # weights 1 and 2 kept with p = 1 and 0.5: (sum w)^2 / (sum w^2/p * sum p) = 4 / (3 * 1.5)
    assert kish_efficiency([1.0, 0.5, 0.2], [1, 1, 0]) == pytest.approx(4 / 4.5)
    assert kish_efficiency([0.3, 0.3], [1, 1]) == pytest.approx(1.0)


def sqrt_optimum_sample():
    """Logits x on [-10, 0], each event passing with probability q = e^x / 2 (as weights).

    The speedup is maximised over all p(x) by p = clip(C sqrt(q), 1/100, 1): the exp form with
    a = 1/2 exactly, and b solves e^-b = (t2 + D k) / (2 D I) with D = t1 - t2, k = mean p,
    I = mean q/p (stationarity of ln S in each p_i).
    """
    x = np.linspace(-10.0, 0.0, 2001)
    q = 0.5 * np.exp(x)
    return x, q, np.r_[x, x], np.r_[np.ones_like(x), np.zeros_like(x)], np.r_[q, 1 - q]


def test_calibration_fit_recovers_the_known_optimum():
    x, q, logits, y, weight = sqrt_optimum_sample()
    t1, t2 = T_FAST + T_NN + T_SLOW, T_FAST + T_NN

    def stationarity(b):
        p = exp_calibration(x, 0.5, b)
        return np.exp(-b) - (t2 + (t1 - t2) * p.mean()) / (2 * (t1 - t2) * (q / p).mean())

    low, high = -10.0, 5.0
    assert stationarity(low) > 0 > stationarity(high)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if stationarity(mid) > 0 else (low, mid)
    fitted = Calibration.fit(logits, y, weight=weight, rtol=0)
    assert fitted.params["a"] == pytest.approx(0.5, rel=1e-4)
    assert fitted.params["b"] == pytest.approx(low, abs=1e-4)
    best = speedup(exp_calibration(logits, 0.5, low), y, weight=weight)
    assert fitted.fit_info["speedup"] == pytest.approx(best, rel=1e-8)
    # the three-parameter form can only mimic it: its tail slope c/a goes to 1/2
    skewed = Calibration.fit(logits, y, weight=weight, form="skewed_sigmoid", rtol=0)
    assert skewed.fit_info["speedup"] > 0.995 * best
    assert skewed.params["c"] / skewed.params["a"] == pytest.approx(0.5, rel=0.1)


def test_calibration_fit_of_separable_sample_reaches_the_perfect_limit():
    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 0.1).astype(float)
    logits = np.where(y == 1, rng.uniform(1, 4, 3000), rng.uniform(-6, -1, 3000))
    fitted = Calibration.fit(logits, y, eps=0.05)
    assert fitted.fit_info["speedup"] == pytest.approx(perfect_speedup(0.05, max_weight=100), rel=1e-9)
    p = fitted.apply(logits)
    np.testing.assert_allclose(p[y == 1], 1.0)
    np.testing.assert_allclose(p[y == 0], 0.01)


def test_calibration_prefers_narrow_weights_within_tolerance_and_is_deterministic():
    _, _, logits, y, weight = sqrt_optimum_sample()
    best = Calibration.fit(logits, y, weight=weight, rtol=0)
    narrow = Calibration.fit(logits, y, weight=weight, rtol=0.02)
    assert narrow.fit_info["best_speedup"] == pytest.approx(best.fit_info["speedup"])
    assert narrow.fit_info["speedup"] >= 0.98 * best.fit_info["speedup"]
    assert narrow.fit_info["kish_efficiency"] > best.fit_info["kish_efficiency"]
    assert kish_efficiency(narrow.apply(logits), y, weight=weight) == pytest.approx(narrow.fit_info["kish_efficiency"])
    assert Calibration.fit(logits, y, weight=weight, rtol=0.02).to_dict() == narrow.to_dict()


def test_fit_over_several_forms_keeps_the_raw_sigmoid_when_it_is_better():
    """Four groups of 1000 events passing with q = 0.4, 0.15, 0.04, 0.01 (eps = 0.05). The speedup
    is maximal for p = 1, 0.559, 0.277, 0.137 per group (found numerically, scipy Nelder-Mead); the
    logits are chosen so that the sigmoid gives exactly those. ln p is not linear in the logit
    there (slopes 0.58 and 0.80), so no exp calibration reaches that speedup."""
    q, p_best = np.array([0.4, 0.15, 0.04, 0.01]), np.array([1 - 1e-9, 0.559, 0.277, 0.137])
    y = np.concatenate([np.r_[np.ones(round(1000 * k)), np.zeros(1000 - round(1000 * k))] for k in q])
    logits = np.repeat(np.log(p_best / (1 - p_best)), 1000)
    raw = speedup(sigmoid_calibration(logits), y, eps=0.05)
    assert raw == pytest.approx(1.46974, abs=1e-5)
    alone = Calibration.fit(logits, y, eps=0.05)
    assert alone.form == "exp" and alone.fit_info["speedup"] < raw - 0.005
    chosen = Calibration.fit(logits, y, eps=0.05, form=("exp", "sigmoid"))
    assert chosen.form == "sigmoid" and chosen.params == {}
    assert chosen.fit_info["candidates"] == {"exp": alone.fit_info["speedup"], "sigmoid": raw}
    assert speedup(chosen.apply(logits), y, eps=0.05) == chosen.fit_info["speedup"] == raw
    # and where the exp family is better (a separable sample), it is kept
    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 0.1).astype(float)
    logits = np.where(y == 1, rng.uniform(1, 4, 3000), rng.uniform(-6, -1, 3000))
    kept = Calibration.fit(logits, y, eps=0.05, form=("exp", "sigmoid"))
    assert kept.form == "exp" and kept.fit_info["candidates"]["sigmoid"] < kept.fit_info["speedup"]


def test_calibration_round_trip_and_errors():
    calibration = Calibration("skewed_sigmoid", {"a": 2.0, "b": -1.0, "c": 0.7}, max_weight=50.0, fit_info={"speedup": 2.1})
    restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert restored == calibration
    logits = np.linspace(-20, 4, 50)
    np.testing.assert_array_equal(restored.apply(logits), calibration.apply(logits))
    assert calibration.apply(logits).min() == pytest.approx(1 / 50)
    raw = Calibration.from_dict(json.loads(json.dumps(Calibration("sigmoid", {}, max_weight=50.0).to_dict())))
    np.testing.assert_allclose(raw.apply(logits), np.maximum(1 / (1 + np.exp(-logits)), 1 / 50), rtol=1e-12)
    with pytest.raises(ConfigError, match="unknown calibration form"):
        Calibration.from_dict({"form": "tanh", "params": {}})
    with pytest.raises(ConfigError, match="unknown calibration form 'tanh'"):
        Calibration.fit([0.1, 0.2], [0, 1], form=("exp", "tanh"))
    with pytest.raises(ConfigError, match="malformed"):
        Calibration.from_dict({"params": {"a": 1.0, "b": 0.0}})
    with pytest.raises(ConfigError, match="takes parameters"):
        Calibration("exp", {"a": 1.0})
    with pytest.raises(ConfigError, match="> 0"):
        Calibration("exp", {"a": -1.0, "b": 0.0})
    with pytest.raises(DataError, match="passing events"):
        Calibration.fit([0.1, 0.2], [0, 0])


def test_sample_is_seeded_and_weights_are_inverse_probabilities():
    p = np.random.default_rng(6).uniform(0.0, 1.0, 20000)
    keep, weight = sample(p, seed=11)
    keep_again, _ = sample(p, seed=11)
    np.testing.assert_array_equal(keep, keep_again)
    assert not np.array_equal(keep, sample(p, seed=12)[0])
    np.testing.assert_allclose(weight[keep], 1 / p[keep])
    assert np.all(weight[~keep] == 0)
    assert keep.mean() == pytest.approx(p.mean(), abs=4 * math.sqrt(0.25 / 20000))
    keep, _ = sample(np.r_[np.zeros(100), np.ones(100)], seed=0)
    assert not keep[:100].any() and keep[100:].all()


def toy_production(n=200_000, seed=7):
    """A variable m (think: a mass, GeV), a pass flag depending on it, a noisy network logit."""
    rng = np.random.default_rng(seed)
    m = rng.gamma(4.0, 1.0, n)
    q = 1 / (1 + np.exp(-(m - 7.0)))  # true pass probability rises with m
    y = (rng.random(n) < q).astype(float)
    logits = np.log(q / (1 - q)) + rng.normal(0, 0.5, n)
    return m, y, exp_calibration(logits, a=0.5, b=3.0)


def test_importance_sampling_is_unbiased():
    m, y, p = toy_production()
    keep, _ = sample(p, seed=3)
    result = closure(m, y, keep, p, bins=20)
    # bins where every passing event has p = 1 carry no variance and must agree exactly
    saturated = np.array([np.all(p[(y == 1) & (m >= lo) & (m < hi)] == 1) for lo, hi in zip(result.edges, result.edges[1:])])
    assert result.ndf == np.sum(~saturated) >= 10
    np.testing.assert_allclose(result.sampled[saturated], result.reference[saturated])
    assert result.chi2 < result.ndf + 4 * math.sqrt(2 * result.ndf)  # chi2/ndf ~ 1
    assert np.sum(result.sampled) == pytest.approx(np.sum(y), rel=0.02)
    assert np.all(np.abs(result.sampled - result.reference) <= 4 * result.difference_err)


def test_kish_neff_of_kept_passing_events_is_n_pass_times_a_eff():
    m, y, p = toy_production()
    passing = p[y == 1]
    expected = passing.size * a_eff(p, y)
    # delta-method error of ln N_eff, N_eff = S1^2 / S2 with S1 = sum_kept 1/p, S2 = sum_kept 1/p^2
    s1, s2 = passing.size, np.sum(1 / passing)
    var = (
        4 * np.sum((1 - passing) / passing) / s1**2
        + np.sum((1 - passing) / passing**3) / s2**2
        - 4 * np.sum((1 - passing) / passing**2) / (s1 * s2)
    )
    ratios = []
    for seed in range(20):
        keep, weight = sample(p, seed=seed)
        ratios.append(effective_sample_size(weight[keep & (y == 1)]) / expected)
    assert np.mean(ratios) == pytest.approx(1.0, abs=4 * math.sqrt(var / 20))
    assert np.std(ratios) == pytest.approx(math.sqrt(var), rel=0.5)


def test_closure_detects_wrong_weights_and_lost_events():
    m, y, p = toy_production(n=50_000)
    keep, _ = sample(p, seed=3)
    assert closure(m, y, keep, np.sqrt(p), bins=10).chi2 > 100  # weights 1/sqrt(p) instead of 1/p
    hard = p > 0.5  # a hard cut: passing events below it can never be kept
    result = closure(m, y, hard, hard.astype(float), bins=10)
    assert result.chi2 == np.inf
    assert result.sampled.sum() < result.reference.sum()
    with pytest.raises(DataError, match="p = 0"):
        closure(m, y, np.ones_like(hard), hard.astype(float))
