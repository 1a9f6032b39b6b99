import numpy as np
import pytest

from smartbkg.errors import ConfigError, DataError
from smartbkg.reweight.classifier import predict_q, train_classifiers
from smartbkg.reweight.weights import classifier_weights


def test_weights_by_hand_with_clipping():
    w = classifier_weights([0.5, 0.8, 0.2, 0.99], n_a=100, n_b=300, clip=50)
    np.testing.assert_allclose(w.w, [3.0, 12.0, 0.75, 50.0])  # q/(1-q) * 300/100, 297 clipped to 50
    assert w.clipped_fraction == 0.25 and w.clip == 50
    assert w.n_eff == pytest.approx(w.w.sum() ** 2 / (w.w**2).sum())


def test_weights_refuse_bad_input():
    with pytest.raises(DataError, match="probabilities"):
        classifier_weights([0.2, np.nan], 1, 1)
    with pytest.raises(DataError, match="both samples"):
        classifier_weights([0.2], 0, 1)
    with pytest.raises(ConfigError, match="clip"):
        classifier_weights([0.2], 1, 1, clip=0)


@pytest.mark.parametrize("kind", ["gbdt", "mlp"])
def test_weights_recover_a_known_density_ratio(kind):
    """A ~ N(0.5, 1), B ~ N(0, 1) (plus an identical noise feature): p_A/p_B = exp(x/2 - 1/8)."""
    rng = np.random.default_rng(0)
    a = np.stack([rng.normal(0.5, 1, 6000), rng.normal(0, 1, 6000)], axis=1)
    b = np.stack([rng.normal(0.0, 1, 6000), rng.normal(0, 1, 6000)], axis=1)
    models = train_classifiers(a, b, kind, seed=1)
    grid = np.stack([np.linspace(-1.5, 1.5, 31), np.zeros(31)], axis=1)
    w = classifier_weights(predict_q(models, grid), 6000, 6000).w
    truth = np.exp(grid[:, 0] / 2 - 1 / 8)
    assert np.median(np.abs(w / truth - 1)) < 0.12
    assert np.corrcoef(np.log(w), np.log(truth))[0, 1] > 0.9
