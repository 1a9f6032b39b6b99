"""The shared-uniform rule: exact marginals per skim, the union as kept fraction, unbiased yields."""

import numpy as np
import pytest

from smartbkg.errors import DataError
from smartbkg.filter.decision import shared_uniform, union_speedup
from smartbkg.metrics import speedup
from smartbkg.sampling import sample


def test_marginals_and_union_of_the_shared_uniform():
    rng = np.random.default_rng(0)
    n = 400_000
    p = np.clip(rng.beta(0.5, 2.0, size=(n, 3)), 0.01, 1.0)
    d = shared_uniform(p, rng.random(n), ["a", "b", "c"])
    # each skim keeps its own marginal: E[counts_s] = mean p_s (binomial error)
    for j in range(3):
        err = np.sqrt(np.sum(p[:, j] * (1 - p[:, j]))) / n
        assert abs(d.counts[:, j].mean() - p[:, j].mean()) < 4 * err
    # the simulated fraction is E[max_s p_s], less than independent draws would keep
    union = p.max(axis=1)
    assert abs(d.keep.mean() - union.mean()) < 4 * np.sqrt(np.sum(union * (1 - union))) / n
    assert union.mean() < (1 - np.prod(1 - p, axis=1)).mean() - 0.05
    # counting for any skim means being kept; weights are 1/p exactly where counted
    assert np.array_equal(d.keep, d.counts.any(axis=1))
    np.testing.assert_array_equal(d.weight, np.where(d.counts, 1 / p, 0.0))
    assert set(d.columns()) == {"p_a", "p_b", "p_c", "weight_a", "weight_b", "weight_c"}


def test_one_skim_is_the_sampling_filter():
    p = np.random.default_rng(3).uniform(0.01, 1.0, 1000)
    keep, weight = sample(p, seed=5)
    d = shared_uniform(p, np.random.default_rng(5).random(1000))
    np.testing.assert_array_equal(d.keep, keep)
    np.testing.assert_array_equal(d.weight[:, 0], weight)


def test_weighted_yield_is_unbiased_over_many_seeds():
    """Pull of the weighted yield of passing events: mean 0, width 1 within statistics."""
    rng = np.random.default_rng(1)
    n, seeds = 5000, 400
    y = rng.random((n, 2)) < [0.1, 0.03]
    p = np.clip(np.where(y, 0.7, 0.05) * rng.uniform(0.5, 1.5, (n, 2)), 0.01, 1.0)
    variance = (y * (1 - p) / p).sum(axis=0)
    pulls = np.array([((shared_uniform(p, np.random.default_rng(s).random(n)).weight * y).sum(axis=0)
                       - y.sum(axis=0)) / np.sqrt(variance) for s in range(seeds)])
    # 400 pulls: the mean has error 0.05, the width about 0.035
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.2)
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 0.15)


def test_union_speedup_of_one_skim_is_the_speedup():
    rng = np.random.default_rng(2)
    y = rng.random(5000) < 0.1
    p = np.where(y, 0.8, 0.1)
    a_eff = y.sum() / np.sum(1 / p[y])
    timings = {"t_fast": 0.08, "t_nn": 0.63, "t_slow": 97.04}
    assert union_speedup(p.mean(), a_eff, **timings) == pytest.approx(speedup(p, y.astype(float)), rel=1e-12)


def test_bad_probabilities_are_refused():
    with pytest.raises(DataError, match=r"\(0, 1\]"):
        shared_uniform(np.array([[0.0, 0.5]]), np.array([0.3]))
    with pytest.raises(DataError, match="do not match"):
        shared_uniform(np.ones((3, 2)), np.zeros(2))
