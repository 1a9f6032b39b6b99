import numpy as np
import pytest
from scipy.stats import chi2 as chi2_dist

from smartbkg.errors import DataError
from smartbkg.reweight.evaluate import classifier_test, compare_histograms
from smartbkg.reweight.reweighting import reweight_samples


def test_compare_histograms_by_hand():
    a = np.array([0.1, 0.2, 0.7, 0.8, 0.9])  # 2 in [0, 0.5), 3 in [0.5, 1]
    b = np.array([0.3, 0.6])
    c = compare_histograms(a, b, [2.0, 8.0], bins=2, range=(0.0, 1.0))
    # B weighted: 2 and 8, scaled to A's total 5: 1 and 4; errors 2*0.5 and 8*0.5
    np.testing.assert_allclose(c.b, [1.0, 4.0])
    np.testing.assert_allclose(c.b_err, [1.0, 4.0])
    expected = (2 - 1) ** 2 / (2 + 1) + (3 - 4) ** 2 / (3 + 16)
    assert c.chi2 == pytest.approx(expected) and c.ndf == 1
    assert c.p_value == pytest.approx(chi2_dist.sf(expected, 1))
    with pytest.raises(DataError):
        compare_histograms([], b)


def test_second_classifier_auc_is_half_after_exact_weights_and_above_before():
    rng = np.random.default_rng(2)
    a = rng.normal(0.6, 1, (3000, 1))
    b = rng.normal(0.0, 1, (3000, 1))
    true_w = np.exp(0.6 * b[:, 0] - 0.18)
    before = classifier_test(a, b, seed=3)
    after = classifier_test(a, b, true_w, seed=3)
    assert before.auc > 0.6 and before.auc - 0.5 > 10 * before.auc_err
    assert abs(after.auc - 0.5) < 3 * after.auc_err + 0.01


def test_reweighting_closes_on_a_toy():
    rng = np.random.default_rng(4)
    a = {"x": rng.normal(0.5, 1, 8000), "n": rng.poisson(5, 8000)}
    b = {"x": rng.normal(0.0, 1, 8000), "n": rng.poisson(4.5, 8000)}
    result = reweight_samples(a, b, seed=5, discrete=("n",), bins=20)
    summary = result.summary()
    assert summary["mean_chi2_ndf_before"] > 5
    assert summary["mean_chi2_ndf_after"] < 2.0, summary["chi2_after"]
    assert summary["auc_after"]["auc"] < summary["auc_before"]["auc"] - 0.05
    assert summary["test_events"] == {"a": 4000, "b": 4000} and 0 < summary["weights"]["n_eff_fraction"] < 1
    with pytest.raises(DataError, match="different features"):
        reweight_samples(a, {"x": b["x"]})
