r"""GAT + GAP: graph attention over the decay tree with global attention pooling (Belle II).

The architecture of the Belle II smartBKG ``GATGAPModel`` ("Smart Background Simulation with
Graph Attention Networks and Weighting Methods", Belle II, 2022): PDG embedding (8) joined
to the node features -> L graph-attention layers (H heads of U units, heads concatenated,
leaky ReLU) over mother<->daughter edges plus self-loops -> after every layer a global attention
pooling of the node states whose output is concatenated with the running global state and mapped
to U units (linear + leaky ReLU) -> a linear head on the global state, one logit per skim.

With ``vocab_size`` V, one skim and no event-type embedding the model has
:math:`109 U^2 + 143 U + 7 + 8 V` parameters for the default 6 layers and 4 heads; this is the
formula of the published counts (120,527 for U = 32, 1,808,495 for U = 128, which imply V = 541
PDG embedding rows); the GAT layers have no bias, as in the DGL version Belle II used.

The graph attention layer is :class:`TreeGATConv` (``attention="gat"``, the default, as Belle
II), numerically the same function as PyG's ``GATConv(heads=H, concat=True,
add_self_loops=True, bias=False)``, or :class:`TreeGATv2Conv` (``attention="gatv2"``), the same
function as PyG's ``GATv2Conv(heads=H, concat=True, add_self_loops=True, bias=False)``
(Brody et al. 2022: the leaky ReLU comes before the attention vector, so the ranking of the
neighbours can depend on the receiving node). Both are several times faster than PyG's on sparse
graphs such as decay trees (see :class:`TreeAttentionConv`). GATv2 has two weight matrices per
layer: :math:`189 U^2 + 183 U + 7 + 8 V` parameters with the defaults (203,727 for U = 32 and
V = 541).
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ..data.graphs import has_mother
from ..data.table import NUM_EVENT_TYPES
from ..errors import ConfigError
from . import register_model
from .layers import MLP, Linear, NodeFeatureEncoding, default_vocab_size, embed, event_features_of, linear, reset_all


class GraphStructure(NamedTuple):
    """The neighbourhoods of a batch, prepared once for all layers (see :func:`graph_structure`).

    For a forest in which every node has at most one neighbour of smaller index (decay trees
    stored mothers first, as generators and Belle II do): ``parent`` (N,) that neighbour (the
    node itself for roots) and ``message_mask`` (3, N, 1), 1.0 where the messages i -> i,
    parent -> i and i -> parent exist (0.0 for the last two of a root). Otherwise ``src``,
    ``dst`` (E,) the edges without self-loops, and the other two fields are None.
    """

    parent: torch.Tensor | None = None
    message_mask: torch.Tensor | None = None
    src: torch.Tensor | None = None
    dst: torch.Tensor | None = None


def graph_structure(edge_index, num_nodes, mother_index=None):
    """Prepare a graph for :class:`TreeGATConv` and :class:`TreeGATv2Conv`.

    With ``mother_index`` (N,) (the decay tree of the batch contract, each node's mother or
    the node itself for a root), the tree is taken from it and ``edge_index`` is not read: the
    fast path, with no host-device synchronisation. Otherwise ``edge_index`` (2, E) is
    checked: self-loops are dropped (the layers add them analytically); if the edges are
    exactly the two directions of a forest whose nodes each have at most one smaller-index
    neighbour, the structure is given as a parent array (the fast path); any other graph keeps
    its edge list, and messages flow src -> dst. The check is a few scatters and one
    host-device synchronisation (the choice of path).
    """
    if mother_index is not None:
        return _tree(mother_index, has_mother(mother_index)[:, None].float())
    src, dst = edge_index
    down, up = src < dst, src > dst
    spare = num_nodes                 # the slot of edges that a count or the parents ignore
    slots = torch.arange(num_nodes + 1, device=src.device)
    child = torch.where(down, dst, spare)             # down edges parent -> child
    child_up = torch.where(up, src, spare)            # up edges child -> parent
    parent = slots.scatter(0, child, torch.where(down, src, spare))[:num_nodes]
    num_down = torch.zeros_like(slots).scatter_add_(0, child, torch.ones_like(child))
    num_up = torch.zeros_like(slots).scatter_add_(0, child_up, torch.ones_like(child_up))
    # a forest stored parents first: at most one parent per node, the up edges are the down
    # edges reversed (as many per node, each to the node's parent)
    mirrored = ~up | (parent.index_select(0, torch.where(up, src, 0)) == dst)
    num_down, num_up = num_down[:num_nodes], num_up[:num_nodes]
    if bool((num_down <= 1).all() & (num_up == num_down).all() & mirrored.all()):
        return _tree(parent, num_down[:, None].float())
    keep = src != dst
    return GraphStructure(src=src[keep], dst=dst[keep])


def event_attention_mask(mother_index):
    """Additive attention mask (1, N, N) of one event for :meth:`TreeAttentionConv.forward_event`:
    0 where node i receives from node j (j = i, i's mother or a daughter of i), ``-inf``
    elsewhere; ``mother_index`` (N,) each node's mother, itself for a root."""
    node = torch.arange(mother_index.shape[0], device=mother_index.device)
    mother = mother_index[:, None] == node              # [i, j]: j is the mother of i (or i, a root)
    linked = mother | mother.T | (node[:, None] == node)
    return torch.zeros(linked.shape, device=node.device).masked_fill(~linked, float("-inf"))[None]


def _tree(parent, has_parent):
    """The :class:`GraphStructure` of a forest: ``parent`` (N,), ``has_parent`` (N, 1) 0/1."""
    message_mask = torch.stack([torch.ones_like(has_parent), has_parent, has_parent])
    return GraphStructure(parent=parent, message_mask=message_mask)


class TreeAttentionConv(nn.Module):
    r"""Base of the graph attention layers: softmax over each neighbourhood and aggregation.

    A subclass gives, for the N nodes, the message values :math:`\mathbf{v}_j` (N, H*U) and the
    attention logits :math:`e^h_{ij}` of every message j -> i (including i -> i); this class
    computes :math:`\mathbf{x}'_i = \Vert_h \sum_{j \in \mathcal{N}(i) \cup \{i\}}
    \operatorname{softmax}_j(e^h_{ij})\, \mathbf{v}^h_j`. It is fast because

    * self-loops are handled analytically, not as edges;
    * on trees (see :func:`graph_structure`) the neighbourhood of node i is {i, its parent, its
      children}: the message from the parent is a plain gather aligned with the nodes and the
      messages to the parent one ``index_add``, so only N rows are gathered and N scattered
      instead of 2 E = 4 N;
    * the softmax works on (N, H) logits, and every (N, H*U) operation runs on 2-D tensors
      (row gathers and scatters of 3-D tensors take a slow path in PyTorch on CPU).

    Args (``in_channels`` only for the subclasses):
        in_channels: F, input width.
        out_channels: U, units per head.
        heads: H.
        negative_slope: slope of the leaky ReLU of the attention logits.

    Shapes: ``x`` (N, F), ``graph`` a :class:`GraphStructure` of the N nodes; returns (N, H*U).
    """

    def __init__(self, out_channels, heads, negative_slope):
        super().__init__()
        self.heads, self.out_channels, self.negative_slope = heads, out_channels, negative_slope

    def tree_logits(self, x, parent):
        """(values (N, H*U), logits (3, N, H) of the messages i -> i, parent -> i, i -> parent)."""
        raise NotImplementedError

    def edge_logits(self, x, src, dst):
        """(values (N, H*U), self logits (N, H), edge logits (E, H) of the messages src -> dst)."""
        raise NotImplementedError

    def dense_logits(self, x):
        """(values (N, H*U), logits (H, N, N) of every message j -> i at [h, i, j])."""
        raise NotImplementedError

    def forward_event(self, x, mask):
        """The same function for one event as a dense softmax over all N x N pairs, masked by
        ``mask`` (1, N, N) from :func:`event_attention_mask`: a few large operations instead of
        many small ones, the fast form for one small event in the ONNX export. Returns (N, H*U).
        """
        values, logits = self.dense_logits(x)
        weights = torch.softmax(logits + mask, dim=2)
        out = weights @ values.unflatten(1, (self.heads, -1)).transpose(0, 1)    # (H, N, U)
        return out.transpose(0, 1).flatten(1)

    def forward(self, x, graph):
        heads, n = self.heads, x.shape[0]
        if graph.parent is not None:
            parent = graph.parent
            values, logits = self.tree_logits(x, parent)
            width = values.shape[1]
            peak = torch.maximum(logits[0], logits[1]).detach().scatter_reduce(
                0, parent[:, None].expand(-1, heads), logits[2].detach(), "amax",
                include_self=True)
            weights = torch.exp(logits - torch.stack([peak, peak, peak.index_select(0, parent)]))
            weights = weights * graph.message_mask
            total = (weights[0] + weights[1]).index_add_(0, parent, weights[2])
            weights = weights / torch.stack([total, total, total.index_select(0, parent)])
            w_self, w_down, w_up = weights[..., None].unbind(0)
            out = torch.addcmul(values.view(n, heads, -1) * w_self,
                                values.index_select(0, parent).view(n, heads, -1), w_down)
            messages = (values.view(n, heads, -1) * w_up).view(n, width)
            return out.view(n, width).index_add_(0, parent, messages)
        src, dst = graph.src, graph.dst
        values, self_logits, logits = self.edge_logits(x, src, dst)
        width = values.shape[1]
        peak = self_logits.detach().scatter_reduce(
            0, dst[:, None].expand(-1, heads), logits.detach(), "amax", include_self=True)
        w_self = torch.exp(self_logits - peak)
        weights = torch.exp(logits - peak.index_select(0, dst))
        total = w_self.index_add(0, dst, weights)
        weights = weights / total.index_select(0, dst)
        messages = (values.index_select(0, src).view(len(src), heads, -1) * weights[..., None])
        out = (values.view(n, heads, -1) * (w_self / total)[..., None]).view(n, width)
        return out.index_add_(0, dst, messages.view(len(src), width))


class TreeGATConv(TreeAttentionConv):
    r"""Graph attention layer (Velickovic et al. 2018) with self-loops, fast on decay trees.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^h_{ij} \mathbf{W}^h \mathbf{x}_j, \qquad
        \alpha^h_{ij} = \operatorname{softmax}_j\big(\operatorname{LeakyReLU}(
        \mathbf{a}^{h\top}_{s} \mathbf{W}^h \mathbf{x}_j + \mathbf{a}^{h\top}_{d} \mathbf{W}^h
        \mathbf{x}_i)\big)

    The same function and parameter layout (``lin.weight``, ``att_src``, ``att_dst``) as PyG's
    ``GATConv(in_channels, out_channels, heads, concat=True, add_self_loops=True, bias=False)``
    (checked in the tests, values and gradients). Besides the speed-ups of
    :class:`TreeAttentionConv`, the attention logits are computed once per node, straight from
    the input with the vectors :math:`\mathbf{W}^{h\top}\mathbf{a}^h` (a product of width 2H).

    Args and shapes: as :class:`TreeAttentionConv`.
    """

    def __init__(self, in_channels, out_channels, heads, negative_slope=0.2):
        super().__init__(out_channels, heads, negative_slope)
        self.lin = Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot initialisation, as PyG's GATConv (attention vectors with fans H and U)."""
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src[0])
        nn.init.xavier_uniform_(self.att_dst[0])

    def _scores(self, x):
        """Projected input (N, H*U) and the per-node logit terms [a_src, a_dst] (N, 2H)."""
        weight = self.lin.weight.view(self.heads, self.out_channels, -1)
        att = torch.cat([torch.einsum("huf,hu->hf", weight, self.att_src[0]),
                         torch.einsum("huf,hu->hf", weight, self.att_dst[0])])   # (2H, F)
        return self.lin(x), linear(x, att)

    def tree_logits(self, x, parent):
        values, scores = self._scores(x)
        a_src, a_dst = scores.split(self.heads, dim=1)
        p_src, p_dst = a_src.index_select(0, parent), a_dst.index_select(0, parent)
        logits = torch.stack([a_src + a_dst, p_src + a_dst, a_src + p_dst])
        return values, F.leaky_relu(logits, self.negative_slope)

    def edge_logits(self, x, src, dst):
        values, scores = self._scores(x)
        a_src, a_dst = scores.split(self.heads, dim=1)
        logits = a_src.index_select(0, src) + a_dst.index_select(0, dst)
        return (values, F.leaky_relu(a_src + a_dst, self.negative_slope),
                F.leaky_relu(logits, self.negative_slope))

    def dense_logits(self, x):
        values, scores = self._scores(x)
        a_src, a_dst = scores.T.split(self.heads)                                # (H, N) each
        return values, F.leaky_relu(a_dst[:, :, None] + a_src[:, None], self.negative_slope)


class TreeGATv2Conv(TreeAttentionConv):
    r"""GATv2 layer (Brody et al. 2022) with self-loops, fast on decay trees.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^h_{ij} \mathbf{W}^h_l \mathbf{x}_j, \qquad
        \alpha^h_{ij} = \operatorname{softmax}_j\big(\mathbf{a}^{h\top}
        \operatorname{LeakyReLU}(\mathbf{W}^h_l \mathbf{x}_j + \mathbf{W}^h_r \mathbf{x}_i)\big)

    The same function and parameter layout (``lin_l.weight``, ``lin_r.weight``, ``att``) as
    PyG's ``GATv2Conv(in_channels, out_channels, heads, concat=True, add_self_loops=True,
    bias=False)`` (checked in the tests, values and gradients), with the speed-ups of
    :class:`TreeAttentionConv`; both projections are one matrix product.

    Args and shapes: as :class:`TreeAttentionConv`.
    """

    def __init__(self, in_channels, out_channels, heads, negative_slope=0.2):
        super().__init__(out_channels, heads, negative_slope)
        self.lin_l = Linear(in_channels, heads * out_channels, bias=False)
        self.lin_r = Linear(in_channels, heads * out_channels, bias=False)
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot initialisation, as PyG's GATv2Conv (attention vector with fans H and U)."""
        nn.init.xavier_uniform_(self.lin_l.weight)
        nn.init.xavier_uniform_(self.lin_r.weight)
        nn.init.xavier_uniform_(self.att[0])

    def _project(self, x):
        """x_l, x_r (N, H*U) and the attention logits of pre-activations (..., H*U) -> (..., H)
        (as one product with the block-diagonal (H, H*U) matrix of the attention vectors)."""
        x_l, x_r = linear(x, torch.cat([self.lin_l.weight, self.lin_r.weight])).chunk(2, dim=1)
        att = torch.block_diag(*self.att[0])
        return x_l, x_r, lambda pre: linear(F.leaky_relu(pre, self.negative_slope), att)

    def tree_logits(self, x, parent):
        x_l, x_r, logits = self._project(x)
        return x_l, torch.stack([logits(x_l + x_r), logits(x_l.index_select(0, parent) + x_r),
                                 logits(x_l + x_r.index_select(0, parent))])

    def edge_logits(self, x, src, dst):
        x_l, x_r, logits = self._project(x)
        return (x_l, logits(x_l + x_r),
                logits(x_l.index_select(0, src) + x_r.index_select(0, dst)))

    def dense_logits(self, x):
        x_l, x_r, logits = self._project(x)
        return x_l, logits(x_r[:, None] + x_l[None]).permute(2, 0, 1)


class GlobalAttentionPooling(nn.Module):
    r"""Global attention pooling (Li et al. 2015): :math:`\mathbf{r}_b = \sum_{i \in b}
    \operatorname{softmax}_i(\mathbf{w}^\top \mathbf{x}_i + c)\, \mathbf{x}_i`.

    The same function as PyG's ``AttentionalAggregation(nn.Linear(channels, 1))``.

    Shapes: ``x`` (N, C), ``batch`` (N,) graph index, ``num_graphs`` B; returns (B, C).
    """

    def __init__(self, channels):
        super().__init__()
        self.gate = Linear(channels, 1)

    def reset_parameters(self):
        self.gate.reset_parameters()

    def forward(self, x, batch, num_graphs):
        logits = self.gate(x)
        peak = logits.new_full((num_graphs, 1), float("-inf")).scatter_reduce(
            0, batch[:, None], logits.detach(), "amax", include_self=True)
        weights = torch.exp(logits - peak.index_select(0, batch))
        total = weights.new_zeros(num_graphs, 1).index_add_(0, batch, weights)
        weights = weights / total.index_select(0, batch)
        return x.new_zeros(num_graphs, x.shape[1]).index_add_(0, batch, x * weights)

    def forward_event(self, x):
        """The pooling of one event, ``x`` (N, C) -> (1, C)."""
        return torch.softmax(self.gate(x), dim=0).T @ x


#: The graph attention layers of ``GATGAP(attention=...)``.
ATTENTION_LAYERS = {"gat": TreeGATConv, "gatv2": TreeGATv2Conv}


@register_model("gatgap")
class GATGAP(nn.Module):
    """Graph attention network with global attention pooling (Belle II smartBKG ``GATGAPModel``).

    Args:
        num_skims: S, number of outputs (one logit per skim; default 1).
        num_event_types: number of event-type codes (used when ``event_dim`` > 0; default 8:
            the seven generic types and "unknown", :data:`smartbkg.data.table.NUM_EVENT_TYPES`).
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
        attention: ``"gat"`` (:class:`TreeGATConv`, as Belle II) or ``"gatv2"``
            (:class:`TreeGATv2Conv`).
        detector_features: add the particles' :func:`~smartbkg.models.layers.detector_features`.
        num_event_features: F, width of the batch's ``event_features`` (the generator-level
            skim emulation, :mod:`smartbkg.data.skim_emulation`; filled in from the data when
            ``data.event_features`` is on), encoded by an MLP and joined to the final global
            state; 0 (default): none.

    Forward: a PyG ``Batch`` (contract: ``x`` (N, 8), ``pdg`` (N,), ``mother_index`` (N,) or
    else ``edge_index`` (2, E), ``batch`` (N,), ``event_type`` (B,), and ``event_features``
    (B, F) when F > 0) -> (B, S) logits. With
    ``mother_index`` (every batch of :mod:`smartbkg.data.graphs` has it) the forward has no
    host-device synchronisation; a graph without it pays one for the check of
    :func:`graph_structure`.
    """

    def __init__(self, *, num_skims=1, num_event_types=NUM_EVENT_TYPES, vocab_size=None, units=32, heads=4,
                 layers=6, pdg_dim=8, event_dim=0, negative_slope=0.2, activation_slope=0.01,
                 attention="gat", detector_features=False, num_event_features=0):
        super().__init__()
        if attention not in ATTENTION_LAYERS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_LAYERS)}, "
                              f"not {attention!r}")
        conv = ATTENTION_LAYERS[attention]
        self.activation_slope = activation_slope
        self.encode = NodeFeatureEncoding(detector_features)
        self.pdg_embedding = nn.Embedding(vocab_size or default_vocab_size(), pdg_dim)
        self.event_embedding = nn.Embedding(num_event_types, event_dim) if event_dim else None
        width, state = self.encode.out_features + pdg_dim + event_dim, 0
        self.convs, self.pools, self.updates = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            self.convs.append(conv(width, units, heads, negative_slope))
            self.pools.append(GlobalAttentionPooling(heads * units))
            self.updates.append(Linear(state + heads * units, units))
            width, state = heads * units, units
        self.event_features = MLP((num_event_features, units, units)) if num_event_features else None
        self.join = Linear(2 * units, units) if num_event_features else None
        self.head = Linear(units, num_skims)

    def reset_parameters(self):
        reset_all(self)

    def forward(self, batch):
        graph = graph_structure(batch.edge_index, batch.x.shape[0], batch.get("mother_index"))
        return self.forward_nodes(batch.x, batch.pdg, graph, batch.batch, batch.event_type,
                                  batch.num_graphs, event_features_of(batch, self.event_features))

    def forward_nodes(self, x, pdg, graph, batch_index, event_type, num_graphs, event_features=None):
        """The forward on plain tensors (the ONNX export's entry, without a PyG ``Batch``).

        Shapes: ``x`` (N, 8) raw node features, ``pdg`` (N,) tokens, ``graph`` the
        :class:`GraphStructure` of the N nodes, ``batch_index`` (N,) graph of each node,
        ``event_type`` (B,), ``num_graphs`` B, ``event_features`` (B, F) or None; returns
        (B, S) logits.
        """
        return self._run(x, pdg, event_type, batch_index, lambda conv, h: conv(h, graph),
                         lambda pool, h: pool(h, batch_index, num_graphs), event_features)

    def forward_event(self, x, pdg, mother_index, event_type):
        """One event with dense attention (:meth:`TreeAttentionConv.forward_event`): the same
        function as :meth:`forward_nodes`, in the form the single-event ONNX graph uses.

        Shapes: ``x`` (N, 8) raw node features, ``pdg`` (N,) tokens, ``mother_index`` (N,)
        each node's mother (itself for roots), ``event_type`` (1,); returns (1, S) logits.
        """
        mask = event_attention_mask(mother_index)
        return self._run(x, pdg, event_type, torch.zeros_like(pdg),
                         lambda conv, h: conv.forward_event(h, mask),
                         lambda pool, h: pool.forward_event(h))

    def _run(self, x, pdg, event_type, batch_index, convolve, pool, event_features=None):
        """The network, with ``convolve(conv, h)`` and ``pool(pooling, h)`` doing the graph
        operations of each layer."""
        parts = [embed(self.pdg_embedding, pdg, "vocab_size"), self.encode(x)]
        if self.event_embedding is not None:
            parts.append(embed(self.event_embedding, event_type, "num_event_types")[batch_index])
        h = torch.cat(parts, dim=1)
        state = None
        for conv, pooling, update in zip(self.convs, self.pools, self.updates):
            h = F.leaky_relu(convolve(conv, h), self.activation_slope)
            pooled = pool(pooling, h)
            state = pooled if state is None else torch.cat([state, pooled], dim=1)
            state = F.leaky_relu(update(state), self.activation_slope)
        if self.event_features is not None:
            joined = torch.cat([state, self.event_features(event_features)], dim=1)
            state = F.leaky_relu(self.join(joined), self.activation_slope)
        return self.head(state)
