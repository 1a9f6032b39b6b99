import numpy as np
import pytest

from smartbkg.errors import ConfigError
from smartbkg.reweight.fit import fit_parameter


def test_fit_finds_the_mean_of_gaussian_pseudo_data():
    rng = np.random.default_rng(6)

    def sample(mu, n):
        return {"x": rng.normal(mu, 1, n), "y": rng.normal(0.5 * mu, 1, n)}

    scan = {mu: sample(mu, 4000) for mu in (-0.1, 0.0, 0.1, 0.2, 0.3)}
    fit = fit_parameter(sample(0.0, 8000), scan, sample(0.12, 4000), parameter="mu", seed=7, bins=15,
                        bootstrap=20, truth=0.12)
    assert abs(fit["best"] - 0.12) < max(3 * fit["best_err"], 0.05), fit
    assert 0 < fit["best_err"] < 0.1 and fit["chi2"][0] > min(fit["chi2"]) < fit["chi2"][-1]
    with pytest.raises(ConfigError, match="at least 3"):
        fit_parameter(sample(0, 10), {0.0: sample(0, 10)}, sample(0, 10), parameter="mu")
