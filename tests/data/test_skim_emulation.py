"""The generator-level skim emulation: what it computes, that it does not depend on how the events
are stored or grouped, and that it carries the skims' information."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from smartbkg.data.graphs import GraphStore
from smartbkg.data.preprocess import preprocess
from smartbkg.data.skim_emulation import FEATURES, final_state_table, skim_emulation
from smartbkg.simulation import generate
from smartbkg.simulation.detector import final_state_mask
from smartbkg.simulation.skims import SKIMS


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
    assert 0 < x.mean() and x.max() < 10  # scaled to order one
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
