"""The fast detector model on hand-built events: acceptance, thresholds, resolution, PID, decays."""

from dataclasses import replace

import numpy as np
import pytest

from smartbkg.data.table import EventTable
from smartbkg.simulation.detector import (PID_HIGH, PID_LOW, SPECIES, SPECIES_MASS, DetectorConfig,
                                          final_state_mask, ip_probability, reconstruct, two_body_decay)

MASS = {211: 0.13957, 321: 0.493677, 13: 0.10566, 11: 0.000511, 22: 0.0, 111: 0.134977, 12: 0.0, 130: 0.497611,
        2112: 0.939565, 310: 0.497611, 3122: 1.115683, 3222: 1.18937, 3112: 1.197449, 3312: 1.32171, 3322: 1.31486,
        3334: 1.67245}
#: Everything that reaches the detector is seen: full solid angle, no thresholds, no IP requirement.
SEE_ALL = replace(DetectorConfig(), track_theta_min=0.0, track_theta_max=180.0, track_pt_min=0.0,
                  track_pt_turn_on=1e-12, track_efficiency=1.0, track_d0_max=1e9, track_z0_max=1e9,
                  photon_theta_min=0.0, photon_theta_max=180.0, photon_threshold_forward=0.0,
                  photon_threshold_barrel=0.0, photon_threshold_backward=0.0, photon_efficiency=1.0)


def direction(theta_deg, phi=0.3):
    t = np.radians(theta_deg)
    return np.array([np.sin(t) * np.cos(phi), np.sin(t) * np.sin(phi), np.cos(t)])


def table_of(particles, copies=1):
    """``copies`` events, each with the given particles (pdg, momentum 3-vector, vertex [cm]) as roots."""
    events = []
    for _ in range(copies):
        ev = {f: [] for f in ("pdg", "mother", "prodTime", "x", "y", "z", "px", "py", "pz", "energy")}
        for pdg, p, vertex in particles:
            ev["pdg"].append(pdg)
            ev["mother"].append(-1)
            ev["prodTime"].append(0.0)
            for k, name in enumerate("xyz"):
                ev[name].append(vertex[k])
            for k, name in enumerate(("px", "py", "pz")):
                ev[name].append(p[k])
            ev["energy"].append(np.sqrt(np.dot(p, p) + MASS[abs(pdg)] ** 2))
        events.append(ev)
    return EventTable.from_events(events, np.zeros((copies, 0)), (), 0)


def found_fraction(pdg, p, vertex=(0, 0, 0), n=4000, config=DetectorConfig(), kind="tracks"):
    reco = reconstruct(table_of([(pdg, p, vertex)], n), seed=1, config=config)
    counts = reco.n_tracks if kind == "tracks" else reco.n_photons
    return counts.mean()


def test_final_state_excludes_beams_partons_and_decayed():
    events = [{"pdg": [11, -11, 10022, 2, -2, 421, -321, 211, 22],
               "mother": [-1, -1, 0, 2, 2, 3, 5, 5, 4],
               "initial": [1, 1, 0, 0, 0, 0, 0, 0, 0],
               **{f: np.zeros(9) for f in ("prodTime", "x", "y", "z", "px", "py", "pz", "energy")}}]
    table = EventTable.from_events(events, np.zeros((1, 0)), (), 0)
    np.testing.assert_array_equal(final_state_mask(table), [0, 0, 0, 0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("theta, expected", [(90, 0.97), (20, 0.97), (16, 0.0), (145, 0.97), (152, 0.0)])
def test_track_polar_acceptance(theta, expected):
    assert found_fraction(211, 1.0 * direction(theta)) == pytest.approx(expected, abs=0.012)


def test_track_pt_turn_on():
    config = DetectorConfig()
    for pt in (0.04, 0.07, 0.1, 0.3):
        eff = max(0.0, config.track_efficiency * (1 - np.exp(-(pt - config.track_pt_min) / config.track_pt_turn_on)))
        assert found_fraction(211, pt * direction(90)) == pytest.approx(eff, abs=0.015)


def test_tracks_must_come_from_the_interaction_point():
    radial = direction(90, phi=0.0)                 # along +x
    assert found_fraction(211, radial, vertex=(1.0, 0, 0)) > 0.95      # points back to the beam line
    assert found_fraction(211, direction(90, phi=np.pi / 2), vertex=(1.0, 0, 0)) == 0   # d0 = 1 cm
    assert found_fraction(211, radial, vertex=(0.3, 0, 0)) > 0.95
    assert found_fraction(211, direction(90, phi=np.pi / 2), vertex=(0.3, 0, 0)) > 0.95  # d0 = 0.3 cm
    assert found_fraction(211, radial, vertex=(0, 0, 3.0)) == 0        # z0 = 3 cm
    assert found_fraction(211, direction(60, phi=0.0), vertex=(1.0, 0, -1.0)) > 0.95  # z0 = -1 + cot(60) ~ -0.42


def test_momentum_resolution():
    n = 5000
    p_true = 1.0 * direction(90)
    reco = reconstruct(table_of([(211, p_true, (0, 0, 0))], n), seed=2)
    pt = np.hypot(reco.tracks["px"], reco.tracks["py"])
    beta = 1.0 / np.sqrt(1 + MASS[211] ** 2)
    expected = np.hypot(0.0011 * 1.0, 0.0025 / beta)
    assert np.std(pt) == pytest.approx(expected, rel=0.05)
    assert np.mean(pt) == pytest.approx(1.0, abs=3 * expected / np.sqrt(len(pt)))
    # Direction kept.
    np.testing.assert_allclose(reco.tracks["px"] / pt, p_true[0], atol=1e-12)


@pytest.mark.parametrize("pdg, p, matrix", [(321, 1.5, PID_HIGH), (13, 0.5, PID_LOW), (11, 1.0, PID_HIGH)])
def test_particle_identification_rates(pdg, p, matrix):
    n = 20000
    reco = reconstruct(table_of([(pdg, p * direction(70), (0, 0, 0))], n), seed=3)
    species = SPECIES.index({321: "K", 13: "mu", 11: "e"}[pdg])
    assert (reco.tracks["true_species"] == species).all()
    rates = np.bincount(reco.tracks["pid"], minlength=5) / len(reco.tracks["pid"])
    expected = matrix[species] / matrix[species].sum()
    tolerance = 4 * np.sqrt(expected * (1 - expected) / len(reco.tracks["pid"])) + 1e-3
    assert (np.abs(rates - expected) < tolerance).all(), (rates, expected)
    # The energy uses the hypothesis mass.
    pabs = np.linalg.norm(np.stack([reco.tracks[k] for k in ("px", "py", "pz")], 1), axis=1)
    np.testing.assert_allclose(reco.tracks["e"], np.hypot(pabs, SPECIES_MASS[reco.tracks["pid"]]), rtol=1e-12)
    assert set(np.unique(reco.tracks["charge"])) == {1 if pdg == 321 else -1}


@pytest.mark.parametrize("energy, theta, expected", [
    (0.07, 90, 0.98), (0.07, 20, 0.0), (0.2, 20, 0.98), (0.12, 140, 0.0), (0.5, 140, 0.98),
    (1.0, 10, 0.0), (1.0, 158, 0.0)])
def test_photon_acceptance_and_thresholds(energy, theta, expected):
    assert found_fraction(22, energy * direction(theta), kind="photons") == pytest.approx(expected, abs=0.03)


def test_photon_energy_resolution():
    reco = reconstruct(table_of([(22, 1.0 * direction(90), (0, 0, 0))], 5000), seed=4)
    expected = np.sqrt(0.00066**2 + 0.0081**2 + 0.0134**2)
    assert np.std(reco.photons["e"]) == pytest.approx(expected, rel=0.05)
    np.testing.assert_allclose(np.linalg.norm(np.stack([reco.photons[k] for k in ("px", "py", "pz")], 1), axis=1),
                               reco.photons["e"], rtol=1e-6)  # float32 inputs


def test_invisible_particles():
    reco = reconstruct(table_of([(12, direction(90), (0, 0, 0)), (130, direction(90), (0, 0, 0)),
                                 (2112, direction(90), (0, 0, 0))], 200), seed=5)
    assert reco.n_tracks.sum() == 0 and reco.n_photons.sum() == 0


def test_k_short_decays_in_flight():
    n = 4000
    k_short = [(310, 2.0 * direction(90), (0, 0, 0))]
    wide = replace(DetectorConfig(), track_d0_max=1e3, track_z0_max=1e3, track_efficiency=1.0, track_pt_turn_on=1e-9)
    reco = reconstruct(table_of(k_short, n), seed=6, config=wide)
    two = reco.n_tracks == 2
    # pi+ pi- in 69.2 % of decays (minus the few with a pion outside the acceptance).
    assert two.mean() == pytest.approx(0.692, abs=0.04)
    start = reco.track_offsets[:-1][two]
    p4 = np.stack([reco.tracks[k] for k in ("e", "px", "py", "pz")], 1)
    pair = p4[start] + p4[start + 1]
    np.testing.assert_array_equal(reco.tracks["charge"][start] + reco.tracks["charge"][start + 1], 0)
    # Pion hypothesis for most tracks: the pair mass peaks at the K_S0 mass.
    mass = np.sqrt(pair[:, 0] ** 2 - np.sum(pair[:, 1:] ** 2, axis=1))
    assert np.median(mass) == pytest.approx(0.4976, abs=0.003)
    # pi0 pi0 decays give photons instead.
    assert (reco.n_photons[reco.n_tracks == 0] >= 2).mean() > 0.8
    # With the default IP requirement (d0 < 0.5 cm) most daughters of a K_S0 flying 10.8 cm on average are lost.
    default = reconstruct(table_of(k_short, n), seed=6)
    assert default.n_tracks.mean() < 0.5 * reco.n_tracks.mean()


def test_ip_probability_is_the_chance_of_a_flight_that_passes_the_cuts():
    """The analytic probability against lengths drawn from the exponential, with the cuts
    written out (origins off the beam line, the radius cut and a track parallel to the flight
    included)."""
    rng = np.random.default_rng(3)
    k = 400
    config = replace(DetectorConfig(), decay_radius_max=3.0)
    origin = rng.normal(scale=[0.2, 0.2, 1.0], size=(k, 3))
    direction = rng.normal(size=(k, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    decay_length = rng.uniform(0.2, 20.0, k)
    p = np.where(np.arange(k)[:, None] % 10 == 0, direction, rng.normal(size=(k, 3)))
    lengths = rng.exponential(size=(20_000, 1)) * decay_length
    vertex = origin + lengths[..., None] * direction
    pt = np.hypot(p[:, 0], p[:, 1])
    d0 = (vertex[..., 0] * p[:, 1] - vertex[..., 1] * p[:, 0]) / pt
    z0 = vertex[..., 2] - (vertex[..., 0] * p[:, 0] + vertex[..., 1] * p[:, 1]) / pt**2 * p[:, 2]
    passed = ((np.abs(d0) < config.track_d0_max) & (np.abs(z0) < config.track_z0_max)
              & (np.hypot(vertex[..., 0], vertex[..., 1]) < config.decay_radius_max))
    expected = ip_probability(origin, direction, decay_length, p, config)
    np.testing.assert_allclose(expected, passed.mean(axis=0), atol=4 * np.sqrt(0.25 / len(lengths)))
    assert 0.05 < expected.mean() < 0.95


@pytest.mark.parametrize("pdg, p", [(310, 1.0), (310, 0.3), (3122, 1.5), (3312, 1.0)])
def test_expected_flight_averages_the_drawn_flights(pdg, p):
    """Over many events (other decay modes, angles and lengths each), the tracks of the
    in-flight decay products found with drawn flights average to the summed ``ip_probability``
    of the tracks that ``expected_flight`` keeps; tracks of generator particles keep 1."""
    n = 6000
    table = table_of([(pdg, p * direction(70), (0.01, -0.02, 0.1)), (211, direction(80), (0, 0, 0))], n)
    drawn = reconstruct(table, seed=13)
    expected = reconstruct(table, seed=13, expected_flight=True)
    assert "ip_probability" not in drawn.tracks
    probability = expected.tracks["ip_probability"]
    prompt = expected.tracks["true_index"] == 1
    np.testing.assert_array_equal(probability[prompt], 1.0)
    assert 0 < probability[~prompt].min() and probability[~prompt].max() <= 1
    products = (drawn.tracks["true_index"] != 1).sum()
    assert products > 100
    sigma = np.sqrt(np.sum(probability[~prompt] * (1 - probability[~prompt])))
    assert products == pytest.approx(probability[~prompt].sum(), abs=4 * sigma)
    # The same draws of everything else: every track found with its drawn flight is kept.
    assert set(drawn.tracks["true_index"]) <= set(expected.tracks["true_index"])


def test_response_is_addressed_by_event_id():
    table = table_of([(211, direction(80), (0, 0, 0)), (22, 0.3 * direction(100), (0, 0, 0)),
                      (310, 0.4 * direction(60), (0, 0, 0))], 300)
    full = reconstruct(table, seed=9)
    subset = np.array([250, 3, 17])
    part = reconstruct(table.take(subset), seed=9)
    for k, pos in enumerate(subset):
        lo, hi = full.track_offsets[pos], full.track_offsets[pos + 1]
        mlo, mhi = part.track_offsets[k], part.track_offsets[k + 1]
        for name in ("px", "pid", "true_index"):
            np.testing.assert_array_equal(full.tracks[name][lo:hi], part.tracks[name][mlo:mhi])
        lo, hi = full.photon_offsets[pos], full.photon_offsets[pos + 1]
        mlo, mhi = part.photon_offsets[k], part.photon_offsets[k + 1]
        np.testing.assert_array_equal(full.photons["e"][lo:hi], part.photons["e"][mlo:mhi])
    assert not np.array_equal(reconstruct(table, seed=10).tracks["px"], full.tracks["px"])


def test_two_body_decay_kinematics():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(50, 3))
    parent = np.concatenate([np.sqrt(np.sum(p**2, 1) + 0.4976**2)[:, None], p], 1)
    m1 = np.full(50, 0.13957)
    a, b = two_body_decay(parent, m1, m1, rng.uniform(-1, 1, 50), rng.uniform(0, 6.28, 50))
    np.testing.assert_allclose(a + b, parent, atol=1e-12)
    np.testing.assert_allclose(a[:, 0] ** 2 - np.sum(a[:, 1:] ** 2, 1), 0.13957**2, atol=1e-9)


@pytest.mark.parametrize("pdg, ctau", [(3222, 2.404), (3112, 4.434), (3312, 4.91), (3322, 8.71), (3334, 2.461),
                                       (-3334, 2.461)])
def test_hyperons_decay_in_flight_with_their_lifetime(pdg, ctau):
    """c*tau from PDG 2024. With beta*gamma = 1 (p = m) and decays only within R = c*tau of the
    beam line (flight perpendicular to it), a fraction 1 - 1/e leaves something in the detector;
    every decay of these hyperons gives a charged track or a pi0."""
    n = 4000
    config = replace(SEE_ALL, decay_radius_max=ctau)
    reco = reconstruct(table_of([(pdg, MASS[abs(pdg)] * direction(90), (0, 0, 0))], n), seed=11, config=config)
    seen = (reco.n_tracks + reco.n_photons) > 0
    assert seen.mean() == pytest.approx(1 - np.exp(-1), abs=4 * np.sqrt(0.23 / n))


@pytest.mark.parametrize("pdg", [3334, -3334])
def test_omega_cascade(pdg):
    """Omega- -> Lambda K- (67.8 %), Xi0 pi- (23.6 %), Xi- pi0 (8.6 %); the Xis go on to Lambda pi
    and the Lambda to p pi- (63.9 %) or n pi0 (35.8 %): one charged track (K- or pi-) and, in
    63.9 / 99.7 of the events, a p pi- pair with the Lambda mass. Charge conjugates for Omega+."""
    n = 4000
    config = replace(SEE_ALL, decay_radius_max=1e9)
    reco = reconstruct(table_of([(pdg, 1.5 * direction(70), (0, 0, 0))], n), seed=12, config=config)
    sign = np.sign(pdg)
    event_of = np.repeat(np.arange(n), reco.n_tracks)

    def per_event(values):
        return np.bincount(event_of, weights=values, minlength=n)

    np.testing.assert_array_equal(per_event(reco.tracks["charge"]), -sign)
    assert set(np.unique(reco.n_tracks)) == {1, 3}
    three = reco.n_tracks == 3
    assert three.mean() == pytest.approx(0.639 / 0.997, abs=4 * np.sqrt(0.23 / n))
    kaon = per_event(reco.tracks["true_species"] == SPECIES.index("K"))
    assert kaon.mean() == pytest.approx(0.678, abs=4 * np.sqrt(0.22 / n))
    # Omega -> Lambda K, Lambda -> p pi: the p pi pair has the Lambda mass (true-species masses;
    # the momentum resolution gives ~1 MeV).
    species = reco.tracks["true_species"]
    rows = reco.track_offsets[:-1][three & (kaon == 1)][:, None] + np.arange(3)
    assert rows.shape[0] > 0.6 * 0.678 * n
    order = np.argsort(species[rows], axis=1)          # by species: pi (2), K (3), p (4)
    rows = np.take_along_axis(rows, order, axis=1)
    np.testing.assert_array_equal(species[rows], np.broadcast_to([2, 3, 4], rows.shape))
    p3 = np.stack([reco.tracks[k] for k in ("px", "py", "pz")], 1)
    true_mass = SPECIES_MASS[species]
    e = np.sqrt(np.sum(p3**2, 1) + true_mass**2)
    pair_e, pair_p = e[rows[:, 0]] + e[rows[:, 2]], p3[rows[:, 0]] + p3[rows[:, 2]]
    mass = np.sqrt(pair_e**2 - np.sum(pair_p**2, 1))
    assert np.median(mass) == pytest.approx(1.115683, abs=1e-3)
    np.testing.assert_array_equal(reco.tracks["charge"][rows[:, 2]], sign)       # p for Omega-, pbar for Omega+
