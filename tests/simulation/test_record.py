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
KEPT = [1, 2, 5, 6, 7, 9, 10, 14, 15, 17, 18, 19]
PDG = [11, -11, 23, 4, -4, -4, 21, 421, 211, -321, 211, -211]
MOTHER = [-1, -1, 0, 2, 2, 4, 4, 3, 3, 7, 7, 5]


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
    np.testing.assert_array_equal(new_offsets, [0, 12, 15])
    np.testing.assert_array_equal(rec["pdg"][:12], PDG)
    np.testing.assert_array_equal(rec["mother"][:12], MOTHER)
    np.testing.assert_array_equal(rec["initial"][:12], [True, True] + [False] * 10)
    # The second (truncated) event: beams and the gamma*/Z whose mother is the e- beam.
    np.testing.assert_array_equal(rec["pdg"][12:], [11, -11, 23])
    np.testing.assert_array_equal(rec["mother"][12:], [-1, -1, 0])
    # Momentum of the last copy, vertex of the first: the c quark (entries 6 -> 8 -> 11).
    c = 3
    assert rec["px"][c] == 11 and rec["e"][c] == 11 + 300
    assert rec["x"][c] == 6 + 400 and rec["t"][c] == 6 + 700
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
    assert nx.descendants(graph, 0) == set(range(2, 12))


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
