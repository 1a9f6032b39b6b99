"""GAT + GAP: the fast layers equal PyG's GATConv and GATv2Conv, the tree check, and the
parameter counts match the Belle II model."""

import math

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATConv, GATv2Conv
from torch_geometric.nn.aggr import AttentionalAggregation

from tests.models.batches import synthetic_batch
from tests.models.invariance import permute_particles
from smartbkg.models import build_model
from smartbkg.errors import ConfigError
from smartbkg.models.gatgap import (GlobalAttentionPooling, TreeGATConv, TreeGATv2Conv,
                                    graph_structure)
from smartbkg.models.layers import count_parameters


def forest_with_isolated_node():
    """Two decay trees and a lone particle, edges both ways, plus a stray self-loop."""
    trees = synthetic_batch(2, num_particles=15, seed=11)
    lone = Data(x=torch.randn(1, 8), edge_index=torch.tensor([[0], [0]]))
    graphs = [Data(x=d.x, edge_index=d.edge_index) for d in trees.to_data_list()] + [lone]
    return Batch.from_data_list(graphs)


def graphs():
    """(name, batch, takes the tree path) for every kind of graph the layer must handle."""
    forest = forest_with_isolated_node()
    shuffled = permute_particles(synthetic_batch(2, num_particles=15, seed=11), seed=1)
    cycle = Batch.from_data_list([Data(x=torch.randn(4, 8), edge_index=torch.tensor(
        [[0, 1, 1, 2, 2, 3, 3, 0], [1, 0, 2, 1, 3, 2, 0, 3]]))])
    one_way = Batch.from_data_list([Data(x=torch.randn(3, 8),
                                         edge_index=torch.tensor([[0, 0], [1, 2]]))])
    return [("forest", forest, True), ("shuffled_forest", shuffled, False),
            ("cycle", cycle, False), ("one_way_edges", one_way, False)]


@pytest.mark.parametrize("pyg_layer, fast_layer", [(GATConv, TreeGATConv),
                                                    (GATv2Conv, TreeGATv2Conv)],
                         ids=["gat", "gatv2"])
@pytest.mark.parametrize("heads, units", [(1, 5), (4, 8)])
@pytest.mark.parametrize("name, graph, tree_path", graphs(), ids=[g[0] for g in graphs()])
def test_tree_layers_equal_pyg(pyg_layer, fast_layer, heads, units, name, graph, tree_path):
    torch.manual_seed(0)
    x = torch.randn(graph.num_nodes, 6, requires_grad=True)
    reference = pyg_layer(6, units, heads=heads, bias=False)
    fast = fast_layer(6, units, heads)
    fast.load_state_dict(reference.state_dict())
    structure = graph_structure(graph.edge_index, graph.num_nodes)
    assert (structure.parent is not None) == tree_path
    expected = reference(x, graph.edge_index)
    actual = fast(x, structure)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    # same gradients for the inputs and every parameter
    weights = torch.randn_like(expected)
    grads_ref = torch.autograd.grad((expected * weights).sum(), [x, *reference.parameters()])
    grads_fast = torch.autograd.grad((actual * weights).sum(), [x, *fast.parameters()])
    for g_fast, g_ref in zip(grads_fast, grads_ref):
        torch.testing.assert_close(g_fast, g_ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layer", [TreeGATConv(3, 4, 2), TreeGATv2Conv(3, 4, 2)],
                         ids=["gat", "gatv2"])
def test_isolated_node_keeps_its_own_message(layer):
    x = torch.randn(1, 3)
    out = layer(x, graph_structure(torch.empty(2, 0, dtype=torch.long), 1))
    values = layer.lin(x) if isinstance(layer, TreeGATConv) else layer.lin_l(x)
    torch.testing.assert_close(out, values)


def test_graph_structure_of_a_forest():
    """Parents, and which messages exist, for two trees given mothers first, edges both ways."""
    # tree 0 -> {1, 2}, 2 -> 3; tree 4 -> 5; node 6 alone; plus a self-loop on 3
    down = torch.tensor([[0, 0, 2, 4], [1, 2, 3, 5]])
    edges = torch.cat([down, down.flip(0), torch.tensor([[3], [3]])], dim=1)
    structure = graph_structure(edges[:, torch.randperm(edges.shape[1])], 7)
    assert structure.parent.tolist() == [0, 0, 0, 2, 4, 4, 6]
    assert structure.message_mask[:, :, 0].tolist() == [[1] * 7, [0, 1, 1, 1, 0, 1, 0],
                                                        [0, 1, 1, 1, 0, 1, 0]]


@pytest.mark.parametrize("edges", [
    [[0, 0, 1, 2], [1, 2, 0, 1]],          # an up edge to the wrong parent
    [[0, 1, 1], [1, 0, 0]],                # an up edge twice
    [[0, 1, 0], [1, 0, 1]],                # a down edge twice
    [[0, 1, 1, 2, 0, 2], [2, 2, 0, 1, 1, 0]],   # node 2 has two smaller neighbours
    [[0], [1]],                            # one way only
], ids=["wrong_parent", "double_up", "double_down", "two_parents", "one_way"])
def test_graph_structure_falls_back_to_edges(edges):
    edges = torch.tensor(edges)
    structure = graph_structure(edges, 3)
    assert structure.parent is None
    assert torch.equal(torch.stack([structure.src, structure.dst]), edges)


@pytest.mark.parametrize("pyg_layer, fast_layer", [(GATConv, TreeGATConv),
                                                    (GATv2Conv, TreeGATv2Conv)],
                         ids=["gat", "gatv2"])
def test_initialisation_is_glorot_as_pyg(pyg_layer, fast_layer):
    """Every parameter is uniform in PyG's Glorot range (attention vectors: fans H and U)."""
    torch.manual_seed(0)
    heads, units, width = 4, 32, 16
    fast = dict(fast_layer(width, units, heads).named_parameters())
    for name, reference in pyg_layer(width, units, heads=heads, bias=False).named_parameters():
        fans = (heads, units) if reference.dim() == 3 else reference.shape
        bound = math.sqrt(6 / sum(fans))
        assert reference.abs().max() <= bound and fast[name].abs().max() <= bound
        assert fast[name].abs().max() > 0.9 * bound, name


def test_global_attention_pooling_equals_pyg():
    torch.manual_seed(0)
    batch = synthetic_batch(4, num_particles=10, seed=2)
    h = torch.randn(batch.num_nodes, 12)
    pool = GlobalAttentionPooling(12)
    reference = AttentionalAggregation(pool.gate)
    torch.testing.assert_close(pool(h, batch.batch, batch.num_graphs),
                               reference(h, batch.batch, dim_size=batch.num_graphs))


@pytest.mark.parametrize("units, published", [(32, 120_527), (64, 459_951), (128, 1_808_495)])
def test_parameter_count_matches_belle2(units, published):
    """Belle II GATGAPModel: 6 layers, 4 heads, PDG embedding 8 x 541 rows, one output."""
    model = build_model("gatgap", num_skims=1, vocab_size=541, units=units)
    assert count_parameters(model) == published
    assert count_parameters(model) == 109 * units**2 + 143 * units + 7 + 8 * 541


@pytest.mark.parametrize("units, expected", [(32, 203_727), (128, 3_124_335)])
def test_parameter_count_with_gatv2(units, expected):
    """GATv2 has W_l and W_r (no attention-vector pair): 189 U^2 + 183 U + 7 + 8 V."""
    model = build_model("gatgap", num_skims=1, vocab_size=541, units=units, attention="gatv2")
    assert count_parameters(model) == expected == 189 * units**2 + 183 * units + 7 + 8 * 541


def test_unknown_attention_is_a_config_error():
    with pytest.raises(ConfigError, match="gatv2"):
        build_model("gatgap", num_skims=1, attention="gatv3")


def _without_mother_index(batch):
    """The batch as a graph without the contract's ``mother_index``: the model reads ``edge_index``."""
    batch = batch.clone()
    del batch.mother_index
    return batch


def test_self_loops_in_edge_index_change_nothing():
    torch.manual_seed(0)
    batch = synthetic_batch(3, num_particles=10, vocab_size=64, seed=5)
    model = build_model("gatgap", num_skims=2, vocab_size=64, units=8, heads=2, layers=2)
    with_loops = _without_mother_index(batch)
    loops = torch.arange(batch.num_nodes).repeat(2, 1)
    with_loops.edge_index = torch.cat([batch.edge_index, loops], dim=1)
    assert graph_structure(with_loops.edge_index, with_loops.num_nodes).parent is not None
    torch.testing.assert_close(model(with_loops), model(batch))


@pytest.mark.parametrize("attention", ["gat", "gatv2"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["mothers_first", "shuffled"])
def test_mother_index_gives_the_edge_index_result(attention, shuffled):
    """The tree taken from ``mother_index`` (no check, no synchronisation) is the graph of
    ``edge_index``: same logits and gradients as the checked path, also when mothers come after
    their daughters (there the check finds no parent order and ``edge_index`` is used as it is)."""
    torch.manual_seed(0)
    batch = synthetic_batch(6, num_particles=15, vocab_size=64, seed=8)
    if shuffled:
        batch = permute_particles(batch, seed=3)
    edges_only = _without_mother_index(batch)
    tree_path = graph_structure(edges_only.edge_index, edges_only.num_nodes).parent is not None
    assert tree_path != shuffled
    structure = graph_structure(batch.edge_index, batch.num_nodes, batch.mother_index)
    assert structure.message_mask[1, :, 0].sum() == batch.edge_index.shape[1] // 2
    model = build_model("gatgap", num_skims=2, vocab_size=64, units=8, heads=2, layers=3,
                        attention=attention)
    expected, actual = model(edges_only), model(batch)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    grads = [torch.autograd.grad(out.sum(), list(model.parameters())) for out in (expected, actual)]
    for g_edges, g_mothers in zip(*grads):
        torch.testing.assert_close(g_mothers, g_edges, atol=1e-5, rtol=1e-4)


def test_forward_on_a_contract_batch_has_no_graph_break():
    """With ``mother_index`` the forward is one graph for torch.compile (no data-dependent
    branch or host-device synchronisation, which would break it); without, the check breaks it."""
    batch = synthetic_batch(4, num_particles=12, vocab_size=64, seed=1)
    model = build_model("gatgap", num_skims=2, vocab_size=64, units=8, heads=2, layers=2)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(batch), model(batch))
    with pytest.raises(torch._dynamo.exc.TorchDynamoException, match="data-dependent"):
        compiled(_without_mother_index(batch))
