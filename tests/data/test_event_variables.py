"""Event variables on hand-built events, against values computed by hand."""

import numpy as np
import pytest

from smartbkg.data.event_variables import DESCRIPTIONS, DISCRETE, VARIABLES, event_variables
from smartbkg.data.table import EventTable
from smartbkg.simulation.beams import Beams

#: Symmetric head-on beams: the CM frame is the lab, sqrt(s) = 10.58 GeV.
SYMMETRIC = Beams(e_minus=5.29, e_plus=5.29, crossing_angle=0.0)


def _particles(rows):
    """Particle dict from rows (pdg, mother, E, px, py, pz[, initial]) [GeV]."""
    rows = [tuple(r) + (False,) * (7 - len(r)) for r in rows]
    pdg, mother, energy, px, py, pz, initial = (np.array(c) for c in zip(*rows)) if rows else [np.zeros(0)] * 7
    zeros = np.zeros(len(rows))
    return {"pdg": pdg.astype(np.int32), "mother": mother.astype(np.int32), "initial": initial.astype(bool),
            "energy": energy, "px": px, "py": py, "pz": pz,
            "prodTime": zeros, "x": zeros, "y": zeros, "z": zeros}


#: tau+ tau-: tau- (copied once) -> pi- nu_tau, tau+ -> e+ nu_e anti-nu_tau gamma.
TAU_PAIR = [
    (15, -1, 5.3, 0, 0, 5), (-15, -1, 5.3, 0, 0, -5), (15, 0, 5.3, 0, 0, 5),
    (-211, 2, 3, 0, 0, 3), (16, 2, 2, 0, 0, 2),
    (-11, 1, 4, 0, 0, -4), (12, 1, 0.5, 0, 0, -0.5), (-16, 1, 0.5, 0, 0, -0.5), (22, 1, 1, 0.6, 0, 0.8),
]
#: Upsilon(4S) -> B0 anti-B0, the anti-B0 oscillates to a B0; D- -> K+ pi- pi-, D0 -> K- pi+,
#: pi0 -> gamma gamma, a K_L0; plus the two beams (initial) and a quark without daughters.
B_PAIR = [
    (300553, -1, 10.58, 0, 0, 0), (511, 0, 5.29, 0, 0, 0), (-511, 0, 5.29, 0, 0, 0), (511, 2, 5.29, 0, 0, 0),
    (-411, 1, 2, 0, 0, 0), (321, 4, 1.5, 1, 0, 0), (-211, 4, 1.2, -1, 0, 0), (-211, 4, 2.1, 0, 2, 0),
    (421, 3, 2, 0, 0, 0), (-321, 8, 2.3, 0, -2, 0), (211, 8, 1.1, 0, 0, 1),
    (111, 3, 1, 0, 0, 0), (22, 11, 0.5, 0, 0, -0.5), (22, 11, 0.25, 0, 0, -0.25), (130, 1, 0.6, 0, 0, -0.25),
    (11, -1, 5.29, 0, 0, 5.29, True), (-11, -1, 5.29, 0, 0, -5.29, True), (2, -1, 1, 0, 0, 1),
]


def _table(events, types):
    return EventTable.from_events([_particles(e) for e in events], labels=np.zeros((len(events), 1)),
                                  skims=("s",), event_type=types)


def test_names_and_descriptions():
    assert len(VARIABLES) >= 12 and set(DISCRETE) <= set(VARIABLES)
    assert all(DESCRIPTIONS[name] for name in VARIABLES)


def test_hand_computed_values():
    table = _table([TAU_PAIR, B_PAIR, []], ["taupair", "mixed", "uubar"])
    v = event_variables(table, beams=SYMMETRIC)
    assert tuple(v) == VARIABLES and all(a.shape == (3,) for a in v.values())
    e_cm = SYMMETRIC.e_cm
    expected = {
        "n_particles": [9, 18, 0],
        "n_charged": [2, 5, 0],            # pi-, e+ | K+ pi- pi- K- pi+
        "n_neutral": [1, 3, 0],            # gamma | gamma gamma K_L0
        "n_photons": [1, 2, 0],
        "n_leptons": [1, 0, 0],            # e+ (neutrinos are no charged leptons)
        "visible_energy": [8.0, 9.55, 0.0],
        "photon_energy": [1.0, 0.75, 0.0],
        # visible p: (0.6, 0, -0.2) | 0
        "missing_momentum": [np.sqrt(0.4), 0.0, 0.0],
        "missing_mass2": [(e_cm - 8) ** 2 - 0.4, (e_cm - 9.55) ** 2, e_cm**2],
        "missing_cos_theta": [0.2 / np.sqrt(0.4), 0.0, 0.0],
        # tau pair: axis along (0.6, 0, 7.8); sum |p.n| = sqrt(61.2) of sum |p| = 8.
        "leading_track_p": [4.0, 2.0, 0.0],
        "n_b_mesons": [0, 2, 0],           # the oscillated B0 is not counted again
        "n_d_mesons": [0, 2, 0],
        "n_taus": [2, 0, 0],               # the copy of the tau- is not counted again
        "event_type": [6, 1, 2],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(v[name], values, rtol=1e-6, atol=1e-6, err_msg=name)
    for name in DISCRETE:
        assert v[name].dtype == np.int64
    # Thrust of {(0,0,3), (0,0,-4), (0.6,0,0.8)}: axis (0.6, 0, 7.8)/sqrt(61.2).
    assert v["thrust"][0] == pytest.approx(np.sqrt(61.2) / 8, rel=1e-6)
    assert v["thrust_cos_theta"][0] == pytest.approx(7.8 / np.sqrt(61.2), rel=1e-6)
    # Fox-Wolfram H2 = sum_ij |p_i||p_j| P2(cos): diagonal 26, pi-e 2*12*P2(-1), pi-gamma 2*3*P2(0.8),
    # e-gamma 2*4*P2(-0.8), P2(0.8) = 0.46; H0 = 8^2.
    # B pair: momenta along x (sum 2), y (sum 4), z (sum 2): same-axis pairs give 4 + 16 + 4,
    # the other 40 of H0 = 64 are at right angles (P2 = -1/2).
    np.testing.assert_allclose(v["fox_wolfram_r2"], [(26 + 24 + 2.76 + 3.68) / 64, (24 - 20) / 64, 0.0],
                               rtol=1e-6)


def test_cm_frame_of_asymmetric_beams():
    """Two photons back to back in the CM frame of the nominal beams, boosted to the lab: the
    variables see them in the CM frame again."""
    beams = Beams()
    half = beams.e_cm / 2
    cm = np.array([[half, half * 0.6, 0, half * 0.8], [half, -half * 0.6, 0, -half * 0.8]])
    lab = cm @ beams.cm_to_lab().T
    assert abs(lab[:, 3].sum()) > 3  # boosted
    v = event_variables(_table([[(22, -1, *row) for row in lab]], ["uubar"]), beams=beams)
    assert v["visible_energy"][0] == pytest.approx(beams.e_cm, rel=1e-6)
    assert v["missing_momentum"][0] == pytest.approx(0, abs=1e-5)
    assert v["thrust"][0] == pytest.approx(1, rel=1e-6)
    assert v["thrust_cos_theta"][0] == pytest.approx(0.8, rel=1e-5)
    assert v["fox_wolfram_r2"][0] == pytest.approx(1, rel=1e-6)
    assert v["photon_energy"][0] == pytest.approx(beams.e_cm, rel=1e-6)


def test_chunked_event_shapes_match(monkeypatch):
    """The event shapes do not depend on how many events share one pair chunk."""
    from smartbkg.data import event_variables as module
    table = _table([TAU_PAIR, B_PAIR, [], TAU_PAIR, B_PAIR], [6, 1, 2, 6, 1])
    whole = event_variables(table, beams=SYMMETRIC)
    monkeypatch.setattr(module, "PAIR_CHUNK", 1)
    one_by_one = event_variables(table, beams=SYMMETRIC)
    for name in ("thrust", "thrust_cos_theta", "fox_wolfram_r2"):
        np.testing.assert_allclose(one_by_one[name], whole[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(whole["thrust"][[0, 3]], np.sqrt(61.2) / 8, rtol=1e-6)
