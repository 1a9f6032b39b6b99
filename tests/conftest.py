"""Shared fixtures: small hand-built event tables, a generator of random decay trees, table equality;
one torch thread for the whole suite."""

import numpy as np
import pytest
import torch

from smartbkg.data.table import EVENT_TYPES, EventTable

SKIMS = ("hadronic", "leptonic")


def pytest_configure(config):
    """One torch thread in every test process (and xdist worker): the tests run tiny models on
    small batches, where OpenMP hand-offs cost more than they bring; with the default thread count
    on a busy 2-core machine tiny-model tests ran 60x slower."""
    torch.set_num_threads(1)


def _event(pdg, mother, initial=None, seed=0):
    """One event with physical kinematics; daughters of a mother share its decay vertex and all
    roots start at the event's origin (as in a collision; HepMC3 can store nothing else).

    Positions and momenta are float32 values from a seeded generator; energy = sqrt(p^2 + m^2)
    with a fixed mass of 0.14 GeV, so every field is finite and reproducible.
    """
    rng = np.random.default_rng(seed)
    n = len(pdg)
    mother = np.asarray(mother, dtype=np.int32)
    decay_vertex = rng.normal(0.0, 0.5, size=(n, 4))  # where each particle decays: (t ns, x, y, z cm)
    decay_vertex[:, 0] = np.abs(decay_vertex[:, 0])
    origin = rng.normal(0.0, 0.05, size=4)
    vertex = np.empty((n, 4))
    for i in range(n):
        vertex[i] = decay_vertex[mother[i]] if mother[i] >= 0 else origin
    p = rng.normal(0.0, 1.5, size=(n, 3)).astype(np.float32)
    energy = np.sqrt((p.astype(np.float64) ** 2).sum(axis=1) + 0.14**2).astype(np.float32)
    return {
        "pdg": np.asarray(pdg, dtype=np.int32), "mother": mother,
        "initial": np.zeros(n, bool) if initial is None else np.asarray(initial, bool),
        "prodTime": vertex[:, 0], "x": vertex[:, 1], "y": vertex[:, 2], "z": vertex[:, 3],
        "px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "energy": energy,
    }


def make_small_table():
    """Three events: Upsilon(4S) -> B0 anti-B0 with beam particles, B+ B- -> D0, and u ubar -> pi0."""
    events = [
        _event([11, -11, 300553, 511, -511, 211, -211, 22], [-1, -1, -1, 2, 2, 3, 3, 4],
               initial=[1, 1, 0, 0, 0, 0, 0, 0], seed=1),
        _event([521, -521, 421, -321, 211], [-1, -1, 0, 2, 2], seed=2),
        _event([2, -2, 111, 22, 22], [-1, -1, 0, 2, 2], seed=3),
    ]
    return EventTable.from_events(events, labels=[[1, 0], [0, 0], [1, 1]], skims=SKIMS,
                                  event_type=["mixed", "charged", "uubar"],
                                  weight=np.array([1.0, 0.5, 2.0], np.float32), event_id=[10, 11, 12])


def make_random_table(n_events, seed=0, max_particles=30, skims=SKIMS):
    """Random decay trees (each particle's mother precedes it or the particle is a root)."""
    rng = np.random.default_rng(seed)
    pdg_pool = np.array([22, 111, 211, -211, 321, -321, 11, -11, 13, 2212, 421, -421, 511, 521, 310, 130])
    events = []
    for i in range(n_events):
        n = int(rng.integers(1, max_particles + 1))
        mother = np.array([-1] + [int(rng.integers(-1, k)) if rng.random() > 0.1 else -1 for k in range(1, n)])
        events.append(_event(rng.choice(pdg_pool, n), mother, seed=seed * 100003 + i))
    labels = rng.random((n_events, len(skims))) < 0.3
    types = rng.integers(0, len(EVENT_TYPES), n_events)
    return EventTable.from_events(events, labels=labels, skims=skims, event_type=types,
                                  event_id=np.arange(n_events) + 1000 * seed)


@pytest.fixture
def small_table():
    return make_small_table()


@pytest.fixture
def random_table():
    """Factory: ``random_table(n_events, seed=0, max_particles=30, skims=SKIMS)``."""
    return make_random_table


@pytest.fixture
def assert_tables_equal():
    """``assert_tables_equal(a, b, weight=True)``: exact equality of two event tables.

    A fixture rather than an import: test folders have conftest files of their own, so
    ``from conftest import ...`` is ambiguous.
    """
    return tables_equal


def tables_equal(a, b, *, weight=True):
    """Exact equality of two event tables (particles, labels, event types by name, ids, weights)."""
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for name in a.particles:
        np.testing.assert_array_equal(a.particles[name], b.particles[name], err_msg=name)
    assert a.skims == b.skims
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.event_type_names, b.event_type_names)
    np.testing.assert_array_equal(a.event_id, b.event_id)
    if weight:
        assert (a.weight is None) == (b.weight is None)
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
