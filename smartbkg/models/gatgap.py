r"""GAT + GAP: graph attention over the decay tree with global attention pooling (Belle II).

The architecture of the Belle II smartBKG ``GATGAPModel`` (seed 004): PDG embedding (8) joined
to the node features -> L graph-attention layers (H heads of U units, heads concatenated,
leaky ReLU) over mother<->daughter edges plus self-loops -> after every layer a global attention
pooling of the node states whose output is concatenated with the running global state and mapped
to U units (linear + leaky ReLU) -> a linear head on the global state, one logit per skim.

With ``vocab_size`` V, one skim and no event-type embedding the model has
:math:`109 U^2 + 143 U + 7 + 8 V` parameters for the default 6 layers and 4 heads; this is the
formula of the published counts (120,527 for U = 32, 1,808,495 for U = 128, which imply V = 541
PDG embedding rows); the GAT layers have no bias, as in the DGL version Belle II used.

The graph attention layer is :class:`TreeGATConv`, numerically the same function as PyG's
``GATConv(heads=H, concat=True, add_self_loops=True, bias=False)`` but several times faster on
sparse graphs such as decay trees (see its docstring).
"""

import torch
from torch import nn
from torch.nn import functional as F

from . import register_model
from .layers import NodeFeatureEncoding, default_vocab_size, reset_all


def _graph_edges(edge_index):
    """(src, dst) of ``edge_index`` (2, E) without self-loops (they are added analytically)."""
    src, dst = edge_index
    keep = src != dst
    return (src, dst) if bool(keep.all()) else (src[keep], dst[keep])


def _segment_softmax(logits, index, num_segments, extra=None):
    """Softmax of ``logits`` (E, H) over groups ``index`` (E,) into ``num_segments`` groups.

    ``extra`` (num_segments, H) adds one more member to every group (the self-loop of a GAT).
    Returns the normalised weights of ``logits`` (and of ``extra`` when given).
    """
    heads = logits.shape[1]
    expanded = index[:, None].expand(-1, heads)
    if extra is None:
        peak = logits.new_full((num_segments, heads), float("-inf"))
        peak = peak.scatter_reduce(0, expanded, logits.detach(), "amax", include_self=True)
    else:
        peak = extra.detach().scatter_reduce(0, expanded, logits.detach(), "amax",
                                             include_self=True)
    weights = torch.exp(logits - peak.index_select(0, index))
    total = weights.new_zeros(num_segments, heads) if extra is None else torch.exp(extra - peak)
    extra_weights = total
    total = total.index_add(0, index, weights)
    weights = weights / total.index_select(0, index)
    return weights if extra is None else (weights, extra_weights / total)


class TreeGATConv(nn.Module):
    r"""Graph attention layer (Velickovic et al. 2018) with self-loops, for trees and sparse graphs.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^h_{ij} \mathbf{W}^h \mathbf{x}_j, \qquad
        \alpha^h_{ij} = \operatorname{softmax}_j\big(\operatorname{LeakyReLU}(
        \mathbf{a}^{h\top}_{s} \mathbf{W}^h \mathbf{x}_j + \mathbf{a}^{h\top}_{d} \mathbf{W}^h
        \mathbf{x}_i)\big)

    The same function and parameter layout (``lin.weight``, ``att_src``, ``att_dst``) as PyG's
    ``GATConv(in_channels, out_channels, heads, concat=True, add_self_loops=True, bias=False)``.
    It is faster because (i) the attention logits come out of the same matrix product as the
    messages (the vectors :math:`\mathbf{W}^{h\top}\mathbf{a}^h` are appended to
    :math:`\mathbf{W}`), (ii) self-loops are handled analytically instead of as edges, (iii) the
    softmax works on (E, H) logits and the only (E, H*U) operations are one gather, one product
    and one ``index_add``, with no message-passing machinery in between.

    Args:
        in_channels: F, input width.
        out_channels: U, units per head.
        heads: H.
        negative_slope: slope of the leaky ReLU of the attention logits.

    Shapes: ``x`` (N, F), ``edges`` = (src, dst) each (E,) int64 without self-loops (messages flow
    src -> dst); returns (N, H*U).
    """

    def __init__(self, in_channels, out_channels, heads, negative_slope=0.2):
        super().__init__()
        self.heads, self.out_channels, self.negative_slope = heads, out_channels, negative_slope
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot initialisation, as PyG's GATConv."""
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    def forward(self, x, edges):
        heads, units = self.heads, self.out_channels
        weight = self.lin.weight.view(heads, units, -1)
        att = torch.cat([torch.einsum("huf,hu->hf", weight, self.att_src[0]),
                         torch.einsum("huf,hu->hf", weight, self.att_dst[0])])
        out = x @ torch.cat([self.lin.weight, att]).t()
        xw = out[:, : heads * units].view(-1, heads, units)
        a_src, a_dst = out[:, heads * units:].split(heads, dim=1)
        src, dst = edges
        logits = F.leaky_relu(a_src.index_select(0, src) + a_dst.index_select(0, dst),
                              self.negative_slope)
        self_logits = F.leaky_relu(a_src + a_dst, self.negative_slope)
        weights, self_weights = _segment_softmax(logits, dst, x.shape[0], extra=self_logits)
        agg = xw * self_weights[..., None]
        agg = agg.index_add(0, dst, xw.index_select(0, src) * weights[..., None])
        return agg.view(-1, heads * units)


class GlobalAttentionPooling(nn.Module):
    r"""Global attention pooling (Li et al. 2015): :math:`\mathbf{r}_b = \sum_{i \in b}
    \operatorname{softmax}_i(\mathbf{w}^\top \mathbf{x}_i + c)\, \mathbf{x}_i`.

    The same function as PyG's ``AttentionalAggregation(nn.Linear(channels, 1))``.

    Shapes: ``x`` (N, C), ``batch`` (N,) graph index, ``num_graphs`` B; returns (B, C).
    """

    def __init__(self, channels):
        super().__init__()
        self.gate = nn.Linear(channels, 1)

    def reset_parameters(self):
        self.gate.reset_parameters()

    def forward(self, x, batch, num_graphs):
        weights = _segment_softmax(self.gate(x), batch, num_graphs)
        return x.new_zeros(num_graphs, x.shape[1]).index_add_(0, batch, x * weights)


@register_model("gatgap")
class GATGAP(nn.Module):
    """Graph attention network with global attention pooling (Belle II smartBKG ``GATGAPModel``).

    Args:
        num_skims: S, number of outputs (one logit per skim).
        num_event_types: number of event-type codes (used when ``event_dim`` > 0).
        vocab_size: number of PDG tokens (default: the shipped vocabulary).
        units: U, units per head and width of the global state.
        heads: H, attention heads per layer.
        layers: number of GAT layers (each followed by pooling and a global update).
        pdg_dim: width of the PDG embedding.
        event_dim: width of an event-type embedding joined to every node's input (0 = none, as
            in the published Belle II model).
        negative_slope: slope of the leaky ReLU of the attention logits (0.2 as in GATConv).
        activation_slope: slope of the leaky ReLUs of node and global states (0.01, PyTorch's
            default, as in the Belle II model).

    Forward: a PyG ``Batch`` (contract: ``x`` (N, 8), ``pdg`` (N,), ``edge_index`` (2, E),
    ``batch`` (N,), ``event_type`` (B,)) -> (B, S) logits.
    """

    def __init__(self, *, num_skims, num_event_types=7, vocab_size=None, units=32, heads=4,
                 layers=6, pdg_dim=8, event_dim=0, negative_slope=0.2, activation_slope=0.01):
        super().__init__()
        self.activation_slope = activation_slope
        self.encode = NodeFeatureEncoding()
        self.pdg_embedding = nn.Embedding(vocab_size or default_vocab_size(), pdg_dim)
        self.event_embedding = nn.Embedding(num_event_types, event_dim) if event_dim else None
        width, state = 8 + pdg_dim + event_dim, 0
        self.convs, self.pools, self.updates = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            self.convs.append(TreeGATConv(width, units, heads, negative_slope))
            self.pools.append(GlobalAttentionPooling(heads * units))
            self.updates.append(nn.Linear(state + heads * units, units))
            width, state = heads * units, units
        self.head = nn.Linear(units, num_skims)

    def reset_parameters(self):
        reset_all(self)

    def forward(self, batch):
        parts = [self.pdg_embedding(batch.pdg), self.encode(batch.x)]
        if self.event_embedding is not None:
            parts.append(self.event_embedding(batch.event_type)[batch.batch])
        h = torch.cat(parts, dim=1)
        edges = _graph_edges(batch.edge_index)
        state = None
        for conv, pool, update in zip(self.convs, self.pools, self.updates):
            h = F.leaky_relu(conv(h, edges), self.activation_slope)
            pooled = pool(h, batch.batch, batch.num_graphs)
            state = pooled if state is None else torch.cat([state, pooled], dim=1)
            state = F.leaky_relu(update(state), self.activation_slope)
        return self.head(state)
