"""Synthetic events: reproducible by seed, valid trees; decay_trees conserve four-momentum at every
decay, stay on shell and put daughters where their mother decayed."""

import networkx as nx
import numpy as np
import pytest

from smartbkg.data.checks import find_bad_events
from smartbkg.data.synthetic import C_LIGHT, decay_trees, random_trees
from smartbkg.data.table import EVENT_TYPES
from smartbkg.data.vocab import pdg_to_token
from smartbkg.errors import ConfigError


@pytest.mark.parametrize("make", [lambda seed: random_trees(20, seed=seed),
                                  lambda seed: decay_trees(4, num_skims=2, seed=seed)],
                         ids=["random_trees", "decay_trees"])
def test_same_seed_same_table(make, assert_tables_equal):
    assert_tables_equal(make(9), make(9))
    a, b = make(9), make(10)
    assert not np.array_equal(a.particles["px"][:5], b.particles["px"][:5])


@pytest.mark.parametrize("table", [random_trees(30, seed=1), decay_trees(6, num_particles=30, seed=2)],
                         ids=["random_trees", "decay_trees"])
def test_mothers_come_first_and_every_event_is_valid(table):
    """A mother precedes its daughters (so every event is a forest), and the checks of every
    reader find nothing wrong."""
    for i in range(len(table)):
        mother = table.event(i)["mother"]
        assert (mother < np.arange(len(mother))).all()
    assert not any(mask.any() for mask in find_bad_events(table).values())


@pytest.mark.parametrize("table", [random_trees(100, seed=4), decay_trees(100, num_particles=30, seed=4)],
                         ids=["random_trees", "decay_trees"])
def test_every_pdg_id_is_known(table):
    """No particle gets the unknown token 0: no antiparticle of a self-conjugate particle (-22, -111 ...)."""
    pdg = table.particles["pdg"]
    assert np.count_nonzero(pdg_to_token(pdg) == 0) == 0
    assert not np.isin(pdg, [-22, -111, -310, -221, -113, -333, -443]).any()
    assert (pdg == 211).any() and (pdg == -211).any()  # particles that have antiparticles still get both signs


def test_random_trees_records():
    table = random_trees(200, mean_particles=30, seed=3)
    assert 25 < table.n_particles / len(table) < 35
    first = table.offsets[:-1]
    np.testing.assert_array_equal(table.particles["pdg"][first], 11)
    np.testing.assert_array_equal(table.particles["pdg"][first + 1], -11)
    np.testing.assert_array_equal(table.particles["pdg"][first + 2], 10022)
    assert table.particles["initial"].sum() == 2 * len(table)
    assert table.skims == ("skim_a", "skim_b") and table.event_types == EVENT_TYPES


def event_arrays(table, i):
    """Mother (n,), vertex (n, 4) (t, x, y, z) and four-momentum (n, 4) (E, px, py, pz) of event i,
    float64."""
    p = table.event(i)
    vertex = np.stack([p[f] for f in ("prodTime", "x", "y", "z")], axis=1).astype(np.float64)
    p4 = np.stack([p[f] for f in ("energy", "px", "py", "pz")], axis=1).astype(np.float64)
    return p["mother"], vertex, p4


def test_decay_trees_conserve_four_momentum_on_shell():
    table = decay_trees(6, num_particles=30, seed=2)
    assert 10 < table.n_particles / len(table) < 50
    for i in range(len(table)):
        mother, _, p4 = event_arrays(table, i)
        graph = nx.DiGraph([(m, d) for d, m in enumerate(mother) if m >= 0])
        graph.add_nodes_from(range(len(mother)))
        assert nx.is_forest(graph) and nx.number_weakly_connected_components(graph) == 2  # two B
        for parent in set(mother[mother >= 0]):
            daughters = list(graph.successors(parent))
            assert len(daughters) in (2, 3)
            np.testing.assert_allclose(p4[daughters].sum(0), p4[parent], atol=2e-5)
        mass2 = p4[:, 0] ** 2 - (p4[:, 1:] ** 2).sum(1)
        assert mass2.min() > -1e-4
        # the two roots are B0 and anti-B0 on shell, back to back in the centre-of-mass frame
        np.testing.assert_allclose(np.sqrt(mass2[:2]), 5.27966, atol=1e-4)
        np.testing.assert_allclose((p4[0] + p4[1])[1:3], 0, atol=1e-5)


def test_decay_trees_vertices_follow_the_tree():
    table = decay_trees(6, num_particles=30, seed=5)
    for i in range(len(table)):
        mother, vertex, p4 = event_arrays(table, i)
        np.testing.assert_array_equal(vertex[mother < 0], 0)  # roots at the origin, t = 0
        for parent in set(mother[mother >= 0]):
            daughters = np.flatnonzero(mother == parent)
            np.testing.assert_array_equal(vertex[daughters], vertex[daughters[:1]].repeat(len(daughters), 0))
            # the mother flew from her production point along her momentum, at her speed
            # (tolerances: float32 rounding of the two points)
            flight = vertex[daughters[0]] - vertex[parent]
            tol = 2e-7 * (np.abs(vertex[parent]) + np.abs(vertex[daughters[0]])) + 1e-12
            p3, energy = p4[parent, 1:], p4[parent, 0]
            length = np.linalg.norm(flight[1:])
            np.testing.assert_allclose(flight[1:], length * p3 / np.linalg.norm(p3), atol=3 * tol[1:].max())
            np.testing.assert_allclose(flight[0], length * energy / (C_LIGHT * np.linalg.norm(p3)),
                                       atol=tol[0] + 3 * tol[1:].max() * energy / np.linalg.norm(p3), rtol=1e-5)


def test_decay_trees_labels_and_event_types():
    table = decay_trees(40, num_particles=10, num_skims=3, num_event_types=2, seed=1)
    assert table.skims == ("skim_0", "skim_1", "skim_2") and table.labels.shape == (40, 3)
    assert 0 < table.labels.mean() < 1
    assert set(table.event_type_names) == {"charged", "mixed"}
    assert table.weight is None and not table.particles["initial"].any()
    assert set(np.abs(table.particles["pdg"][table.offsets[:-1]])) == {511}


def test_decay_trees_reject_unknown_event_type_counts():
    with pytest.raises(ConfigError, match="num_event_types"):
        decay_trees(1, num_event_types=8)
