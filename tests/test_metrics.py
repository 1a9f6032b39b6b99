import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from smartbkg.errors import ConfigError, DataError
from smartbkg.metrics import (
    a_eff,
    asimov_significance,
    auc,
    binned_significance,
    distance_correlation,
    effective_sample_size,
    perfect_speedup,
    roc_curve,
    speedup,
)

# Belle II times (ms): t1 = kept, t2 = dropped, t3 = no filter.
T1, T2, T3 = 0.08 + 0.63 + 97.04, 0.08 + 0.63, 0.08 + 97.04


# ----------------------------------------------------------------------------- ROC / AUC
def test_roc_and_auc_match_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.3
    score = np.round(rng.normal(size=500) + y, 1)  # many ties
    weight = rng.uniform(0.2, 3.0, size=500)
    fpr, tpr, thr = roc_curve(y, score, weight=weight)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y, score, sample_weight=weight, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf
    assert auc(y, score, weight=weight) == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)


def test_auc_hand_cases():
    # pairs (pass, fail): (0.35 > 0.1) yes, (0.35 > 0.4) no, 0.8 beats both: 3 of 4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)  # ties count one half
    # weight 3 on the failing event scored 0.4: pairs won 1*1 + 0*3 + 1*1 + 1*3 = 5 of 8
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], weight=[1, 3, 1, 1]) == pytest.approx(5 / 8)


def test_roc_needs_both_classes():
    with pytest.raises(DataError, match="passing and failing"):
        roc_curve([1, 1], [0.2, 0.3])
    with pytest.raises(DataError, match="'y'"):
        auc([0, 2], [0.2, 0.3])


# ----------------------------------------------------------------------------- speedup
def test_perfect_speedup_is_about_17_5_for_belle2():
    assert perfect_speedup(0.05) == pytest.approx(T3 / (0.05 * T1 + 0.95 * T2))
    assert perfect_speedup(0.05) == pytest.approx(17.4613, abs=1e-4)
    # with the production floor p >= 1/100 on failing events
    assert perfect_speedup(0.05, max_weight=100) == pytest.approx(T3 / (0.0595 * T1 + 0.9405 * T2))
    assert perfect_speedup(0.05, max_weight=100) == pytest.approx(14.9787, abs=1e-4)


def test_speedup_of_perfect_and_trivial_filters():
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.where(y == 1, 1.0, 0.0)
    assert speedup(p, y, eps=0.05, max_weight=100) == pytest.approx(perfect_speedup(0.05, max_weight=100))
    assert speedup(p, y, eps=0.05) == pytest.approx(perfect_speedup(0.05))
    # keeping everything only adds the network's time: t3 / t1 < 1
    assert speedup(np.ones(6), y, eps=0.05) == pytest.approx(T3 / T1)
    assert T3 / T1 < 1


def test_speedup_hand_computed():
    y = np.array([1, 1, 0, 0])
    p = np.array([1.0, 0.5, 0.1, 0.3])
    # f_TP = 0.75, f_FP = 0.2, E[1/p | pass] = 1.5 -> a_eff = 2/3
    kept = 0.1 * 0.75 + 0.9 * 0.2
    expected = T3 * (2 / 3) / (kept * T1 + (1 - kept) * T2)
    assert speedup(p, y, eps=0.1) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(2.54355, abs=1e-5)
    # eps defaults to the sample's own (weighted) pass fraction
    assert speedup(p, y) == pytest.approx(speedup(p, y, eps=0.5))
    assert speedup(p, y, weight=[1, 1, 3, 1]) == pytest.approx(speedup(p, y, eps=2 / 6, weight=[1, 1, 3, 1]))


def test_speedup_does_not_depend_on_class_balance_and_weights_act_as_copies():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.2).astype(float)
    p = rng.uniform(0.05, 1.0, size=300)
    fails = y == 0
    y_dup, p_dup = np.r_[y, y[fails], y[fails]], np.r_[p, p[fails], p[fails]]
    assert speedup(p_dup, y_dup, eps=0.05) == pytest.approx(speedup(p, y, eps=0.05), rel=1e-12)
    weight = np.where(fails, 3.0, 1.0)
    assert speedup(p, y, eps=0.05, weight=weight) == pytest.approx(speedup(p_dup, y_dup, eps=0.05), rel=1e-12)


def test_speedup_floor_and_zero_probability():
    y = np.array([1, 0, 0])
    assert speedup([0.0, 0.0, 0.0], y, eps=0.05) == 0.0  # a passing event that is never kept
    # the floor turns p = 0 into 1/max_weight
    assert speedup([0.0, 0.0, 0.0], y, eps=0.05, max_weight=10) == pytest.approx(speedup([0.1] * 3, y, eps=0.05))


def test_speedup_bad_input():
    with pytest.raises(DataError, match="passing events"):
        speedup([0.5, 0.5], [0, 0])
    with pytest.raises(DataError, match="failing events"):
        speedup([0.5, 0.5], [1, 1], eps=0.05)
    assert speedup([1.0, 1.0], [1, 1]) == pytest.approx(T3 / T1)  # eps = 1: no failing events needed
    with pytest.raises(DataError, match="'p'"):
        speedup([1.5, 0.5], [1, 0])
    with pytest.raises(ConfigError, match="eps"):
        speedup([1.0, 0.5], [1, 0], eps=0)
    with pytest.raises(ConfigError, match="max_weight"):
        speedup([1.0, 0.5], [1, 0], max_weight=0.5)
    with pytest.raises(DataError, match="non-finite"):
        speedup([np.nan, 0.5], [1, 0])


# ----------------------------------------------------------------------------- N_eff and a_eff
def test_effective_sample_size_kish():
    assert effective_sample_size([1, 1, 1, 1]) == 4
    assert effective_sample_size([1, 2, 3]) == pytest.approx(36 / 14)
    assert effective_sample_size([]) == 0


def test_a_eff():
    assert a_eff([1.0, 0.5]) == pytest.approx(2 / 3)
    assert a_eff([1.0, 0.5, 0.01], [1, 1, 0]) == pytest.approx(2 / 3)
    # weights: E_w[1/p] = (1*1 + 3*2)/4
    assert a_eff([1.0, 0.5], weight=[1, 3]) == pytest.approx(4 / 7)
    assert a_eff([1.0, 0.0]) == 0.0
    assert a_eff([1.0, 0.0], max_weight=4) == pytest.approx(2 / 5)


# ----------------------------------------------------------------------------- significance
def test_asimov_significance_limits():
    assert asimov_significance(1.0, 1e6) == pytest.approx(1e-3, rel=1e-3)  # s / sqrt(b) for s << b
    assert asimov_significance(0.0, 5.0) == 0.0
    assert asimov_significance(2.0, 0.0) == np.inf
    assert asimov_significance(3.0, 2.0) == pytest.approx(math.sqrt(2 * (5 * math.log(2.5) - 3)))


def test_binned_significance_two_bins_by_hand():
    score = np.array([0.2, 0.3, 0.7, 0.8, 0.1, 0.1, 0.25, 0.5])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    weight = np.array([1, 1, 1, 1, 2, 1, 1, 0.5])
    result = binned_significance(score, y, weight=weight, n_bins=2)
    # signal median edge at 0.3: bin 0 = {0.2, 0.3 | 0.1, 0.1, 0.25}: s = 2, b = 4;
    # bin 1 = {0.7, 0.8 | 0.5}: s = 2, b = 0.5
    np.testing.assert_allclose(result.edges, [0.3])
    np.testing.assert_allclose(result.s, [2, 2])
    np.testing.assert_allclose(result.b, [4, 0.5])
    z0 = math.sqrt(2 * (6 * math.log(1 + 2 / 4) - 2))
    z1 = math.sqrt(2 * (2.5 * math.log(1 + 2 / 0.5) - 2))
    np.testing.assert_allclose(result.z_bins, [z0, z1])
    assert result.z == pytest.approx(math.hypot(z0, z1))
    assert result.z == pytest.approx(2.21648, abs=1e-5)


def test_binned_significance_one_bin_and_empty_background():
    score = np.array([0.2, 0.9, 0.1, 0.15])
    y = np.array([1, 1, 0, 0])
    assert binned_significance(score, y, n_bins=1).z == pytest.approx(asimov_significance(2.0, 2.0))
    high = binned_significance(score, y, n_bins=2)
    assert high.z == np.inf  # the top bin (0.9) has no background
    floored = binned_significance(score, y, n_bins=2, min_background=0.1)
    assert floored.z_bins[1] == pytest.approx(asimov_significance(1.0, 0.1))
    with pytest.raises(ConfigError):
        binned_significance(score, y, n_bins=0)


def test_bins_without_background_merge_downwards_by_hand():
    # signal at 1..6 (two per bin of n_bins=3, edges 2 and 4), background at 0.5 and 2.5
    score = np.array([1, 2, 3, 4, 5, 6, 0.5, 2.5])
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    plain = binned_significance(score, y, n_bins=3)
    np.testing.assert_allclose(plain.b, [1, 1, 0])
    assert plain.z == np.inf
    merged = binned_significance(score, y, n_bins=3, merge_empty=True)
    # the top bin (5, 6) joins its lower neighbour (3, 4 | 2.5): s = [2, 4], b = [1, 1], edge 2
    np.testing.assert_allclose(merged.s, [2, 4])
    np.testing.assert_allclose(merged.b, [1, 1])
    np.testing.assert_allclose(merged.edges, [2])
    z0, z1 = math.sqrt(2 * (3 * math.log(3) - 2)), math.sqrt(2 * (5 * math.log(5) - 4))
    assert merged.z == pytest.approx(math.hypot(z0, z1), rel=1e-12)
    # background only above every signal bin edge: the empty lower bins join the top bin
    top_only = binned_significance(np.array([1, 2, 3, 4, 5, 6, 5.5]), np.array([1, 1, 1, 1, 1, 1, 0]),
                                   n_bins=3, merge_empty=True)
    np.testing.assert_allclose(top_only.s, [6])
    np.testing.assert_allclose(top_only.b, [1])
    assert top_only.edges.size == 0 and top_only.z == pytest.approx(asimov_significance(6.0, 1.0))
    # bins that all have background are left alone
    score, y = np.r_[score, 5.5], np.r_[y, 0]
    kept, plain = (binned_significance(score, y, n_bins=3, merge_empty=merge) for merge in (True, False))
    np.testing.assert_array_equal(kept.b, [1, 1, 1])
    assert kept.z == plain.z and np.array_equal(kept.edges, plain.edges)


def test_merging_keeps_a_well_separated_toy_finite():
    """x ~ N(3y, 1), 400 events, 5 bins: the top bins have no background; merged, Z is finite and
    no larger than with any background floor."""
    rng = np.random.default_rng(7)
    y = (rng.random(400) < 0.5).astype(float)
    x = rng.normal(3 * y, 1.0)
    assert binned_significance(x, y, n_bins=5).z == np.inf
    merged = binned_significance(x, y, n_bins=5, merge_empty=True)
    assert np.isfinite(merged.z) and np.all(merged.b > 0) and merged.s.sum() == y.sum()
    assert len(merged.s) < 5 and merged.b.sum() == (1 - y).sum()


# ----------------------------------------------------------------------------- distance correlation
def direct_dcor(x, z, w):
    """O(n^2) definition: weighted double-centred distance matrices."""
    v = w / w.sum()

    def centred(u):
        d = np.abs(u[:, None] - u[None, :])
        row = d @ v
        return d - row[:, None] - row[None, :] + v @ row

    a, b = centred(x), centred(z)
    return math.sqrt((v @ (a * b) @ v) / math.sqrt((v @ (a * a) @ v) * (v @ (b * b) @ v)))


def test_distance_correlation_matches_direct_formula_in_blocks():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    z = x**2 + 0.5 * rng.normal(size=60)
    w = rng.uniform(0.1, 2.0, size=60)
    expected = direct_dcor(x, z, w)
    assert distance_correlation(x, z, weight=w) == pytest.approx(expected, rel=1e-10)
    assert distance_correlation(x, z, weight=w, block_elements=7) == pytest.approx(expected, rel=1e-10)
    # integer weights act as copies of events
    reps = np.array([1, 2, 3] * 20)
    assert distance_correlation(x, z, weight=reps) == pytest.approx(
        distance_correlation(np.repeat(x, reps), np.repeat(z, reps)), rel=1e-10
    )


def test_distance_correlation_known_cases():
    rng = np.random.default_rng(4)
    x = rng.normal(size=2000)
    assert distance_correlation(x, 3 * x - 2) == pytest.approx(1.0)
    assert distance_correlation(x, -x) == pytest.approx(1.0)
    assert distance_correlation(x, rng.normal(size=2000)) < 0.06  # V-statistic bias only
    assert distance_correlation(x, x**2) > 0.4  # dependent but uncorrelated
    assert abs(np.corrcoef(x, x**2)[0, 1]) < 0.1
    assert distance_correlation(x, np.ones(2000)) == 0.0
