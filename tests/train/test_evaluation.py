"""Per-skim metrics of the loop against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from smartbkg import metrics as M
from smartbkg.errors import DataError
from smartbkg.train.evaluation import Predictions, Timings, check_both_classes, fit_calibrations, skim_metrics

T1, T2, T3 = 0.08 + 0.63 + 97.04, 0.08 + 0.63, 0.08 + 97.04


def _pred():
    logits = torch.tensor([[2.0, 1.0], [0.0, -1.0], [-2.0, 3.0], [-4.0, -3.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    return Predictions(logits, y, torch.ones(4), torch.zeros(4, dtype=torch.int64), loss=0.5)


def test_raw_probability_metrics_by_hand():
    m = skim_metrics(_pred(), ["a", "b"], {"a": 0.25, "b": 0.1}, Timings(), 100.0, None, significance_bins=1)
    p = 1 / (1 + np.exp(-np.array([2.0, 0.0, -2.0, -4.0])))  # all above the floor 0.01
    f_tp, f_fp = (p[0] + p[1]) / 2, (p[2] + p[3]) / 2
    a_eff = 1 / ((1 / p[0] + 1 / p[1]) / 2)
    eps = 0.25
    expected = T3 * a_eff / ((eps * f_tp + (1 - eps) * f_fp) * T1 + ((1 - eps) * (1 - f_fp) + eps * (1 - f_tp)) * T2)
    assert m["val/auc/a"] == 1.0
    assert m["val/speedup_raw/a"] == pytest.approx(expected, rel=1e-12)
    assert m["val/speedup/a"] == m["val/speedup_raw/a"]  # no calibration: the raw probabilities
    assert m["val/a_eff/a"] == pytest.approx(a_eff)
    assert m["val/n_eff/a"] == pytest.approx(4 / (1 / p[0] + 1 / p[1]))
    assert m["val/kept_fraction/a"] == pytest.approx(eps * f_tp + (1 - eps) * f_fp)
    assert m["val/passing/a"] == 2.0 and m["val/passing/b"] == 2.0
    assert m["val/speedup_perfect/a"] == pytest.approx(T3 / (eps * T1 + (1 - eps) * (0.01 * T1 + 0.99 * T2)))
    assert m["val/speedup_limit/a"] == pytest.approx(T3 / (eps * T1 + (1 - eps) * T2))
    assert m["val/significance/a"] == pytest.approx(math.sqrt(2 * (4 * math.log(2) - 2)))  # one bin, s = b = 2
    # skim b: passing logits -1 and -3, failing 1 and 3: everything ranked wrong
    assert m["val/auc/b"] == 0.0
    assert m["val/auc"] == 0.5 and m["val/speedup"] == pytest.approx((m["val/speedup/a"] + m["val/speedup/b"]) / 2)


def test_calibrated_speedup_is_at_least_the_raw_one_on_the_fit_sample():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(np.float32)
    logits = rng.normal(2.0 * y - 2.5, 1.0).astype(np.float32)
    pred = Predictions(torch.from_numpy(logits)[:, None], torch.from_numpy(y)[:, None], torch.ones(2000),
                       torch.zeros(2000, dtype=torch.int64), 0.0)
    calibrations = fit_calibrations(pred, ["s"], {"s": 0.1}, Timings(), 100.0)
    m = skim_metrics(pred, ["s"], {"s": 0.1}, Timings(), 100.0, calibrations, prefix="test")
    assert calibrations["s"].form == "exp"
    assert m["test/speedup/s"] == pytest.approx(calibrations["s"].fit_info["speedup"])
    assert m["test/speedup_raw/s"] < m["test/speedup/s"] <= m["test/speedup_perfect/s"]
    assert calibrations["s"].fit_info["candidates"]["sigmoid"] == pytest.approx(m["test/speedup_raw/s"])


def test_the_raw_sigmoid_is_kept_where_no_exp_calibration_beats_it():
    """Logits at which the sigmoid gives the speedup-optimal probabilities of four groups of
    events (see tests/test_sampling.py): the exp fit is worse, so the raw output is kept."""
    q, p_best = np.array([0.4, 0.15, 0.04, 0.01]), np.array([1 - 1e-9, 0.559, 0.277, 0.137])
    y = np.concatenate([np.r_[np.ones(round(1000 * k)), np.zeros(1000 - round(1000 * k))] for k in q])
    logits = np.repeat(np.log(p_best / (1 - p_best)), 1000)
    pred = Predictions(torch.tensor(logits, dtype=torch.float32)[:, None], torch.tensor(y, dtype=torch.float32)[:, None],
                       torch.ones(4000), torch.zeros(4000, dtype=torch.int64), 0.0)
    calibrations = fit_calibrations(pred, ["s"], {"s": 0.05}, Timings(), 100.0)
    m = skim_metrics(pred, ["s"], {"s": 0.05}, Timings(), 100.0, calibrations)
    candidates = calibrations["s"].fit_info["candidates"]
    assert calibrations["s"].form == "sigmoid" and candidates["exp"] < candidates["sigmoid"] - 0.005
    assert m["val/speedup/s"] == m["val/speedup_raw/s"] == pytest.approx(1.46974, abs=1e-4)


def test_significance_of_a_well_separated_toy_is_finite(separated_toy):
    pred = separated_toy
    m = skim_metrics(pred, ["s"], {"s": 0.5}, Timings(), 100.0, None, significance_bins=5)
    x, y = pred.logits[:, 0].double().numpy(), pred.y[:, 0].numpy()
    assert M.binned_significance(x, y, n_bins=5).z == math.inf  # unmerged: infinite
    merged = M.binned_significance(x, y, n_bins=5, merge_empty=True)
    assert math.isfinite(m["val/significance/s"]) and m["val/significance/s"] == pytest.approx(merged.z)
    assert m["val/significance"] == m["val/significance/s"]


def test_both_classes_are_required():
    with pytest.raises(DataError, match="the validation set \\(3 events\\) has no passing events for skim 'b'"):
        check_both_classes(np.array([[1, 0], [0, 0], [1, 0]]), ["a", "b"], "validation")
    with pytest.raises(DataError, match="no failing events for skim 'a'"):
        check_both_classes(np.array([[1], [1]]), ["a"], "test")
