"""The oracle filter: estimating q from detector re-runs, p* = clip(C sqrt(q)), the C search,
the extrapolation in K."""

import numpy as np
import pytest

from smartbkg.errors import ConfigError, DataError
from smartbkg.metrics import speedup
from smartbkg.oracle import (detector_seeds, expected_speedup, expected_speedup_function, fit_beta_prior,
                             fit_convergence, fit_grid_prior, optimal_probabilities, optimal_scale, oracle_speedup,
                             pass_counts, posterior_q)
from smartbkg.simulation.beams import Beams
from smartbkg.simulation.detector import reconstruct
from smartbkg.simulation.production import generate
from smartbkg.simulation.skims import apply_skims


def known_q(n, seed=0):
    """A toy with known q: 70 % of events never pass, the rest q ~ Beta(0.6, 4); event groups 0/1
    with different q distributions (group 1 q doubled, capped at 1)."""
    rng = np.random.default_rng(seed)
    q = np.where(rng.random(n) < 0.7, 0.0, rng.beta(0.6, 4.0, n))
    groups = rng.integers(0, 2, n)
    return np.minimum(q * (1 + groups), 1.0), groups, rng


@pytest.fixture(scope="module")
def sample():
    return generate(300, seed=5, types=["charged", "taupair"], chunk_size=150)


def test_pass_counts_add_up_independent_detector_runs(sample):
    counts = pass_counts(sample, 4, seed=9, checkpoints=[1, 4], skims=["tau_generic", "leptonic_untagged"])
    first = apply_skims(reconstruct(sample, detector_seeds(9, 4)[0]), Beams(), ["tau_generic", "leptonic_untagged"])
    assert np.array_equal(counts[1], first)
    assert counts[4].shape == (300, 2) and np.all(counts[4] >= counts[1]) and counts[4].max() <= 4
    # the runs differ from each other (the detector is random given the record) ...
    assert 0 < np.count_nonzero((counts[4] > 0) & (counts[4] < 4))
    # ... and are reproducible from the seed
    assert np.array_equal(pass_counts(sample, 4, seed=9, skims=["tau_generic", "leptonic_untagged"])[4], counts[4])


def test_detector_seeds_are_distinct_and_reproducible():
    seeds = detector_seeds(3, 100)
    assert len(set(seeds)) == 100 and seeds == detector_seeds(3, 100) and seeds[:10] == detector_seeds(3, 10)
    assert all(0 <= s < 2**63 for s in seeds) and set(seeds).isdisjoint(detector_seeds(4, 100))


@pytest.mark.parametrize("prior", ["grid", "beta"])
def test_posterior_q_converges_to_the_known_q(prior):
    q, groups, rng = known_q(40_000)
    errors = {}
    for k in (4, 16, 64, 256):
        counts = rng.binomial(k, q)
        estimate, priors = posterior_q(counts, k, groups, prior=prior)
        errors[k] = np.mean((estimate - q) ** 2)
        # shrinking does better than the raw pass fraction where it matters, about as well at large K
        assert errors[k] < (1.0 if k <= 64 else 1.05) * np.mean((counts / k - q) ** 2)
        assert set(priors) == {0, 1}
    assert errors[4] > 2 * errors[16] > 4 * errors[64] > 8 * errors[256]
    assert errors[256] < 2e-4


def test_grid_prior_finds_the_events_that_never_pass_and_is_calibrated():
    q, _, rng = known_q(40_000, seed=6)
    counts = rng.binomial(16, q)
    prior = fit_grid_prior(counts, 16)
    assert prior.weights.sum() == pytest.approx(1.0) and prior.q[0] == 0
    # q = 0 and q << 1/K cannot be told apart from 16 runs: the mass near 0 is that of q = 0
    assert prior.weights[prior.q < 0.003].sum() == pytest.approx(np.mean(q < 0.003), abs=0.03)
    assert prior.weights @ prior.q == pytest.approx(q.mean(), rel=0.02)
    # calibrated: the events with a given count have, on average, the posterior mean as their q
    estimate, _ = posterior_q(counts, 16)
    for c in (0, 1, 4):
        assert estimate[counts == c][0] == pytest.approx(q[counts == c].mean(), rel=0.1)
    with pytest.raises(ConfigError, match="prior"):
        posterior_q(counts, 16, prior="flat")


def test_fit_beta_prior_recovers_the_prior_and_the_edge_cases():
    rng = np.random.default_rng(1)
    prior = fit_beta_prior(rng.binomial(20, rng.beta(2.0, 30.0, 50_000)), 20)
    assert prior.a / (prior.a + prior.b) == pytest.approx(2 / 32, rel=0.03)
    assert prior.a + prior.b == pytest.approx(32, rel=0.25)
    assert fit_beta_prior(np.zeros(10, int), 8) == (0.0, 1.0)
    assert fit_beta_prior(np.full(10, 8), 8) == (1.0, 0.0)
    with pytest.raises(DataError, match="counts"):
        fit_beta_prior(np.array([0, 9]), 8)


def test_optimal_probabilities_clip_at_the_floor_and_one():
    p = optimal_probabilities(np.array([0.0, 1e-6, 0.01, 0.25, 1.0]), 4.0, max_weight=50)
    assert p == pytest.approx([0.02, 0.02, 0.4, 1.0, 1.0])


def test_expected_speedup_is_the_speedup_when_q_is_0_or_1_and_takes_many_weightings():
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.1).astype(float)
    p = rng.uniform(0.05, 1, 2000)
    assert expected_speedup_function(y)(p) == pytest.approx(speedup(p, y), rel=1e-12)
    weights = rng.poisson(1.0, (3, 2000)).astype(float)
    assert expected_speedup(p, y, weight=weights) == pytest.approx([speedup(p, y, weight=w) for w in weights])


def test_optimal_scale_finds_the_maximum_of_a_dense_scan():
    q, _, _ = known_q(5000, seed=3)
    scale, best = optimal_scale(q, max_weight=100)
    objective = expected_speedup_function(q)
    scan = [objective(optimal_probabilities(q, c, 100)) for c in np.geomspace(0.1, 1000, 2000)]
    assert best == pytest.approx(objective(optimal_probabilities(q, scale, 100)))
    assert best >= max(scan) - 1e-9 and best == pytest.approx(max(scan), rel=1e-4)


def test_oracle_filter_beats_every_other_filter_with_known_q():
    q, _, rng = known_q(20_000, seed=4)
    scale, best = optimal_scale(q, max_weight=100)
    objective = expected_speedup_function(q)
    p_star = optimal_probabilities(q, scale, 100)
    others = [np.ones_like(q), np.full_like(q, 0.3), np.clip(q, 0.01, 1),  # q itself, a calibrated classifier
              np.clip(3 * q, 0.01, 1), np.clip(np.sqrt(q), 0.01, 1),
              np.where(q > 0.05, 1.0, 0.01)]                               # a hard threshold, floored
    others += [optimal_probabilities(q, scale * f, 100) for f in (0.8, 0.95, 1.05, 1.25)]
    others += [np.clip(p_star * rng.lognormal(0, 0.2, q.size), 0.01, 1) for _ in range(5)]
    for p in others:
        assert objective(p) < best
    assert best < 14.0  # below the perfect-classifier limit of its retention (about 17 at the floor)


def test_oracle_speedup_on_independent_labels_matches_the_expectation():
    q, _, rng = known_q(60_000, seed=5)
    result = oracle_speedup(q, (rng.random(q.size) < q).astype(float))
    assert result.speedup == pytest.approx(result.expected_speedup, rel=0.05)
    assert 0.5 < result.auc < 1 and result.scale > 1
    # q estimated from few runs: the measured speedup is lower than with the true q
    noisy = oracle_speedup(rng.binomial(4, q) / 4, (rng.random(q.size) < q).astype(float))
    assert noisy.speedup < 0.95 * result.speedup


def test_fit_convergence_extrapolates_in_k():
    k = np.array([16, 32, 64, 128])
    fit = fit_convergence(k, 5.0 - 3.0 / k)
    assert fit.limit == pytest.approx(5.0, abs=1e-6) and fit.power == pytest.approx(1.0)
    assert fit_convergence(k, 8.0 - 2.0 / np.sqrt(k)).limit == pytest.approx(8.0, abs=1e-6)
    with pytest.raises(DataError):
        fit_convergence([16, 32], [1.0, 2.0])


def test_bad_options_raise_package_errors(sample):
    with pytest.raises(ConfigError, match="positive integer"):
        pass_counts(sample, 0, seed=1)
    with pytest.raises(ConfigError, match="checkpoints"):
        pass_counts(sample, 2, seed=1, checkpoints=[3])
    with pytest.raises(ConfigError, match="seed"):
        detector_seeds(-1, 3)
    with pytest.raises(DataError, match="q"):
        expected_speedup_function(np.array([0.5, 1.5]))
