"""Random decay-tree events: reproducible, trees, four-momentum conserved, vertices consistent."""

import networkx as nx
import numpy as np
import torch

from smartbkg.models.synthetic import synthetic_batch


def test_same_seed_same_events():
    a, b = synthetic_batch(4, seed=9), synthetic_batch(4, seed=9)
    for key in ("x", "pdg", "edge_index", "y", "event_type"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(synthetic_batch(4, seed=10).x[:5], a.x[:5])


def test_batch_contract():
    batch = synthetic_batch(5, num_skims=3, num_event_types=7, vocab_size=40, seed=1)
    assert batch.x.shape[1] == 8 and batch.x.dtype == torch.float32
    assert batch.pdg.dtype == torch.int64 and 1 <= batch.pdg.min() and batch.pdg.max() < 40
    assert batch.y.shape == (5, 3) and batch.event_type.shape == (5,)
    assert batch.weight.shape == (5,) and batch.edge_index.dtype == torch.int64
    assert 10 < batch.num_nodes / 5 < 60


def test_every_event_is_a_forest_with_conserved_momentum():
    batch = synthetic_batch(6, num_particles=30, seed=2)
    for event in batch.to_data_list():
        src, dst = event.edge_index
        pairs = set(zip(src.tolist(), dst.tolist()))
        assert pairs == {(d, s) for s, d in pairs}  # both directions present
        graph = nx.Graph(list(pairs))
        graph.add_nodes_from(range(event.num_nodes))
        assert nx.is_forest(graph) and nx.number_connected_components(graph) == 2  # two B roots
        # daughters come after their mother: the mother of i is its smaller neighbour
        mother = {max(s, d): min(s, d) for s, d in pairs}
        x = event.x.double().numpy()
        for parent in set(mother.values()):
            daughters = [i for i, m in mother.items() if m == parent]
            np.testing.assert_allclose(x[daughters, 4:].sum(0), x[parent, 4:], atol=2e-5)
            same_vertex = x[daughters[:1], :4].repeat(len(daughters), 0)
            np.testing.assert_allclose(x[daughters, :4], same_vertex)
            assert x[daughters[0], 0] >= x[parent, 0]
        mass2 = x[:, 4] ** 2 - (x[:, 5:] ** 2).sum(1)
        assert mass2.min() > -1e-4


def test_default_tokens_come_from_the_shipped_vocabulary():
    from smartbkg.data.vocab import VOCAB_SIZE, pdg_to_token

    batch = synthetic_batch(3, seed=4)
    assert batch.pdg.max() < VOCAB_SIZE
    first, second = batch.pdg[batch.ptr[:-1]], batch.pdg[batch.ptr[:-1] + 1]  # the two B roots
    assert (first == int(pdg_to_token(511))).all() and (second == int(pdg_to_token(-511))).all()
