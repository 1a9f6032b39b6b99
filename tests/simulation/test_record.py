import numpy as np
import pytest

from smartbkg.simulation.beams import SPEED_OF_LIGHT, Beams
from smartbkg.simulation.record import (PYTHIA_FIELDS, align_pair_axis, collapse_record, is_pseudo_particle,
                                        to_belle2_lab)
from smartbkg.simulation.rng import CounterRNG

# A Pythia-like e+e- -> c cbar record: entry, id, status, mother1, mother2, daughter1, daughter2.
CCBAR = [
    (0, 90, -11, 0, 0, 0, 0),     # system line
    (1, 11, -12, 0, 0, 3, 0),     # beams
    (2, -11, -12, 0, 0, 4, 0),
    (3, 11, -21, 1, 0, 5, 0),     # carbon copies of the beams
    (4, -11, -21, 2, 0, 5, 0),
    (5, 23, -22, 3, 4, 6, 7),     # gamma*/Z
    (6, 4, -23, 5, 0, 8, 8),      # c
    (7, -4, -23, 5, 0, 9, 10),    # cbar, radiates a gluon
    (8, 4, -52, 6, 6, 11, 11),    # recoil copy of the c
    (9, -4, -51, 7, 0, 12, 12),   # cbar after the emission (a new particle)
    (10, 21, -51, 7, 0, 13, 13),  # gluon
    (11, 4, -71, 8, 8, 14, 15),   # copies entering hadronization
    (12, -4, -71, 9, 9, 16, 16),
    (13, 21, -71, 10, 10, 14, 15),
    (14, 421, -83, 11, 13, 17, 18),  # D0 from the string
    (15, 211, 83, 11, 13, 0, 0),
    (16, 91, -85, 12, 12, 19, 19),   # a cluster (pseudo-particle)
    (17, -321, 91, 14, 0, 0, 0),
    (18, 211, 91, 14, 0, 0, 0),
    (19, -211, 84, 16, 0, 0, 0),
]
KEPT = [1, 2, 5, 6, 7, 10, 14, 15, 17, 18, 19]
PDG = [11, -11, 23, 4, -4, 21, 421, 211, -321, 211, -211]
# The gluon hangs under the gamma*/Z beside the quarks; the cbar after the emission is the cbar.
MOTHER = [-1, -1, 0, 2, 2, 2, 3, 3, 6, 6, 4]


def pythia_batch(records):
    """Flat Pythia columns of several events; kinematics encode the entry number."""
    rows = [r for rec in records for r in rec]
    cols = {name: np.array([r[i] for r in rows]) for i, name in
            enumerate(("entry", "id", "status", "mother1", "mother2", "daughter1", "daughter2"))}
    entry = cols.pop("entry").astype(float)
    for k, name in enumerate(("px", "py", "pz", "e", "x", "y", "z", "t")):
        cols[name] = entry + 100.0 * k
    offsets = np.cumsum([0] + [len(rec) for rec in records])
    return offsets, cols


def test_collapse_keeps_each_particle_once_with_one_mother():
    offsets, cols = pythia_batch([CCBAR, CCBAR[:6]])
    assert set(PYTHIA_FIELDS) <= set(cols)
    new_offsets, rec = collapse_record(offsets, cols)
    np.testing.assert_array_equal(new_offsets, [0, 11, 14])
    np.testing.assert_array_equal(rec["pdg"][:11], PDG)
    np.testing.assert_array_equal(rec["mother"][:11], MOTHER)
    np.testing.assert_array_equal(rec["initial"][:11], [True, True] + [False] * 9)
    # The second (truncated) event: beams and the gamma*/Z whose mother is the e- beam.
    np.testing.assert_array_equal(rec["pdg"][11:], [11, -11, 23])
    np.testing.assert_array_equal(rec["mother"][11:], [-1, -1, 0])
    # Momentum of the last copy before hadronization, vertex of the first: the c quark
    # (entries 6 -> 8 -> 11, 11 the copy for hadronization), the cbar (7 -> 9 -> 12).
    c, cbar = 3, 4
    assert rec["px"][c] == 8 and rec["e"][c] == 8 + 300
    assert rec["x"][c] == 6 + 400 and rec["t"][c] == 6 + 700
    assert rec["pz"][cbar] == 9 + 200 and rec["z"][cbar] == 7 + 600
    # Beams keep their own values (their copies 3, 4 carry the same numbers in Pythia).
    assert rec["pz"][0] == 3 + 200 and rec["z"][0] == 1 + 600


def test_collapse_result_is_a_forest():
    nx = pytest.importorskip("networkx")
    offsets, cols = pythia_batch([CCBAR])
    _, rec = collapse_record(offsets, cols)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(rec["pdg"])))
    graph.add_edges_from((int(m), i) for i, m in enumerate(rec["mother"]) if m >= 0)
    assert nx.is_forest(graph)
    assert sorted(n for n, d in graph.in_degree() if d == 0) == [0, 1]
    assert nx.descendants(graph, 0) == set(range(2, 11))


def test_pseudo_particles():
    np.testing.assert_array_equal(is_pseudo_particle(np.array([90, 91, 92, -93, 2101, -3303, 2212, 3122, 21, 113])),
                                  [True, True, True, True, True, True, False, False, False, False])


def single_event_record(pdg, p4, vertex_mm):
    n = len(pdg)
    rec = {"pdg": np.array(pdg), "mother": np.full(n, -1, np.int32), "initial": np.zeros(n, bool)}
    for k, name in enumerate(("e", "px", "py", "pz")):
        rec[name] = np.array([v[k] for v in p4], float)
    for k, name in enumerate(("t", "x", "y", "z")):
        rec[name] = np.array([v[k] for v in vertex_mm], float)
    return rec


def test_lab_frame_units_and_names():
    beams = Beams(7.0, 4.0, crossing_angle=0.0, spot_x=0, spot_y=0, spot_z=0)
    bg = beams.beta_gamma
    gamma = np.sqrt(1 + bg**2)
    # A particle at rest in the CM frame, produced 1 ns after the collision at the origin
    # (t = c * 1 ns = 299.792458 mm in Pythia's mm/c units), and a gamma* at rest.
    rec = single_event_record([130, 23], [(0.5, 0, 0, 0), (10.0, 0, 0, 0)],
                              [(10 * SPEED_OF_LIGHT, 0, 0, 0), (0, 0, 0, 0)])
    out = to_belle2_lab(np.array([0, 2]), rec, beams, np.array([0]), CounterRNG(0))
    assert out["pdg"].tolist() == [130, 10022]
    assert out["prodTime"][0] == pytest.approx(gamma, rel=1e-6)                   # ns
    assert out["z"][0] == pytest.approx(bg * SPEED_OF_LIGHT, rel=1e-6)            # cm
    assert out["pz"][0] == pytest.approx(0.5 * bg, rel=1e-6)
    assert out["energy"][1] == pytest.approx(10.0 * gamma, rel=1e-6)


def test_beam_spot_shifts_whole_events():
    beams = Beams()
    n = 4000
    rec = single_event_record([211] * 2 * n, [(1.0, 0, 0, 0.99)] * 2 * n, [(0, 0, 0, 0)] * 2 * n)
    offsets = np.arange(0, 2 * n + 1, 2)
    out = to_belle2_lab(offsets, rec, beams, np.arange(n), CounterRNG(3))
    for axis, sigma in zip("xyz", beams.spot_size):
        v = out[axis].astype(float)
        np.testing.assert_array_equal(v[0::2], v[1::2])
        assert np.std(v[0::2]) == pytest.approx(sigma, rel=0.05)


def test_pair_axis_follows_sin2():
    n = 20000
    rng = np.random.default_rng(1)
    cos_t = rng.uniform(-1, 1, n)                                  # isotropic B directions
    phi = rng.uniform(0, 2 * np.pi, n)
    p = 0.33
    u = np.stack([np.sqrt(1 - cos_t**2) * np.cos(phi), np.sqrt(1 - cos_t**2) * np.sin(phi), cos_t], 1)
    per_event = []
    for k in range(n):
        per_event.append([(300553, -1, (10.58, 0, 0, 0), (0, 0, 0, 0)),
                          (521, 0, (5.29, *(p * u[k])), (0, 0, 0, 0)),
                          (-521, 0, (5.29, *(-p * u[k])), (0, 0, 0, 0)),
                          (421, 1, (2.0, *(0.5 * u[k])), (0.0, *(0.3 * u[k])))])
    flat = [x for ev in per_event for x in ev]
    rec = single_event_record([x[0] for x in flat], [x[2] for x in flat], [x[3] for x in flat])
    rec["mother"] = np.array([x[1] for x in flat], np.int32)
    offsets = np.arange(0, 4 * n + 1, 4)
    align_pair_axis(offsets, rec, np.arange(n), CounterRNG(5))
    b = np.stack([rec["px"][1::4], rec["py"][1::4], rec["pz"][1::4]], 1)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), p, rtol=1e-12)
    c = b[:, 2] / p
    assert np.mean(c**2) == pytest.approx(0.2, abs=0.005)            # (3/4)(1 - c^2): <c^2> = 1/5
    np.testing.assert_allclose(rec["px"][2::4], -rec["px"][1::4])      # still back to back
    d = np.stack([rec["x"][3::4], rec["y"][3::4], rec["z"][3::4]], 1)  # the D vertex turned with its B
    np.testing.assert_allclose(d, 0.3 / p * b, atol=1e-12)
    assert rec["px"][0] == 0 and rec["e"][0] == 10.58


def physical_batch(records):
    """Flat Pythia columns of events given as rows (entry, id, status, mother1, mother2,
    daughter1, daughter2, (E, px, py, pz), (t, x, y, z))."""
    rows = [r for rec in records for r in rec]
    cols = {name: np.array([r[i] for r in rows]) for i, name in
            enumerate(("entry", "id", "status", "mother1", "mother2", "daughter1", "daughter2"))}
    del cols["entry"]
    for k, name in enumerate(("e", "px", "py", "pz")):
        cols[name] = np.array([float(r[7][k]) for r in rows])
    for k, name in enumerate(("t", "x", "y", "z")):
        cols[name] = np.array([float(r[8][k]) for r in rows])
    return np.cumsum([0] + [len(rec) for rec in records]), cols


O = (0, 0, 0, 0)
BEAMS = [
    (0, 90, -11, 0, 0, 0, 0, (10, 0, 0, 0), O),
    (1, 11, -12, 0, 0, 3, 0, (5, 0, 0, 5), O),
    (2, -11, -12, 0, 0, 4, 0, (5, 0, 0, -5), O),
    (3, 11, -21, 1, 0, 5, 0, (5, 0, 0, 5), O),
    (4, -11, -21, 2, 0, 5, 0, (5, 0, 0, -5), O),
]
# e+e- -> d dbar; the d radiates a gluon that splits into s sbar (the dbar recoils twice), the s
# radiates a photon; a mini-string recoil shuffles the sbar's momentum before hadronization.
SHOWER = BEAMS + [
    (5, 23, -22, 3, 4, 6, 7, (10, 0, 0, 0), O),
    (6, 1, -23, 5, 0, 8, 9, (5, 0, 0, 5), O),
    (7, -1, -23, 5, 0, 10, 10, (5, 0, 0, -5), O),
    (8, 1, -51, 6, 0, 16, 16, (3, 0, 1, 2), O),              # d after the emission
    (9, 21, -51, 6, 0, 11, 12, (2.5, 0, -1, 1.5), O),        # gluon
    (10, -1, -52, 7, 7, 13, 13, (4.5, 0, 0, -3.5), O),       # dbar, recoil
    (11, 3, -51, 9, 0, 14, 15, (1, 0, -0.25, 0.5), O),       # g -> s sbar
    (12, -3, -51, 9, 0, 18, 18, (1.5, 0, -0.75, 1.1), O),
    (13, -1, -52, 10, 10, 19, 19, (4.5, 0, 0, -3.6), O),     # dbar, recoil
    (14, 3, -51, 11, 0, 17, 17, (0.75, 0, -0.25, 0.25), O),  # s after the photon
    (15, 22, 51, 11, 0, 0, 0, (0.25, 0, 0, 0.25), O),        # QED shower photon
    (16, 1, -71, 8, 8, 20, 21, (3, 0, 1, 2), O),
    (17, 3, -71, 14, 14, 20, 21, (0.75, 0, -0.25, 0.25), O),
    (18, -3, -72, 12, 12, 20, 21, (1.4, 0, -0.8, 1.0), O),   # shuffled by a mini-string
    (19, -1, -71, 13, 13, 20, 21, (4.6, 0, 0.05, -3.5), O),
    (20, 311, 83, 16, 19, 0, 0, (4.5, 0, 0.5, -1.5), O),
    (21, -311, 83, 16, 19, 0, 0, (5.5, 0, -0.5, 1.5), O),
]
# e+e- -> tau+ tau-; the tau+ radiates a photon (the tau- recoils), both taus decay.
TAU_FSR = BEAMS + [
    (5, 23, -22, 3, 4, 6, 7, (10, 0, 0, 0), O),
    (6, 15, -23, 5, 0, 10, 10, (5, 0, 0, 4.5), (0.1, 0, 0, 0)),
    (7, -15, -23, 5, 0, 8, 9, (5, 0, 0, -4.5), (0.1, 0, 0, 0)),
    (8, -15, -51, 7, 0, 11, 12, (4.5, 0, -0.6, -3.4), (0.1, 0, 0, 0)),
    (9, 22, 51, 7, 0, 0, 0, (1, 0, 0.6, -0.8), (0.1, 0, 0, 0)),
    (10, 15, -52, 6, 6, 13, 14, (4.5, 0, 0, 4.2), (0.1, 0, 0, 0)),
    (11, -16, 91, 8, 0, 0, 0, (2, 0, -0.5, -1.5), (0.3, 0, -0.1, -0.2)),
    (12, 211, 91, 8, 0, 0, 0, (2.5, 0, -0.1, -1.9), (0.3, 0, -0.1, -0.2)),
    (13, 16, 91, 10, 0, 0, 0, (1.25, 0, 0.25, 1), (0.4, 0, 0, 0.3)),
    (14, -211, 91, 10, 0, 0, 0, (3.25, 0, -0.25, 3.2), (0.4, 0, 0, 0.3)),
]
# Nearby partons merged into one before hadronization (status 73): the u absorbs the gluon.
MERGED = BEAMS + [
    (5, 23, -22, 3, 4, 6, 7, (10, 0, 0, 0), O),
    (6, 2, -23, 5, 0, 8, 9, (5, 0, 0, 5), O),
    (7, -2, -23, 5, 0, 10, 10, (5, 0, 0, -5), O),
    (8, 2, -51, 6, 0, 11, 11, (4, 0, 0.5, 3.5), O),
    (9, 21, -51, 6, 0, 11, 11, (1, 0, -0.5, 1.5), O),
    (10, -2, -52, 7, 7, 12, 12, (5, 0, 0, -5), O),
    (11, 2, -73, 8, 9, 13, 13, (5, 0, 0, 5), O),
    (12, -2, -71, 10, 10, 13, 13, (5, 0, 0, -5), O),
    (13, 111, 83, 11, 12, 0, 0, (10, 0, 0, 0), O),
]


def collapsed(*records):
    """Collapse events given as physical rows.

    Returns:
        (offsets, record, four-momenta (n, 4) (E, px, py, pz), the sum of each particle's
        daughters' four-momenta (n, 4), its number of daughters (n,)).
    """
    offsets, rec = collapse_record(*physical_batch(records))
    p4 = np.stack([rec[k] for k in ("e", "px", "py", "pz")], 1)
    start = np.repeat(offsets[:-1], np.diff(offsets))
    mother = np.where(rec["mother"] >= 0, rec["mother"] + start, -1)
    has = mother >= 0
    sums = np.zeros_like(p4)
    np.add.at(sums, mother[has], p4[has])
    return offsets, rec, p4, sums, np.bincount(mother[has], minlength=len(p4))


def test_shower_emissions_are_siblings_of_their_radiator():
    _, rec, p4, sums, n_daughters = collapsed(SHOWER)
    # The gluon that split into s sbar is gone; the s, the sbar and the s's photon hang under the
    # gamma*/Z beside the d and the dbar; the K0 and anti-K0 under the first parton of the string.
    np.testing.assert_array_equal(rec["pdg"], [11, -11, 23, 1, -1, 3, -3, 22, 311, -311])
    np.testing.assert_array_equal(rec["mother"], [-1, -1, 0, 2, 2, 2, 2, 2, 3, 3])
    # Four-momenta at the end of the shower: d after its emission, dbar after both recoils, the s
    # after its photon, the sbar before the mini-string's shuffle.
    np.testing.assert_array_equal(p4[3:8], [[3, 0, 1, 2], [4.5, 0, 0, -3.6], [0.75, 0, -0.25, 0.25],
                                            [1.5, 0, -0.75, 1.1], [0.25, 0, 0, 0.25]])
    np.testing.assert_allclose(sums[2], [10, 0, 0, 0], atol=1e-12)       # the gamma*/Z conserves
    assert n_daughters[2] == 5


def test_tau_decays_with_its_momentum_after_radiating():
    _, rec, p4, sums, n_daughters = collapsed(TAU_FSR)
    np.testing.assert_array_equal(rec["pdg"], [11, -11, 23, 15, -15, 22, -16, 211, 16, -211])
    np.testing.assert_array_equal(rec["mother"], [-1, -1, 0, 2, 2, 2, 4, 4, 3, 3])
    for k in (2, 3, 4):                   # gamma*/Z -> tau- tau+ gamma, and both tau decays
        np.testing.assert_allclose(sums[k], p4[k], atol=1e-12)
    np.testing.assert_array_equal(p4[4], [4.5, 0, -0.6, -3.4])
    # Each tau keeps the production vertex of its first copy.
    np.testing.assert_array_equal(rec["t"][3:5], [0.1, 0.1])


def test_partons_merged_for_hadronization_keep_their_shower_momentum():
    _, rec, p4, sums, n_daughters = collapsed(MERGED)
    np.testing.assert_array_equal(rec["pdg"], [11, -11, 23, 2, -2, 21, 111])
    np.testing.assert_array_equal(rec["mother"], [-1, -1, 0, 2, 2, 2, 3])
    np.testing.assert_array_equal(p4[3], [4, 0, 0.5, 3.5])
    np.testing.assert_allclose(sums[2], p4[2], atol=1e-12)


# Upsilon(4S) -> B0 anti-B0. The B0 oscillates and decays as an anti-B0 (products status 92,
# one of them a diquark whose string gives a proton); the anti-B0 decays without oscillating.
MIXING = BEAMS + [
    (5, 300553, -23, 3, 4, 6, 7, (10, 0, 0, 0), O),
    (6, 511, -91, 5, 0, 8, 10, (5, 0.5, 0, 0.25), O),
    (7, -511, -91, 5, 0, 12, 13, (5, -0.5, 0, -0.25), O),
    (8, 411, 92, 6, 0, 0, 0, (2, 0.5, 0.5, 0), (2, 0.2, 0, 0.1)),
    (9, -211, 92, 6, 0, 0, 0, (1, 0, -0.5, 0.25), (2, 0.2, 0, 0.1)),
    (10, 2101, -92, 6, 0, 11, 11, (2, 0, 0, 0), (2, 0.2, 0, 0.1)),
    (11, 2212, 83, 10, 10, 0, 0, (2, 0, 0, 0), (2, 0.2, 0, 0.1)),
    (12, 411, 91, 7, 0, 0, 0, (3, -0.5, 0.25, 0), (1, -0.1, 0, -0.05)),
    (13, -211, 91, 7, 0, 0, 0, (2, 0, -0.25, -0.25), (1, -0.1, 0, -0.05)),
]


def test_oscillated_b_gets_an_anti_b_daughter():
    new_offsets, rec, p4, sums, n_daughters = collapsed(MIXING, TAU_FSR, MIXING[:9])
    np.testing.assert_array_equal(np.diff(new_offsets), [11, 10, 7])
    first = slice(0, 11)
    np.testing.assert_array_equal(rec["pdg"][first], [11, -11, 300553, 511, -511, -511, 411, -211, 2212, 411, -211])
    np.testing.assert_array_equal(rec["mother"][first], [-1, -1, 0, 2, 3, 2, 4, 4, 4, 5, 5])
    np.testing.assert_array_equal(p4[4], p4[3])                              # same four-momentum
    assert n_daughters[3] == 1
    for k in (2, 3, 4, 5):
        np.testing.assert_allclose(sums[k], p4[k], atol=1e-12)
    # The anti-B0 starts where the B0 decays, where its own products start.
    np.testing.assert_array_equal([rec[k][4] for k in "txyz"], [2, 0.2, 0, 0.1])
    np.testing.assert_array_equal([rec[k][3] for k in "txyz"], [0, 0, 0, 0])
    # The other events are untouched by the insertion: offsets and local mother indices.
    np.testing.assert_array_equal(rec["mother"][11:21], [-1, -1, 0, 2, 2, 2, 4, 4, 3, 3])
    np.testing.assert_array_equal(rec["pdg"][21:], [11, -11, 300553, 511, -511, -511, 411])
    np.testing.assert_array_equal(rec["mother"][21:], [-1, -1, 0, 2, 3, 2, 4])
