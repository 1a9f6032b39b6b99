import numpy as np
import pytest

from smartbkg.hzgamma.features import FEATURES, angles, boost, event_features
from smartbkg.hzgamma.sample import _mass, generate, select


def test_boost_to_rest_frame_and_back_to_energy():
    rng = np.random.default_rng(0)
    p = rng.normal(0, 30, (50, 3))
    frame = np.c_[np.sqrt((p**2).sum(1) + 125.0**2), p]
    rest = boost(frame, frame)
    np.testing.assert_allclose(rest[:, 1:], 0, atol=1e-9)
    np.testing.assert_allclose(rest[:, 0], 125.0, rtol=1e-12)


def test_angles_of_a_hand_built_decay():
    """H at rest, Z along +z (so Theta is 0 for the beam along +z), leptons back to back along x in
    the Z frame (theta = 90 degrees), decay plane x-z equals the production plane? The production
    plane is spanned by beam and Z (both along z): degenerate; use a Z along +x instead."""
    mz, mh = 91.1876, 125.0
    pz = (mh**2 - mz**2) / (2 * mh)
    z = np.array([[np.hypot(pz, mz), pz, 0.0, 0.0]])
    photon = np.array([[pz, -pz, 0.0, 0.0]])
    # leptons back to back along y in the Z rest frame: lab momenta after boosting along x
    e_z = np.hypot(pz, mz)
    lminus = np.array([[e_z / 2, pz / 2, mz / 2, 0.0]])
    lplus = np.array([[e_z / 2, pz / 2, -mz / 2, 0.0]])
    np.testing.assert_allclose(lminus + lplus, z, atol=1e-12)
    cos_big_theta, cos_theta, phi = angles(lminus, lplus, photon)
    assert cos_big_theta == pytest.approx(0.0, abs=1e-12)  # Z perpendicular to the beam
    assert cos_theta == pytest.approx(0.0, abs=1e-9)       # lepton perpendicular to the Z
    assert abs(phi[0]) == pytest.approx(np.pi / 2, abs=1e-9)  # decay plane x-y against production plane x-z


def test_selection_picks_the_pair_closest_to_the_z_and_the_leading_isolated_photon():
    def p4(pt, eta, phi):
        return [pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]

    particles = [(11, p4(40, 0.1, 0.0)), (-11, p4(45, -0.3, 2.6)), (13, p4(30, 1.0, 1.0)), (-13, p4(12, 1.2, 4.0)),
                 (22, p4(50, 0.0, -1.6)), (22, p4(80, 0.11, 0.02)), (22, p4(20, 3.0, 1.0))]
    pdg = np.array([p for p, _ in particles])
    momenta = np.array([m for _, m in particles], dtype=np.float64)
    passed, objects = select(np.array([0, len(pdg)]), pdg, momenta)
    # m_ee = 83.5 GeV, m_mumu = 38.0 GeV (below 50); m_ee gamma = 134.3 GeV with the 50 GeV photon
    assert _mass(momenta[0] + momenta[1]) == pytest.approx(83.53, abs=0.01)
    assert passed.tolist() == [True] and objects["flavour"].tolist() == [11]
    np.testing.assert_allclose(objects["lminus"][0], momenta[0])
    np.testing.assert_allclose(objects["photon"][0], momenta[4])  # the 80 GeV one is within 0.4 of the e-
    keep = [0, 1, 2, 3, 5, 6]  # without it: the 80 GeV photon is not isolated, the 20 GeV one outside
    passed, _ = select(np.array([0, len(keep)]), pdg[keep], momenta[keep])
    assert passed.tolist() == [False]


def test_generated_signal_peaks_at_the_higgs_mass_and_background_does_not():
    signal, n, sigma = generate("signal", 600, 1)
    background, _, sigma_b = generate("background", 1500, 2)
    assert 1e-4 < sigma < 1e-2 < sigma_b < 10  # pb: H -> Z gamma -> l l gamma is a few fb
    features, mass = event_features(signal)
    _, mass_b = event_features(background)
    assert set(features) == set(FEATURES) and 0.2 < len(mass) / n < 0.8
    assert abs(np.median(mass) - 125.0) < 1.5 and np.percentile(mass, 84) - np.percentile(mass, 16) < 6
    assert np.percentile(mass_b, 84) - np.percentile(mass_b, 16) > 15
    assert np.all((mass > 105) & (mass < 170)) and np.all(np.isfinite(np.stack(list(features.values()))))
