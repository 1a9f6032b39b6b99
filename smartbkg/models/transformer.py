r"""Particle-transformer-style model: all particles attend to all, biased by pair features.

After the Particle Transformer ("Particle Transformer for Jet Tagging", arXiv:2202.03772) as
adapted to Belle II events ("The Smart Background Project", N. Krug, 2024):
each particle is a token (encoded node features + PDG embedding + event-type embedding); pair
features of every two particles (decay-tree adjacency, ln m^2, opening angle ... from
:mod:`smartbkg.data.pair_features`) pass through a small MLP to one attention bias per head
(shared by all blocks, or one per block), added to the attention logits of N pre-LayerNorm
self-attention blocks; then 2 class-attention blocks let a class token (conditioned on the event
type) read out the event, and a linear head gives one logit per skim (multi-label).

The pair features are symmetric in the two particles (the decay-tree adjacency too, as the batch
contract has edges both ways), so the pair MLP runs once per unordered pair of real particles
and the bias is mirrored; with one-way edges the adjacency of the pair is that of the edge from
the later to the earlier particle.

Batches are made dense and padded per batch with :func:`torch_geometric.utils.to_dense_batch`;
padded keys are masked out of every attention (``-inf`` in the float mask) and padded queries
are never read, so padding never changes the logits. The padded length and the number of real
pairs are read once per forward from the node offsets (:func:`dense_layout`); every later shape
follows from them. The offsets come from the batch's CPU bookkeeping
(:func:`smartbkg.data.graphs.host_offsets`), so a batch built on the CPU and moved to a GPU (as
the data layer's are) costs no host-device synchronisation; one without that bookkeeping costs
one, reading ``batch.ptr``.

Pair features are computed in float32 with autocast off (see
:mod:`smartbkg.data.pair_features`); under bf16 autocast only their embedding MLP and the
blocks run in bf16.
The defaults (8 + 2 blocks, 8 heads, width 128, MLP ratio 4) give about 2.1 M parameters.
"""

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch

from ..data.graphs import host_offsets
from ..data.pair_features import PAIR_FEATURES, dense_adjacency, pair_features
from ..data.table import NUM_EVENT_TYPES
from ..errors import ConfigError
from . import register_model
from .layers import (MLP, ClassAttentionBlock, Linear, NodeFeatureEncoding, SelfAttentionBlock,
                     attention_mask, default_vocab_size, embed, event_features_of, init_embedding, reset_all)


def dense_layout(ptr):
    """Padded length L and number P of unordered pairs i <= j of real particles of a batch.

    ``ptr`` (B+1,) node offsets -> (L, P) Python ints: one host-device synchronisation if
    ``ptr`` is on a GPU (none on the CPU), after which every shape of the dense batch is known.
    """
    lengths = ptr.diff()
    return torch.stack([lengths.max(), (lengths * (lengths + 1)).sum() // 2]).tolist()


def real_pairs(mask, num_pairs):
    """Indices (b, i, j), each (P,), of the pairs i <= j of real particles of a dense batch.

    ``mask`` (B, L) bool with the real particles first in every row (as ``to_dense_batch``
    gives), ``num_pairs`` P from :func:`dense_layout` (a fixed size: no synchronisation).
    """
    length = mask.shape[1]
    upper = torch.ones(length, length, dtype=torch.bool, device=mask.device).triu()
    real = mask[:, :, None] & mask[:, None, :] & upper
    return torch.nonzero_static(real, size=num_pairs).unbind(1)


@register_model("transformer")
class ParticleTransformer(nn.Module):
    """Transformer over the particles of an event with pair-feature attention biases.

    Args:
        num_skims: S, number of outputs (default 1).
        num_event_types: number of event-type codes (embedding rows; default 8: the seven
            generic types and "unknown", :data:`smartbkg.data.table.NUM_EVENT_TYPES`).
        vocab_size: number of PDG tokens (default: the shipped vocabulary).
        dim: D, token width.
        heads: H, attention heads (D divisible by H).
        blocks: number of self-attention blocks.
        cls_blocks: number of class-attention blocks.
        mlp_ratio: hidden width of the block MLPs in units of D.
        pair_features: names from :data:`smartbkg.data.pair_features.PAIR_FEATURES` (empty for
            no pair bias).
        pair_hidden: width of the two hidden layers of the pair-feature MLP.
        pair_bias: ``"shared"`` (one bias per head used by every block, as in ParT) or
            ``"per_block"`` (one bias per head and block).
        dropout: dropout of attention weights and MLP activations.
        num_event_features: F, width of the batch's ``event_features`` (the generator-level
            skim emulation, :mod:`smartbkg.data.skim_emulation`; filled in from the data when
            ``data.event_features`` is on), encoded by an MLP and added to the event-type
            embedding (every token and the class token); 0 (default): none.

    Forward: a PyG ``Batch`` (contract; ``event_features`` (B, F) when F > 0) -> (B, S) logits.
    """

    def __init__(self, *, num_skims=1, num_event_types=NUM_EVENT_TYPES, vocab_size=None, dim=128, heads=8,
                 blocks=8, cls_blocks=2, mlp_ratio=4,
                 pair_features=("adjacency", "ln_m2", "angle"), pair_hidden=64,
                 pair_bias="shared", dropout=0.0, num_event_features=0):
        super().__init__()
        if pair_bias not in ("shared", "per_block"):
            raise ConfigError(f"pair_bias must be 'shared' or 'per_block', not {pair_bias!r}")
        unknown = sorted(set(pair_features) - set(PAIR_FEATURES))
        if unknown:
            raise ConfigError(f"unknown pair features {unknown}; known: {', '.join(PAIR_FEATURES)}")
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.pair_names = heads, tuple(pair_features)
        self.bias_sets = blocks if pair_bias == "per_block" else 1
        self.encode = NodeFeatureEncoding()
        self.node_embedding = Linear(self.node_input_width(), dim)
        self.pdg_embedding = nn.Embedding(vocab_size or default_vocab_size(), dim)
        self.event_embedding = nn.Embedding(num_event_types, dim)
        self.event_features = MLP((num_event_features, dim, dim)) if num_event_features else None
        self.pair_embedding = (MLP((len(self.pair_names), pair_hidden, pair_hidden,
                                    heads * self.bias_sets)) if self.pair_names else None)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(dim, heads, mlp_ratio, dropout) for _ in range(blocks))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_blocks = nn.ModuleList(
            ClassAttentionBlock(dim, heads, mlp_ratio, dropout) for _ in range(cls_blocks))
        self.norm = nn.LayerNorm(dim)
        self.head = Linear(dim, num_skims)
        self.reset_parameters()

    def reset_parameters(self):
        reset_all(self)
        for embedding in (self.pdg_embedding, self.event_embedding, self.cls_token):
            init_embedding(embedding)

    # ----------------------------------------------------------------- hooks for variants
    def node_input_width(self):
        """Width of :meth:`node_inputs`."""
        return 8

    def node_inputs(self, x, p4):
        """Per-particle inputs (B, L, F_in) from raw ``x`` (B, L, 8) and ``p4`` (B, L, 4)."""
        return self.encode(x)

    def pair_inputs(self, p4, mask, adjacency):
        """Pair inputs (B, F, L, L) of the pair MLP."""
        return pair_features(p4, mask, self.pair_names, adjacency=adjacency)

    def attention_biases(self, p4, mask, adjacency, pairs):
        """Per-block attention masks: a list of (B, H, L, L) float or one (B, 1, L, L) bool.

        ``pairs``: the (b, i, j) indices of :func:`real_pairs`. The pair features are symmetric,
        so each real pair i <= j (about a quarter of the padded L x L grid) is embedded once and
        mirrored. With ``pairs`` None every cell of the grid is embedded (the same biases for
        real pairs; padding is masked either way): the ONNX export's path.
        """
        if self.pair_embedding is None:
            return [attention_mask(mask)]
        features = self.pair_inputs(p4, mask, adjacency).permute(0, 2, 3, 1)   # (B, L, L, F)
        if pairs is None:   # every pair of the grid: no shape that depends on the data
            bias = self.pair_embedding(features).permute(0, 3, 1, 2)
            return [attention_mask(mask, chunk) for chunk in bias.split(self.heads, dim=1)]
        b, i, j = pairs
        values = self.pair_embedding(features[b, i, j])
        length = mask.shape[1]
        bias = values.new_zeros(mask.shape[0], length, length, values.shape[1])
        bias[b, i, j] = values
        bias[b, j, i] = values
        bias = bias.permute(0, 3, 1, 2)
        return [attention_mask(mask, chunk) for chunk in bias.split(self.heads, dim=1)]

    def encode_particles(self, h, p4, mask, adjacency, pairs):
        """Run the self-attention blocks; ``h`` (B, L, D) -> (B, L, D)."""
        masks = self.attention_biases(p4, mask, adjacency, pairs)
        for i, block in enumerate(self.blocks):
            h = block(h, masks[i % len(masks)])
        return h

    # ----------------------------------------------------------------------------- forward
    def forward(self, batch):
        num_graphs = batch.num_graphs
        length, num_pairs = dense_layout(host_offsets(batch))
        x, mask = to_dense_batch(batch.x, batch.batch, batch_size=num_graphs,
                                 max_num_nodes=length)
        pdg, _ = to_dense_batch(batch.pdg, batch.batch, batch_size=num_graphs,
                                max_num_nodes=length)
        adjacency = (dense_adjacency(batch.edge_index, batch.batch, batch.ptr, length)
                     if "adjacency" in self.pair_names else None)
        pairs = real_pairs(mask, num_pairs) if self.pair_embedding is not None else None
        return self.forward_dense(x, pdg, mask, adjacency, batch.event_type, pairs,
                                  event_features_of(batch, self.event_features))

    def forward_dense(self, x, pdg, mask, adjacency, event_type, pairs=None, event_features=None):
        """The forward on a dense, padded batch (the ONNX export's entry, without a PyG ``Batch``).

        Shapes: ``x`` (B, L, 8) raw node features, ``pdg`` (B, L) tokens, ``mask`` (B, L) bool
        (True for real particles, which come first in every row), ``adjacency`` (B, L, L) float
        decay-tree adjacency (None without the ``adjacency`` pair feature), ``event_type``
        (B,), ``pairs`` as for :meth:`attention_biases`, ``event_features`` (B, F) or None;
        returns (B, S) logits.
        """
        num_graphs = x.shape[0]
        p4 = x[..., 4:8]
        event = embed(self.event_embedding, event_type, "num_event_types")[:, None]
        if self.event_features is not None:
            event = event + self.event_features(event_features)[:, None]
        h = self.node_embedding(self.node_inputs(x, p4)) + embed(self.pdg_embedding, pdg, "vocab_size") + event
        h = self.encode_particles(h, p4, mask, adjacency, pairs)
        cls = self.cls_token.expand(num_graphs, -1, -1) + event
        cls_mask = torch.cat([mask.new_ones(num_graphs, 1), mask], dim=1)[:, None, None, :]
        for block in self.cls_blocks:
            cls = block(cls, h, cls_mask)
        return self.head(self.norm(cls[:, 0]))
