"""Event variables for DisCo from the generator record, against hand computations."""

import math

import pytest
import torch
from torch_geometric.data import Batch

from smartbkg.data.graphs import event_data
from smartbkg.data.vocab import pdg_to_token
from smartbkg.errors import ConfigError, DataError
from smartbkg.train.variables import EVENT_VARIABLES, event_variable, final_state

BIG = [100.0, 0.0, 0.0, 0.0]  # four-momentum of particles that decay: must never be summed


def _event(pdg, mother, p4, event_id, self_loops):
    x = torch.zeros(len(pdg), 8)
    x[:, 4:8] = torch.tensor(p4)
    return event_data(x, pdg_to_token(pdg), mother, [0.0], 2, weight=0.5, event_id=event_id, self_loops=self_loops)


def _batch(self_loops=False):
    # Upsilon(4S) -> B+ B-; B+ -> mu+ nu_mu anti-D0; B- -> pi- gamma. Final state: particles 3-7.
    a = _event([300553, 521, -521, -13, 14, -421, -211, 22], [-1, 0, 0, 1, 1, 1, 2, 2],
               [BIG, BIG, BIG, [2, 1, 0, 1], [1.5, 0, 1, 1], [3, 0, 0, 2], [1, 0.5, 0, 0], [0.5, 0, 0, 0.5]],
               event_id=7, self_loops=self_loops)
    # two roots: a photon (final) and a K_S0 with one daughter pi0 -> gamma gamma. Final: 0, 3, 4.
    b = _event([22, 310, 111, 22, 22], [-1, -1, 1, 2, 2],
               [[1, 0, 0, 1], BIG, BIG, [2, 0, 2, 0], [3, 3, 0, 0]], event_id=9, self_loops=self_loops)
    return Batch.from_data_list([a, b])


@pytest.mark.parametrize("self_loops", [False, True])
def test_variables_by_hand(self_loops):
    batch = _batch(self_loops)
    assert final_state(batch.mother_index).tolist() == [
        False, False, False, True, True, True, True, True,  # event a
        True, False, False, True, True]  # event b: the root K_S0 has one daughter, it is not final
    expected = {
        "n_particles": [8, 5],
        "n_final_state": [5, 3],
        "total_energy": [2 + 1.5 + 3 + 1 + 0.5, 6],
        "visible_energy": [2 + 3 + 1 + 0.5, 6],  # without the nu_mu
        # a: (E, px, py, pz) = (6.5, 1.5, 0, 3.5); b: (6, 3, 2, 1)
        "visible_mass": [math.sqrt(6.5**2 - 1.5**2 - 3.5**2), math.sqrt(36 - 9 - 4 - 1)],
        "event_type": [2, 2],
        "weight": [0.5, 0.5],
        "event_id": [7, 9],
    }
    assert set(expected) == set(EVENT_VARIABLES)
    for name, values in expected.items():
        got = event_variable(batch, name)
        assert got.dtype == torch.float32 and got.shape == (2,)
        torch.testing.assert_close(got, torch.tensor(values, dtype=torch.float32), rtol=1e-6, atol=0), name


def test_unknown_variables_and_layouts_are_refused():
    batch = _batch()
    with pytest.raises(ConfigError, match="'mass' is not an event variable; choose one of n_particles"):
        event_variable(batch, "mass")
    del batch.mother_index  # a batch not built by smartbkg.data.graphs
    with pytest.raises(DataError, match="no mother_index .* mothers cannot be told from daughters"):
        event_variable(batch, "visible_mass")


def test_final_state_of_mothers_stored_after_their_daughters():
    # pi0 (node 2) -> gamma gamma stored daughters first (nodes 0, 1), then a root photon (3)
    event = _event([22, 22, 111, 22], [2, 2, -1, -1], [[1, 0, 0, 1], [1, 0, 0, -1], BIG, [2, 2, 0, 0]],
                   event_id=1, self_loops=False)
    batch = Batch.from_data_list([event, event])
    assert final_state(batch.mother_index).tolist() == [True, True, False, True] * 2
    # the final state sums to (E, px, py, pz) = (4, 2, 0, 0); the pi0 (BIG) is not in it
    torch.testing.assert_close(event_variable(batch, "visible_mass"), torch.full((2,), math.sqrt(12.0)))
