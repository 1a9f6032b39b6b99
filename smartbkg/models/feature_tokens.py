r"""Event classifier transformer: every event-level feature is a token.

After "Event Classifier Transformer" (J. Kim): feature f of an event, a single number
:math:`x_f`, becomes a token through a small MLP of its own plus a learned embedding of the
feature's identity,

.. math::
    t_f = W^{(2)}_f\,\mathrm{GELU}(w^{(1)}_f x_f + b^{(1)}_f) + b^{(2)}_f + e_f ,

a class token joins the F feature tokens, pre-norm self-attention blocks mix them, and the class
token's final state gives one logit per output. Because every feature has its own MLP and
identity embedding, the model knows which number is which: permuting the features changes the
output (unlike a set model over particles).

Forward: a :class:`~smartbkg.data.features.FeatureBatch` (``x`` (B, F), standardised features)
-> (B, num_skims) logits. ``num_event_types`` and ``vocab_size`` are accepted for the registry's
common signature and unused.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import register_model
from .layers import Linear


@register_model("feature_tokens")
class FeatureTokenTransformer(nn.Module):
    """Args:
        num_features: F, features per event.
        num_skims: outputs.
        dim: token width; heads: attention heads; blocks: self-attention blocks.
        mlp_ratio: width of the blocks' feed-forward layers over ``dim``.
        dropout: dropout in the blocks.

    Attributes:
        head: the final linear layer (dim -> num_skims).
    """

    def __init__(self, *, num_features, num_skims=1, num_event_types=8, vocab_size=None, dim=32, heads=4, blocks=3,
                 mlp_ratio=2, dropout=0.0):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(num_features, dim))
        self.b1 = nn.Parameter(torch.empty(num_features, dim))
        self.w2 = nn.Parameter(torch.empty(num_features, dim, dim))
        self.b2 = nn.Parameter(torch.empty(num_features, dim))
        self.identity = nn.Parameter(torch.empty(num_features, dim))
        self.cls = nn.Parameter(torch.empty(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * mlp_ratio, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = Linear(dim, num_skims)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.w2.shape[-1])
        nn.init.normal_(self.w1)
        nn.init.zeros_(self.b1)
        nn.init.uniform_(self.w2, -bound, bound)
        nn.init.zeros_(self.b2)
        nn.init.normal_(self.identity, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        for module in self.blocks.modules():
            if module is not self.blocks and hasattr(module, "_reset_parameters"):
                module._reset_parameters()
            elif isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()
        self.norm.reset_parameters()
        self.head.reset_parameters()

    def tokens(self, x):
        """(B, F) features -> (B, F, dim) feature tokens."""
        h = F.gelu(x[..., None] * self.w1 + self.b1)
        return torch.einsum("bfd,fde->bfe", h, self.w2) + self.b2 + self.identity

    def forward(self, batch):
        tokens = self.tokens(batch.x)
        h = self.blocks(torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1))
        return self.head(self.norm(h[:, 0]))


@register_model("dnn")
class FeedForward(nn.Module):
    """A deep feed-forward network on event-level features, the baseline of the feature-token model.

    Args:
        num_features: F; num_skims: outputs; hidden: width; layers: hidden layers; dropout.

    Forward: a :class:`~smartbkg.data.features.FeatureBatch` (``x`` (B, F)) -> (B, num_skims) logits.
    """

    def __init__(self, *, num_features, num_skims=1, num_event_types=8, vocab_size=None, hidden=64, layers=3,
                 dropout=0.0):
        super().__init__()
        dims = (num_features,) + (hidden,) * layers
        self.layers = nn.ModuleList(Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = nn.Dropout(dropout)
        self.head = Linear(hidden, num_skims)

    def reset_parameters(self):
        for layer in (*self.layers, self.head):
            layer.reset_parameters()

    def forward(self, batch):
        h = batch.x
        for layer in self.layers:
            h = self.dropout(F.gelu(layer(h)))
        return self.head(h)
