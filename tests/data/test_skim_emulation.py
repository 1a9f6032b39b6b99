"""The generator-level skim emulation: what it computes, that it does not depend on how the events
are stored or grouped, and that it carries the skims' information."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from smartbkg.data.graphs import GraphStore
from smartbkg.data.preprocess import preprocess
from smartbkg.data.skim_emulation import (EMULATION_SEED, FEATURES, HYPOTHESES, IDEAL_DETECTOR, LOOSE_WINDOWS,
                                          MIN_TRACK_PROBABILITY, SMEARED_SKIMS, expected_candidates, expected_candidates_over_decays,
                                          expected_candidates_smeared, final_state_table, probability_at_least,
                                          radiative_probability, skim_emulation)
from smartbkg.simulation import generate
from smartbkg.simulation.detector import (PID_HIGH, PID_LOW, SPECIES, SPECIES_MASS, DetectorConfig, Reconstruction,
                                          final_state_mask, reconstruct, track_efficiency)
from smartbkg.simulation.beams import transform
from smartbkg.simulation.skims import CANDIDATE_FUNCTIONS, M_D0, SKIM_FUNCTIONS, SKIMS, WINDOWS, SkimInput, apply_skims
from tests.simulation.test_detector import direction, table_of
from tests.simulation.test_skims import BEAMS, M, b_meson, b_to_d_pi, b_to_d_rho, decay, reco, semileptonic


@pytest.fixture(scope="module")
def sample():
    """3000 embedded events (seed 5), raw records with labels of all six skims."""
    return generate(3000, seed=5)


def column(name):
    return FEATURES.index(name)


def test_shape_scale_and_finite(sample):
    x = skim_emulation(sample)
    assert x.shape == (len(sample), len(FEATURES)) and x.dtype == np.float32
    assert np.isfinite(x).all()
    flags = x[:, [column(f"pass_{s}") for s in SKIMS]]
    assert set(np.unique(flags)) <= {0.0, 1.0}
    assert 0.05 < np.abs(x).mean() and np.abs(x).max() < 10  # scaled to order one
    # counts over 10 are exact multiples of 0.1; the expected tracks never exceed the tracks
    n_tracks = x[:, column("n_tracks")] * 10
    np.testing.assert_allclose(n_tracks, np.round(n_tracks), atol=1e-4)
    assert np.all(x[:, column("expected_tracks")] <= x[:, column("n_tracks")] + 1e-6)
    assert np.all(x[:, column("leading_isolated_photon_e")] <= x[:, column("leading_barrel_photon_e")])


def test_raw_and_preprocessed_records_give_the_same_features(sample):
    processed, _ = preprocess(sample)
    assert len(processed) == len(sample)
    np.testing.assert_array_equal(skim_emulation(processed), skim_emulation(sample))


def test_features_of_an_event_do_not_depend_on_the_other_events(sample):
    subset = np.array([2999, 17, 1500, 3])
    np.testing.assert_array_equal(skim_emulation(sample.take(subset)), skim_emulation(sample)[subset])


def test_final_state_table_keeps_the_final_state_as_roots(sample):
    table = final_state_table(sample)
    assert len(table) == len(sample)
    assert np.all(table.particles["mother"] == -1)
    assert table.n_particles <= int(final_state_mask(sample).sum())
    np.testing.assert_array_equal(table.labels, sample.labels)


def test_the_ideal_skims_carry_the_skims_information(sample):
    """The real skim passes far more often where the ideal one passes than where it does not."""
    x = skim_emulation(sample)
    for j, skim in enumerate(sample.skims):
        y, ideal = sample.labels[:, j].astype(bool), x[:, column(f"pass_{skim}")] > 0
        assert np.mean(y == ideal) > 0.95, skim
        if y.sum() >= 10:
            assert y[ideal].mean() > 0.5 > 10 * y[~ideal].mean(), skim


def test_tau_topology_variables(sample):
    """Thrust is computed for events with at most 10 ideal tracks, where tau_generic can pass."""
    x = skim_emulation(sample)
    few = x[:, column("n_tracks")] * 10 <= 10
    thrust = x[:, column("thrust")]
    assert np.all(thrust[~few] == 0)
    assert np.all((thrust[few & (x[:, column("n_photons")] + x[:, column("n_tracks")] > 0)] >= 0.5))
    tau = x[:, column("pass_tau_generic")] > 0
    assert np.all(thrust[tau] > 0.85) and np.all(x[tau, column("visible_energy")] * 2 * 5.29 < 10.0 + 1e-4)


def test_graph_store_carries_the_features(sample):
    plain = GraphStore(sample)
    store = GraphStore(sample, event_features=True)
    assert "event_features" not in plain.graph_attrs and not hasattr(plain, "event_features")
    np.testing.assert_array_equal(store.event_features.numpy(), skim_emulation(sample))
    events = [5, 2, 900, 3]
    batch = store.batch(events)
    reference = Batch.from_data_list([store.data(i) for i in events])
    assert torch.equal(batch.event_features, reference.event_features)
    assert batch.event_features.shape == (4, len(FEATURES))
    assert torch.equal(batch.to_data_list()[2].event_features, store.event_features[900:901])
    order = np.random.default_rng(0).permutation(len(sample))
    reordered = GraphStore(sample, order=order, event_features=True)
    assert torch.equal(reordered.event_features, store.event_features[torch.from_numpy(order)])


def hypothesis_probabilities(reco_event, config=DetectorConfig()):
    """Per track: {hypothesis index: efficiency x identification probability x probability of
    coming from the interaction point} (those where the last two make >= 1 %)."""
    t = reco_event.tracks
    pt = np.hypot(t["px"], t["py"])
    p = np.hypot(pt, t["pz"])
    from_ip = t.get("ip_probability", np.ones(len(pt)))
    out = []
    for k, species in enumerate(t["true_species"]):
        matrix = PID_LOW if p[k] < config.pid_momentum_split else PID_HIGH
        eff = track_efficiency(pt[k:k + 1], config)[0]
        out.append({SPECIES.index(h): eff * from_ip[k] * matrix[species, SPECIES.index(h)] for h in HYPOTHESES
                    if from_ip[k] * matrix[species, SPECIES.index(h)] >= MIN_TRACK_PROBABILITY})
    return out


def enumerated_expectation(reco_event, skim, config=DetectorConfig()):
    """E[number of passing candidates] by enumerating every outcome of one event's tracks (lost,
    or reconstructed with each hypothesis) and photons (lost or found): the definition."""
    t, g = reco_event.tracks, reco_event.photons
    states = [[None, *options.items()] for options in hypothesis_probabilities(reco_event, config)]
    total = 0.0
    for outcome in itertools.product(*states, *[[False, True]] * len(g["e"])):
        tracks, photons = outcome[:len(states)], outcome[len(states):]
        probability = np.prod([1 - sum(o.values()) if s is None else s[1]
                               for s, o in zip(tracks, hypothesis_probabilities(reco_event, config))])
        probability *= np.prod([config.photon_efficiency if kept else 1 - config.photon_efficiency for kept in photons])
        keep = [k for k, s in enumerate(tracks) if s is not None]
        pid = np.array([tracks[k][0] for k in keep], dtype=np.int8)
        p = np.stack([t["px"][keep], t["py"][keep], t["pz"][keep]], axis=1)
        new_tracks = {"px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "e": np.hypot(np.linalg.norm(p, axis=1), SPECIES_MASS[pid]),
                      "charge": t["charge"][keep], "pid": pid}
        new_photons = {name: values[np.array(photons, dtype=bool)] for name, values in g.items()}
        event = Reconstruction.from_objects(1, new_tracks, np.zeros(len(keep), np.int64), new_photons,
                                            np.zeros(int(np.sum(photons)), np.int64))
        total += probability * len(CANDIDATE_FUNCTIONS[skim](SkimInput(event, BEAMS)))
    return total


@pytest.mark.parametrize("event, skim", [(b_to_d_pi(), "hadronic_b"), (b_to_d_rho(), "hadronic_b"),
                                         (semileptonic()[0], "semileptonic_b"), (b_to_d_pi(kaon_pid="pi"), "hadronic_b")])
def test_expected_candidates_are_the_expectation_over_detector_outcomes(event, skim):
    """The expected count equals the brute-force expectation over every reconstruction outcome,
    including the one where a true pion is identified as a kaon (the last case: no ideal candidate)."""
    ideal = reco([event])
    expected = expected_candidates(ideal, BEAMS)[0, list(CANDIDATE_FUNCTIONS).index(skim)]
    assert expected == pytest.approx(enumerated_expectation(ideal, skim), rel=1e-9, abs=1e-15)
    assert (expected > 0.5) == (len(CANDIDATE_FUNCTIONS[skim](SkimInput(ideal, BEAMS))) > 0)
    if skim == "hadronic_b" and expected < 0.5:
        assert 1e-4 < expected < 0.1  # the misidentified pion makes the only candidate


@pytest.mark.parametrize("from_ip", [(0.3, 1.0), (1.0, 0.02), (0.005, 1.0)])
def test_expected_candidates_weight_tracks_by_their_chance_to_come_from_the_ip(from_ip):
    """Tracks of in-flight decay products (``ip_probability`` < 1) count with that probability in
    the same expectation; one below the 1 % threshold with every hypothesis is left out."""
    ideal = reco([b_to_d_pi()])
    probability = np.ones(ideal.n_tracks[0])
    probability[:2] = from_ip
    ideal.tracks["ip_probability"] = probability
    full = expected_candidates(reco([b_to_d_pi()]), BEAMS)[0, 0]
    expected = expected_candidates(ideal, BEAMS)[0, 0]
    assert expected == pytest.approx(enumerated_expectation(ideal, "hadronic_b"), rel=1e-9, abs=1e-15)
    # Every candidate uses the first two tracks (the D's kaon and pion): the count scales with
    # their probabilities, up to the rare hypotheses that now fall below the threshold.
    assert expected == pytest.approx(full * np.prod(from_ip) if min(from_ip) > 0.01 else 0.0, rel=0.05)


def test_expected_candidates_over_decays_are_what_the_detector_makes_on_average(sample):
    """Summed over 3000 events, the expected candidates over the in-flight decays match the mean
    number of candidates that the nominal detector (at ideal resolution, which they leave out)
    makes over 64 runs, within the statistics of both and the few per cent that the 1 % threshold
    on a track's probability leaves out."""
    draws, runs = 8, 64
    final_state = final_state_table(sample)
    with np.errstate(over="ignore"):
        each = np.array([expected_candidates(reconstruct(final_state, EMULATION_SEED + draw, IDEAL_DETECTOR,
                                                         expected_flight=True), BEAMS).sum(axis=0)
                         for draw in range(draws)])
    expected = expected_candidates_over_decays(sample, draws).sum(axis=0)
    np.testing.assert_allclose(expected, each.mean(axis=0), rtol=1e-12)
    sharp = replace(DetectorConfig(), pt_resolution_a=0.0, pt_resolution_b=0.0, ecl_a=0.0, ecl_b=0.0, ecl_c=0.0)
    made = np.array([[len(candidates(SkimInput(reconstruct(final_state, 1000 + run, sharp), BEAMS)))
                      for candidates in CANDIDATE_FUNCTIONS.values()] for run in range(runs)])
    assert made.mean(axis=0).sum() > 15
    sigma = np.sqrt(made.var(axis=0) / runs + each.var(axis=0) / draws)
    np.testing.assert_array_less(np.abs(expected - made.mean(axis=0)), 4 * sigma + 0.03 * expected)


def b_to_d_pi_records(d_mass, copies=3000):
    """``copies`` generator records of B+ -> D0bar pi+, D0bar -> K+ pi-, with the D of mass ``d_mass``."""
    d, bachelor = decay(b_meson(), d_mass, M["pi"], 0.3, 1.0)
    k, pi = decay(d, M["K"], M["pi"], -0.5, 2.0)
    lab = BEAMS.cm_to_lab()
    return table_of([(pdg, (lab @ p4)[1:], (0, 0, 0)) for pdg, p4 in ((321, k), (-211, pi), (211, bachelor))], copies)


@pytest.mark.parametrize("shift", [0.0, 0.022, 0.029, 0.060])
def test_expected_candidates_smeared_are_what_the_detector_makes(shift):
    """Many copies of B -> D pi with the D mass at, near, just outside and far outside the window
    (25 MeV): the smeared expected count is the nominal detector's mean number of candidates, and
    it is 0 beyond the loose windows."""
    table = b_to_d_pi_records(M_D0 + shift)
    expected = expected_candidates_smeared(final_state_table(table), BEAMS, {"hadronic_b": 4})[:, 0]
    made = CANDIDATE_FUNCTIONS["hadronic_b"](SkimInput(reconstruct(table, seed=11), BEAMS)).count_per_event(len(table))
    sigma = np.sqrt(made.var() / len(table))
    assert abs(expected.mean() - made.mean()) < 4 * sigma + 0.01, (expected.mean(), made.mean())
    ideal = expected_candidates(reco([b_to_d_pi()]), BEAMS)[0, 0]  # at the window's centre
    if shift < WINDOWS.d0_kpi:
        assert made.mean() > 0.1 * ideal
    elif shift < LOOSE_WINDOWS.d0_kpi:
        assert 0 < expected.mean() < 0.3 * ideal
    else:
        assert np.all(expected == 0)


def test_expected_candidate_features(sample):
    """Every ideal candidate counts (with its survival probability, at most 1 per candidate); the
    feature sits at its floor, log10(1e-6) / 6 = -1, exactly where no hypothesis makes one."""
    x = skim_emulation(sample)
    for skim in CANDIDATE_FUNCTIONS:
        feature = x[:, column(f"expected_{skim}")]
        assert np.all(feature >= -1 - 1e-6) and np.all(feature < 1)
        assert np.all(feature[x[:, column(f"pass_{skim}")] > 0] > -1 + 1e-3)
        assert np.mean(feature > -1 + 1e-3) > np.mean(x[:, column(f"pass_{skim}")] > 0)  # misidentified ones
    for skim in SMEARED_SKIMS:
        smeared, expected = x[:, column(f"smeared_{skim}")], x[:, column(f"expected_{skim}")]
        assert np.all(smeared >= -1 - 1e-6) and np.all(smeared < 1)
        # nearly every event with an expected candidate has a smeared one (the loose windows hold
        # the nominal ones), and more events have one (candidates just outside the windows)
        assert np.mean(smeared[expected > -1 + 1e-3] > -1 + 1e-3) > 0.95
        assert np.sum(smeared > -1 + 1e-3) > np.sum(expected > -1 + 1e-3) > 0


def test_probability_at_least_is_the_poisson_binomial():
    rng = np.random.default_rng(1)
    event, probability = np.sort(rng.integers(0, 5, 12)), rng.uniform(0, 1, 12)
    got = probability_at_least(event, probability, 6, 3)
    for e in range(6):
        p = probability[event == e]
        exact = sum(np.prod(np.where(bits, p, 1 - p)) for bits in itertools.product([0, 1], repeat=len(p))
                    if sum(bits) >= 3)
        assert got[e] == pytest.approx(exact, abs=1e-12)
    assert got[5] == 0.0 and np.all(probability_at_least(event, np.ones(12), 6, 1)[np.unique(event)] == 1.0)


def photon_events(e_star, partner=None, pi0=False, copies=3000):
    """``copies`` events: three prompt pions and a barrel photon (or pi0) of CM energy ``e_star``
    [GeV], with an optional second photon ``partner`` = (lab energy [GeV], opening angle [rad])."""
    axis = direction(80.0)
    unit_e_star = transform(BEAMS.lab_to_cm(), np.ones(1), *axis[:, None])[0][0]
    pions = [(211, 1.0 * direction(theta, phi), (0, 0, 0)) for theta, phi in ((50, 1.0), (100, 2.5), (120, -2.0))]
    hard = [(111 if pi0 else 22, e_star / unit_e_star * axis, (0, 0, 0))]
    if partner is not None:
        energy, angle = partner
        hard.append((22, energy * direction(80.0 + np.degrees(angle)), (0, 0, 0)))
    return table_of(pions + hard, copies)


@pytest.mark.parametrize("e_star, partner, pi0", [
    (2.5, None, False),             # a clean hard photon: efficiencies only
    (1.81, None, False),            # at the window's lower edge: the resolution decides
    (2.5, (0.3, 0.1488), False),    # with a partner at the pi0 mass (pair mass 0.132 GeV): vetoed
    (2.5, (0.3, 0.1614), False),    # the pair near the window's upper edge (0.143 GeV)
    (2.5, (0.3, 0.1380), False),    # the pair near the window's lower edge (0.1225 GeV)
    (2.9, None, True),              # a hard pi0: the decay angle decides
])
def test_radiative_probability_is_what_the_detector_makes(e_star, partner, pi0):
    """Averaged over many copies of one event (each with its own draws of the decays), the
    radiative probability is the nominal detector's pass fraction, within the statistics."""
    table = photon_events(e_star, partner, pi0)
    probability = radiative_probability(final_state_table(table), BEAMS).mean()
    passed = SKIM_FUNCTIONS["radiative"](SkimInput(reconstruct(table, seed=11), BEAMS)).mean()
    sigma = np.sqrt(passed * (1 - passed) / len(table))
    assert abs(probability - passed) < 4 * sigma + 0.01, (probability, passed)


def test_radiative_probability_over_a_sample(sample):
    """Over the embedded sample the probabilities sum to the number of passes the nominal
    detector makes on average (16 runs), and the feature is at its floor where none can pass."""
    final_state = final_state_table(sample)
    probability = radiative_probability(final_state, BEAMS)
    j = SKIMS.index("radiative")
    passes = np.array([apply_skims(reconstruct(final_state, 100 + run), BEAMS)[:, j] for run in range(16)])
    assert passes.sum(axis=1).mean() > 20
    assert probability.sum() == pytest.approx(passes.sum(axis=1).mean(), rel=0.1)
    assert passes[:, probability == 0].sum() <= 1
    x = skim_emulation(sample)[:, column("probability_radiative")]
    np.testing.assert_allclose(x, np.log10(1e-6 + probability) / 6, rtol=1e-5, atol=1e-6)
