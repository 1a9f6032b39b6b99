import networkx as nx
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from smartbkg.data.graphs import GraphStore, event_data, host_offsets, mother_distance, node_features, tree_edges
from smartbkg.data.table import EventTable
from smartbkg.data.vocab import pdg_to_token
from smartbkg.errors import DataError


def edge_list(edge_index):
    return [tuple(e) for e in edge_index.t().tolist()]


def test_tree_edges_by_hand():
    # 0 root; 1, 2 daughters of 0; 3 daughter of 2; 4 another root
    mother = [-1, 0, 0, 2, -1]
    distance = mother_distance(mother)
    assert distance.tolist() == [0, 1, 2, 1, 0]
    assert edge_list(tree_edges(distance)) == [(0, 1), (1, 0), (0, 2), (2, 0), (2, 3), (3, 2)]
    assert edge_list(tree_edges(distance, self_loops=True)) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 2), (2, 3), (3, 2), (3, 3), (4, 4)]
    assert tree_edges(mother_distance([-1])).shape == (2, 0)


def test_event_data_contract():
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    data = event_data(x, [5, 6, 7], [-1, 0, 0], y=[1, 0], event_type=3, weight=0.5, event_id=42)
    assert data.x.dtype == torch.float32 and data.x.shape == (3, 8)
    assert data.pdg.dtype == torch.int64 and data.pdg.tolist() == [5, 6, 7]
    assert data.edge_index.dtype == torch.int64 and edge_list(data.edge_index) == [(0, 1), (1, 0), (0, 2), (2, 0)]
    assert data.mother_index.dtype == torch.int64 and data.mother_index.tolist() == [0, 0, 0]
    assert data.y.tolist() == [[1.0, 0.0]] and data.y.dtype == torch.float32
    assert data.event_type.tolist() == [3] and data.weight.tolist() == [0.5] and data.event_id.tolist() == [42]


@pytest.mark.parametrize("self_loops", [False, True])
def test_edges_match_networkx_trees(random_table, self_loops):
    table = random_table(40, seed=7)
    store = GraphStore(table, self_loops=self_loops)
    for i in range(len(table)):
        ev = table.event(i)
        tree = nx.DiGraph()
        tree.add_nodes_from(range(len(ev["pdg"])))
        tree.add_edges_from((int(m), d) for d, m in enumerate(ev["mother"]) if m >= 0)
        expected = set(tree.edges) | set(tree.reverse().edges)
        if self_loops:
            expected |= {(n, n) for n in tree.nodes}
        data = store.data(i)
        roots = ev["mother"] < 0
        assert data.mother_index.tolist() == np.where(roots, np.arange(len(roots)), ev["mother"]).tolist()
        edges = edge_list(data.edge_index)
        assert len(edges) == len(set(edges)) == len(expected)
        assert set(edges) == expected
        # a forest: one weakly connected component per root
        assert nx.number_weakly_connected_components(tree) == int((ev["mother"] < 0).sum())
        assert nx.is_forest(tree.to_undirected())


def test_node_features_order_and_tokens(small_table):
    x = node_features(small_table)
    p = small_table.particles
    np.testing.assert_array_equal(x, np.stack([p[f] for f in
                                               ("prodTime", "x", "y", "z", "energy", "px", "py", "pz")], axis=1))
    store = GraphStore(small_table)
    np.testing.assert_array_equal(store.pdg.numpy(), pdg_to_token(p["pdg"]))
    np.testing.assert_array_equal(store.x.numpy(), x)
    np.testing.assert_array_equal(store.weight.numpy(), small_table.weight)
    np.testing.assert_array_equal(store.event_id.numpy(), [10, 11, 12])


def assert_batches_equal(fast, reference):
    assert isinstance(fast, Batch)
    assert set(fast.keys()) == set(reference.keys())
    for key in reference.keys():
        assert fast[key].dtype == reference[key].dtype, key
        assert torch.equal(fast[key], reference[key]), key
    assert fast.num_graphs == reference.num_graphs
    for key in reference._slice_dict:
        assert torch.equal(fast._slice_dict[key], reference._slice_dict[key]), key
        assert torch.equal(torch.as_tensor(fast._inc_dict[key]), torch.as_tensor(reference._inc_dict[key])), key


@pytest.mark.parametrize("self_loops", [False, True])
def test_fast_batch_equals_from_data_list(random_table, self_loops):
    store = GraphStore(random_table(60, seed=3), self_loops=self_loops)
    rng = np.random.default_rng(0)
    for events in (rng.permutation(60)[:17], np.arange(60), [5], [3, 3, 8], torch.tensor([4, 0])):
        fast = store.batch(events)
        reference = Batch.from_data_list([store.data(int(i)) for i in events])
        assert_batches_equal(fast, reference)
        for a, b in zip(fast.to_data_list(), reference.to_data_list()):
            for key in b.keys():
                assert torch.equal(a[key], b[key])


@pytest.mark.parametrize("per_gather", [1, 3, 8])
def test_batches_gathered_together_equal_single_batches(random_table, per_gather):
    store = GraphStore(random_table(50, seed=6), self_loops=per_gather == 3)
    rng = np.random.default_rng(2)
    groups = [rng.permutation(50)[:k] for k in (5, 1, 9, 0, 12, 7, 3)]
    for group, fast in zip(groups, store.batches(iter(groups), per_gather=per_gather), strict=True):
        assert fast.num_graphs == len(group)
        if len(group):
            assert_batches_equal(fast, Batch.from_data_list([store.data(int(i)) for i in group]))
        else:
            assert fast.x.shape == (0, 8) and fast.edge_index.shape == (2, 0) and fast.ptr.tolist() == [0]


def test_batch_contract_shapes(small_table):
    batch = GraphStore(small_table).batch([2, 0])
    assert batch.num_graphs == 2
    assert batch.y.shape == (2, 2) and batch.y.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert batch.ptr.tolist() == [0, 5, 13]
    assert batch.batch.tolist() == [0] * 5 + [1] * 8
    assert batch.event_type.dtype == torch.int64 and batch.weight.tolist() == [2.0, 1.0]
    # event 0 (second graph): the four-momentum of node i is x[i, 4:8] = (E, px, py, pz)
    p = small_table.event(0)
    np.testing.assert_array_equal(batch.x[5:, 4].numpy(), p["energy"])
    np.testing.assert_array_equal(batch.x[5:, 5:].numpy(), np.stack([p["px"], p["py"], p["pz"]], 1))
    assert int(batch.edge_index.min()) >= 0 and int(batch.edge_index.max()) < 13
    # mother_index in batch numbering: each mother -> daughter edge is (mother_index[i], i)
    child = torch.nonzero(batch.mother_index != torch.arange(13)).flatten()
    assert set(edge_list(batch.edge_index)) == (set(zip(batch.mother_index[child].tolist(), child.tolist()))
                                                | set(zip(child.tolist(), batch.mother_index[child].tolist())))


def test_store_from_several_tables_equals_concatenated(random_table):
    a, b = random_table(10, seed=1), random_table(7, seed=2)
    joint = GraphStore(EventTable.concat([a, b]))
    split = GraphStore.from_tables([a, b])
    for name in ("x", "pdg", "distance", "offsets", "n_edges", "y", "event_type", "weight", "event_id"):
        assert torch.equal(getattr(joint, name), getattr(split, name)), name


@pytest.mark.parametrize("self_loops", [False, True])
def test_store_in_serving_order_equals_store_of_reordered_table(random_table, self_loops):
    a, b = random_table(10, seed=1), random_table(7, seed=2)
    order = np.random.default_rng(4).permutation(17)
    reordered = GraphStore(EventTable.concat([a, b]).take(order), self_loops=self_loops)
    built = GraphStore.from_tables([a, b], self_loops=self_loops, order=order)
    for name in ("x", "pdg", "distance", "offsets", "n_edges", "y", "event_type", "weight", "event_id"):
        assert torch.equal(getattr(reordered, name), getattr(built, name)), name


@pytest.mark.parametrize("order", [[0, 1, 1], [0, 1], [0, 1, 3], [-1, 0, 1]])
def test_store_order_must_be_a_permutation(random_table, order):
    with pytest.raises(DataError, match="order must be a permutation of the 3 events"):
        GraphStore(random_table(3, seed=0), order=order)


@pytest.mark.parametrize("views", [False, True])
def test_batches_of_event_ranges_are_slices_equal_to_gathered_batches(random_table, views):
    store = GraphStore(random_table(30, seed=5))
    groups = [np.arange(0, 8), np.arange(8, 20), np.arange(20, 30)]
    for group, fast in zip(groups, store.batches(groups, per_gather=3, views=views), strict=True):
        assert_batches_equal(fast, Batch.from_data_list([store.data(int(i)) for i in group]))
        shares = fast.x.untyped_storage().data_ptr() == store.x.untyped_storage().data_ptr()
        assert shares == views
    # without views, changing a batch in place leaves the store as it was
    before = store.x.clone()
    next(store.batches([np.arange(5)])).x.add_(1)
    assert torch.equal(store.x, before)


def test_data_items_are_copies(small_table):
    store = GraphStore(small_table)
    item = store.data(0)
    item.x += 1
    assert torch.equal(store.x[:8], torch.from_numpy(node_features(small_table))[:8])


def test_pyg_data_interoperates():
    data = event_data(np.zeros((2, 8), np.float32), [1, 2], [-1, 0], y=[1], event_type=0)
    assert isinstance(data, Data) and data.num_nodes == 2 and data.num_edges == 2


def test_host_offsets_stay_on_the_cpu_when_the_batch_moves(small_table):
    """A batch moved to another device (here ``meta``, whose values cannot be read, as a GPU's
    cannot without a synchronisation) still has its node offsets on the CPU."""
    store = GraphStore(small_table)
    for batch in (store.batch([2, 0]), Batch.from_data_list([store.data(2), store.data(0)])):
        moved = batch.to("meta")
        assert moved.ptr.device.type == "meta"
        offsets = host_offsets(moved)
        assert offsets.device.type == "cpu" and offsets.tolist() == [0, 5, 13]
    plain = Batch(x=torch.zeros(3, 8), batch=torch.tensor([0, 1, 1]), ptr=torch.tensor([0, 1, 3]))
    assert host_offsets(plain) is plain.ptr  # no slices: the batch's own ptr
