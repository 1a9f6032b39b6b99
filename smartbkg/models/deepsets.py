r"""DeepSets baseline (Zaheer et al. 2017): per-particle MLP, sum over the event, event MLP.

.. math::
    \text{logits} = W_{\text{head}}\,\sigma\Big(\rho\Big(\sum_{i \in \text{event}}
    \phi(\tilde x_i, e_{\text{pdg}_i}),\; e_{\text{type}}\Big)\Big) + b_{\text{head}}

No decay-tree edges and no particle-particle interaction: the reference point that shows what
the graph and attention models gain from structure. Permutation invariant by construction.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..data.table import NUM_EVENT_TYPES
from . import register_model
from .layers import (MLP, Linear, NodeFeatureEncoding, default_vocab_size, embed, event_features_of, init_embedding,
                     reset_all)


@register_model("deepsets")
class DeepSets(nn.Module):
    """Sum-pooled per-particle MLP with event-type conditioning.

    Args:
        num_skims: S, number of outputs (default 1).
        num_event_types: number of event-type codes (default 8: the seven generic types and
            "unknown", :data:`smartbkg.data.table.NUM_EVENT_TYPES`).
        vocab_size: number of PDG tokens (default: the shipped vocabulary).
        pdg_dim: width of the PDG embedding.
        hidden: width of the hidden layers of phi and rho.
        layers: number of hidden layers of phi (rho has one fewer, at least one).
        detector_features: add the particles' :func:`~smartbkg.models.layers.detector_features`.
        num_event_features: F, width of the batch's ``event_features`` (the generator-level
            skim emulation, :mod:`smartbkg.data.skim_emulation`; filled in from the data when
            ``data.event_features`` is on), encoded by an MLP and added to the pooled state;
            0 (default): none.

    Attributes:
        head: the final linear layer (hidden -> S), as in the other models (fine-tuning replaces it).

    Forward: a PyG ``Batch`` (``x`` (N, 8), ``pdg`` (N,), ``batch`` (N,), ``event_type`` (B,),
    and ``event_features`` (B, F) when F > 0) -> (B, S) logits.
    """

    def __init__(self, *, num_skims=1, num_event_types=NUM_EVENT_TYPES, vocab_size=None, pdg_dim=16,
                 hidden=128, layers=3, detector_features=False, num_event_features=0):
        super().__init__()
        self.encode = NodeFeatureEncoding(detector_features)
        self.pdg_embedding = nn.Embedding(vocab_size or default_vocab_size(), pdg_dim)
        self.event_embedding = nn.Embedding(num_event_types, hidden)
        self.event_features = MLP((num_event_features, hidden, hidden)) if num_event_features else None
        self.phi = MLP((self.encode.out_features + pdg_dim,) + (hidden,) * layers)
        self.rho = MLP((hidden,) * max(layers - 1, 2))
        self.head = Linear(hidden, num_skims)
        self.reset_parameters()

    def reset_parameters(self):
        reset_all(self)
        init_embedding(self.pdg_embedding, std=1.0)
        init_embedding(self.event_embedding)

    def forward(self, batch):
        return self.forward_nodes(batch.x, batch.pdg, batch.batch, batch.event_type,
                                  batch.num_graphs, event_features_of(batch, self.event_features))

    def forward_nodes(self, x, pdg, batch_index, event_type, num_graphs, event_features=None):
        """The forward on plain tensors (the ONNX export's entry, without a PyG ``Batch``).

        Shapes: ``x`` (N, 8) raw node features, ``pdg`` (N,) tokens, ``batch_index`` (N,) graph
        of each node, ``event_type`` (B,), ``num_graphs`` B, ``event_features`` (B, F) or None;
        returns (B, S) logits.
        """
        h = self.phi(torch.cat([self.encode(x), embed(self.pdg_embedding, pdg, "vocab_size")], dim=1))
        pooled = h.new_zeros(num_graphs, h.shape[1]).index_add_(0, batch_index, h)
        pooled = pooled + embed(self.event_embedding, event_type, "num_event_types")
        if self.event_features is not None:
            pooled = pooled + self.event_features(event_features)
        state = self.rho(F.gelu(pooled))
        return self.head(F.gelu(state))
