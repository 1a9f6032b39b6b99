import numpy as np
import pytest

from smartbkg.errors import ConfigError
from smartbkg.simulation.beams import ELECTRON_MASS, Beams, boost_matrix, rotation_onto, transform


def minkowski(v):
    return v[..., 0] ** 2 - np.sum(v[..., 1:] ** 2, axis=-1)


def test_nominal_superkekb():
    beams = Beams()
    assert beams.e_cm == pytest.approx(10.5792, abs=2e-4)  # the Upsilon(4S) mass
    assert beams.beta_gamma == pytest.approx(0.287, abs=5e-4)
    collinear = Beams(7.0, 4.0, crossing_angle=0.0)
    # sqrt(s) = 2 sqrt(E1 E2) and beta*gamma = (E1 - E2) / sqrt(s) for massless collinear beams.
    assert collinear.e_cm == pytest.approx(2 * np.sqrt(28.0), rel=1e-8)
    assert collinear.beta_gamma == pytest.approx(3.0 / (2 * np.sqrt(28.0)), rel=1e-8)


@pytest.mark.parametrize("beams", [Beams(), Beams(7.0, 4.0, 0.0), Beams(5.29, 5.29, 0.0)])
def test_cm_to_lab_takes_cm_beams_to_lab_beams(beams):
    m = beams.cm_to_lab()
    e = beams.e_cm / 2
    p = np.sqrt(e**2 - ELECTRON_MASS**2)
    lab = beams.four_momenta()
    np.testing.assert_allclose(m @ [e, 0, 0, p], lab[0], atol=1e-9)
    np.testing.assert_allclose(m @ [e, 0, 0, -p], lab[1], atol=1e-9)
    np.testing.assert_allclose(beams.lab_to_cm() @ m, np.eye(4), atol=1e-12)
    # A Lorentz transformation keeps the metric: M^T g M = g.
    g = np.diag([1.0, -1, -1, -1])
    np.testing.assert_allclose(m.T @ g @ m, g, atol=1e-12)


def test_transform_keeps_masses():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(100, 3))
    e = np.sqrt(np.sum(p**2, axis=1) + 0.14**2)
    out = np.stack(transform(Beams().cm_to_lab(), e, p[:, 0], p[:, 1], p[:, 2]), axis=1)
    np.testing.assert_allclose(minkowski(out), 0.14**2, rtol=1e-9)


def test_boost_and_rotation():
    b = boost_matrix([0, 0, 0.6])
    np.testing.assert_allclose(b @ [1, 0, 0, 0], [1.25, 0, 0, 0.75])
    for u, v in [([0, 0, 1], [1, 0, 0]), ([0, 0, 1], [0, 0, -1]), ([1, 0, 0], [-1, 0, 0]), ([0, 1, 0], [0, 1, 0])]:
        r = rotation_onto(np.array(u, float), np.array(v, float))
        np.testing.assert_allclose(r @ u, v, atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [dict(e_minus=0.0), dict(crossing_angle=-0.1), dict(spot_z=-1.0)])
def test_bad_beams(kwargs):
    with pytest.raises(ConfigError):
        Beams(**kwargs)
