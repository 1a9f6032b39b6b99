"""Each skim fires on hand-built reconstructed events made to pass it and not on ones made to fail.

Events are built in the CM frame from exact decay kinematics, moved to the lab with the beams'
Lorentz transformation and handed to the skims as a :class:`Reconstruction` holding several
events at once (so candidates must not mix objects of different events).
"""

import numpy as np
import pytest

from smartbkg.simulation.beams import Beams
from smartbkg.simulation.candidates import thrust
from smartbkg.simulation.detector import SPECIES, SPECIES_MASS, Reconstruction, two_body_decay
from smartbkg.simulation.skims import (CANDIDATE_FUNCTIONS, M_B, M_D0, M_DPLUS, SKIM_FUNCTIONS, SKIMS, SkimInput,
                                      apply_skims)

BEAMS = Beams()
E_BEAM = BEAMS.e_cm / 2
M = {name: SPECIES_MASS[SPECIES.index(name)] for name in SPECIES}
M_PI0, M_RHO, M_DSTAR = 0.1349768, 0.775, 2.01026


def at_rest_frame_direction(theta, phi=0.4):
    return np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def particle(p, mass, direction):
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    return np.concatenate([[np.hypot(p, mass)], p * d])


def decay(parent, m1, m2, cos_theta=0.3, phi=1.0):
    a, b = two_body_decay(parent[None], np.array([m1]), np.array([m2]), np.array([cos_theta]), np.array([phi]))
    return a[0], b[0]


def track(p4, charge, pid):
    return (p4, charge, pid)


def reco(events):
    """Reconstruction from CM-frame events: dicts with ``tracks`` [(p4, charge, pid)] and ``photons`` [p4]."""
    lab = BEAMS.cm_to_lab()
    tracks = {k: [] for k in ("px", "py", "pz", "e", "charge", "pid", "true_species", "true_index")}
    photons = {k: [] for k in ("px", "py", "pz", "e")}
    track_event, photon_event = [], []
    for i, ev in enumerate(events):
        for k, (p4, charge, pid) in enumerate(ev.get("tracks", [])):
            p = p4[1:]
            v = lab @ np.concatenate([[np.sqrt(p @ p + M[pid] ** 2)], p])
            for name, value in zip(("e", "px", "py", "pz"), v):
                tracks[name].append(value)
            tracks["charge"].append(charge)
            tracks["pid"].append(SPECIES.index(pid))
            tracks["true_species"].append(SPECIES.index(pid))
            tracks["true_index"].append(k)
            track_event.append(i)
        for p4 in ev.get("photons", []):
            v = lab @ np.concatenate([[np.linalg.norm(p4[1:])], p4[1:]])
            for name, value in zip(("e", "px", "py", "pz"), v):
                photons[name].append(value)
            photon_event.append(i)
    cast = {"charge": np.int8, "pid": np.int8, "true_species": np.int8, "true_index": np.int64}
    tracks = {k: np.asarray(v, dtype=cast.get(k, np.float64)) for k, v in tracks.items()}
    photons = {k: np.asarray(v, dtype=np.float64) for k, v in photons.items()}
    return Reconstruction.from_objects(len(events), tracks, np.asarray(track_event, np.int64),
                                       photons, np.asarray(photon_event, np.int64))


def decide(skim, events):
    return apply_skims(reco(events), BEAMS, [skim])[:, 0].tolist()


def b_meson(p=None, direction=(1, 0.2, 0.1)):
    p = np.sqrt(E_BEAM**2 - M_B**2) if p is None else p
    return particle(p, M_B, direction)


def b_to_d_pi(bachelor_charge=1, kaon_pid="K", p=None):
    """B+ -> D0bar pi+, D0bar -> K+ pi-."""
    d, bachelor = decay(b_meson(p), M_D0, M["pi"], 0.3, 1.0)
    k, pi = decay(d, M["K"], M["pi"], -0.5, 2.0)
    return {"tracks": [track(k, 1, kaon_pid), track(pi, -1, "pi"), track(bachelor, bachelor_charge, "pi")]}


def b0_to_dminus_pi():
    """B0 -> D- pi+, D- -> K+ pi- pi- (through a K+ pi- system of mass 0.9 GeV)."""
    d, bachelor = decay(b_meson(), M_DPLUS, M["pi"], -0.2, 0.5)
    kpi, pi2 = decay(d, 0.9, M["pi"], 0.4, 2.5)
    k, pi1 = decay(kpi, M["K"], M["pi"], 0.1, 0.3)
    return {"tracks": [track(k, 1, "K"), track(pi1, -1, "pi"), track(pi2, -1, "pi"), track(bachelor, 1, "pi")]}


def b_to_d_rho():
    """B+ -> D0bar rho+, rho+ -> pi+ pi0, pi0 -> gamma gamma, D0bar -> K+ pi-."""
    d, rho = decay(b_meson(), M_D0, M_RHO, 0.6, 0.2)
    k, pi = decay(d, M["K"], M["pi"], 0.2, 1.2)
    pi_plus, pi0 = decay(rho, M["pi"], M_PI0, -0.3, 0.8)
    g1, g2 = decay(pi0, 0.0, 0.0, 0.1, 0.4)
    return {"tracks": [track(k, 1, "K"), track(pi, -1, "pi"), track(pi_plus, 1, "pi")], "photons": [g1, g2]}


def test_hadronic_b():
    events = [b_to_d_pi(), b_to_d_pi(bachelor_charge=-1), b_to_d_pi(kaon_pid="pi"), b_to_d_pi(p=0.8),
              b0_to_dminus_pi(), b_to_d_rho(), {}]
    s = SkimInput(reco(events[:1]), BEAMS)
    mbc, de = s.mbc_delta_e(s.b_hadronic)
    assert mbc.max() == pytest.approx(M_B, abs=1e-6) and np.abs(de).min() == pytest.approx(0, abs=1e-6)
    assert decide("hadronic_b", events) == [True, False, False, False, True, True, False]


def semileptonic(lepton_charge=-1, lepton_pid="e", cos_lepton=-0.9):
    """B- -> D0 e- nu (through a W* of mass 1.5 GeV), D0 -> K- pi+."""
    d, w = decay(b_meson(), M_D0, 1.5, 0.5, 0.7)
    lepton, _ = decay(w, M["e"], 0.0, cos_lepton, 2.0)
    k, pi = decay(d, M["K"], M["pi"], 0.3, 0.1)
    return {"tracks": [track(k, -1, "K"), track(pi, 1, "pi"), track(lepton, lepton_charge, lepton_pid)]}, lepton


def test_semileptonic_b():
    events, leptons = zip(*[semileptonic(), semileptonic(lepton_charge=1), semileptonic(lepton_pid="pi"),
                            semileptonic(cos_lepton=0.9)])
    p_lepton = [np.linalg.norm(l[1:]) for l in leptons]
    assert p_lepton[0] > 1.0 and p_lepton[3] < 1.0
    assert decide("semileptonic_b", list(events)) == [True, False, False, False]


def test_leptonic_untagged():
    def event(p_lepton, n_pions, pid="mu", charge=-1):
        tracks = [track(particle(p_lepton, M[pid], (0.3, 1, 0.2)), charge, pid)]
        tracks += [track(particle(0.5, M["pi"], (-1, k, 0.1)), (-1) ** k, "pi") for k in range(n_pions)]
        return {"tracks": tracks}

    events = [event(2.5, 2), event(1.9, 2), event(2.5, 1), event(2.2, 3, "e", 1), event(2.5, 2, "pi")]
    assert decide("leptonic_untagged", events) == [True, False, False, True, False]


def test_radiative():
    pions = [track(particle(0.6, M["pi"], (k - 1, -1, 0.2)), (-1) ** k, "pi") for k in range(3)]
    hard = 2.2 * at_rest_frame_direction(np.pi / 2)
    # A second photon forming a pi0 with the hard one: m^2 = 2 E1 E2 (1 - cos alpha).
    alpha = 0.15
    partner = M_PI0**2 / (2 * 2.2 * (1 - np.cos(alpha))) * at_rest_frame_direction(np.pi / 2 + alpha)
    photon = lambda p: np.concatenate([[np.linalg.norm(p)], p])  # noqa: E731
    events = [{"tracks": pions, "photons": [photon(hard)]},
              {"tracks": pions, "photons": [photon(hard), photon(partner)]},
              {"tracks": pions, "photons": [photon(2.2 * at_rest_frame_direction(np.radians(25)))]},
              {"tracks": pions, "photons": [photon(1.7 * at_rest_frame_direction(np.pi / 2))]},
              {"tracks": pions[:2], "photons": [photon(hard)]}]
    s = SkimInput(reco(events[:2]), BEAMS)
    assert len(s.pi0) == 1 and s.pi0.mass[0] == pytest.approx(M_PI0, abs=1e-6)
    assert decide("radiative", events) == [True, False, False, False, False]


def test_charm_dstar():
    def event(p, slow_charge=1):
        dstar = particle(p, M_DSTAR, (0.2, 1, -0.3))
        d0, slow = decay(dstar, M_D0, M["pi"], 0.4, 1.0)
        k, pi = decay(d0, M["K"], M["pi"], -0.2, 0.3)
        return {"tracks": [track(k, -1, "K"), track(pi, 1, "pi"), track(slow, slow_charge, "pi")]}

    assert decide("charm_dstar", [event(3.0), event(2.0), event(3.0, slow_charge=-1)]) == [True, False, False]


def test_tau_generic():
    def pion(p, direction, charge):
        return track(particle(p, M["pi"], direction), charge, "pi")

    one_one = [pion(3.0, (0, 1, 0.1), 1), pion(2.5, (0.05, -1, -0.1), -1)]
    three = [pion(1.0, (-0.1, -1, 0.05), -1), pion(0.8, (0.1, -1, -0.05), 1), pion(0.6, (0, -1, 0.1), -1)]
    # A hadronic jet: three pions at +-0.55 rad around +y, mass 1.95 GeV, against one pion.
    jet = [pion(1.5, (np.sin(a), np.cos(a), 0), (-1) ** k) for k, a in enumerate((-0.55, 0.0, 0.55))]
    jet_event = jet + [pion(3.0, (0, -1, 0.05), 1)]

    def mass(tracks):
        p4 = np.sum([t[0] for t in tracks], axis=0)
        return np.sqrt(p4[0] ** 2 - p4[1:] @ p4[1:])

    assert mass(three) < 1.8 < mass(jet)
    s = SkimInput(reco([{"tracks": jet_event}]), BEAMS)
    thrust_value, _ = thrust(*s.objects[:1], s.objects[1][:, 1:], 1)
    assert thrust_value[0] > 0.9 and s.visible_energy[0] < 10  # only the hemisphere mass fails
    hard_photon = particle(5.0, 0.0, (0, 1, 0))
    events = [{"tracks": one_one}, {"tracks": one_one[:1] + three}, {"tracks": jet_event},
              {"tracks": one_one, "photons": [hard_photon]}, {"tracks": one_one[:1]}]
    assert decide("tau_generic", events) == [True, True, False, False, False]


def test_apply_skims_columns():
    labels = apply_skims(reco([b_to_d_pi(), {}]), BEAMS)
    assert labels.shape == (2, len(SKIMS)) and labels.dtype == bool
    assert labels[0, SKIMS.index("hadronic_b")] and not labels[1].any()


def test_events_without_objects():
    labels = apply_skims(reco([{}, {}, {}]), BEAMS)
    assert labels.shape == (3, len(SKIMS)) and not labels.any()


def test_candidate_functions_are_the_skims():
    """An exclusive skim passes exactly where its candidate function leaves a candidate."""
    events, _ = zip(*[semileptonic(), semileptonic(lepton_charge=1)])
    s = SkimInput(reco([b_to_d_pi(), b_to_d_rho(), b_to_d_pi(kaon_pid="pi"), *events, {}]), BEAMS)
    for skim, candidates in CANDIDATE_FUNCTIONS.items():
        np.testing.assert_array_equal(candidates(s).any_per_event(s.n), SKIM_FUNCTIONS[skim](s))
    assert CANDIDATE_FUNCTIONS["hadronic_b"](s).count_per_event(s.n).tolist() == [1, 1, 0, 0, 0, 0]
