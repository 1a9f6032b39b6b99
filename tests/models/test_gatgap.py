"""GAT + GAP: the fast layers equal PyG's, and the parameter counts match the Belle II model."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATConv
from torch_geometric.nn.aggr import AttentionalAggregation

from batches import synthetic_batch
from invariance import permute_particles
from smartbkg.models import build_model
from smartbkg.models.gatgap import GlobalAttentionPooling, TreeGATConv, graph_structure
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


@pytest.mark.parametrize("heads, units", [(1, 5), (4, 8)])
@pytest.mark.parametrize("name, graph, tree_path", graphs(), ids=[g[0] for g in graphs()])
def test_tree_gat_equals_pyg_gatconv(heads, units, name, graph, tree_path):
    torch.manual_seed(0)
    x = torch.randn(graph.num_nodes, 6, requires_grad=True)
    reference = GATConv(6, units, heads=heads, bias=False)
    fast = TreeGATConv(6, units, heads)
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


def test_isolated_node_keeps_its_own_message():
    torch.manual_seed(0)
    layer = TreeGATConv(3, 4, 2)
    x = torch.randn(1, 3)
    out = layer(x, graph_structure(torch.empty(2, 0, dtype=torch.long), 1))
    torch.testing.assert_close(out, layer.lin(x))


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


def test_self_loops_in_edge_index_change_nothing():
    torch.manual_seed(0)
    batch = synthetic_batch(3, num_particles=10, vocab_size=64, seed=5)
    model = build_model("gatgap", num_skims=2, vocab_size=64, units=8, heads=2, layers=2)
    with_loops = batch.clone()
    loops = torch.arange(batch.num_nodes).repeat(2, 1)
    with_loops.edge_index = torch.cat([batch.edge_index, loops], dim=1)
    torch.testing.assert_close(model(with_loops), model(batch))
