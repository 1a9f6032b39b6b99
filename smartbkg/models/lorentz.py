r"""Lorentz-invariant attention: the transformer with invariant pair inputs only.

After "Deep Learning Invariant Models" (R. Radev, 2023).

The attention bias of every head comes from an MLP of Lorentz invariants of each particle pair,
the Minkowski product :math:`\langle p_i, p_j \rangle` and the squared Minkowski norm of the
difference :math:`(p_i - p_j)^2` (each through the fixed map ``asinh(v / 0.01 GeV^2)``), plus
the decay-tree adjacency, which no boost or rotation changes.

With ``invariant=True`` (default) the tokens see only invariant inputs as well: PDG embedding,
event-type embedding and the particle's own :math:`m^2 = E^2 - |\vec p|^2`; the whole model is
then invariant under boosts and rotations of all four-momenta (and blind to production times
and vertices). ``invariant=False`` adds the encoded raw node features of the transformer.

With ``vector_update=True`` the four-momenta are also updated equivariantly after every block
but the last,

.. math::
    p_i \leftarrow p_i + \sum_{h} c^h_i \sum_j \alpha^h_{ij}\, p_j , \qquad
    c^h_i = \tanh(\mathbf{w}_h^\top \mathbf{h}_i + b_h) / H,

with the block's own attention weights :math:`\alpha^h_{ij}` (invariant) and coefficients
:math:`c^h_i` from the particle's token before the block (invariant, zero at initialisation,
bounded so that the momenta cannot run away during training); the pair bias of the next block
is recomputed from the updated momenta.
The updated vectors transform like the inputs, so invariance is kept. The momenta are mixed and
updated in float32 with autocast off (never rounded to bf16), like the pair features.
"""

import torch
from torch import nn

from ..data.pair_features import minkowski_mass2, pair_features
from ..data.table import NUM_EVENT_TYPES
from . import register_model
from .layers import Linear, encode_invariant
from .transformer import ParticleTransformer

#: Lorentz-invariant pair features used as attention bias.
INVARIANT_PAIR_FEATURES = ("inner", "diff_m2")


@register_model("lorentz")
class LorentzTransformer(ParticleTransformer):
    """Particle transformer with Lorentz-invariant attention biases (and optionally inputs).

    Args:
        adjacency: add the decay-tree adjacency to the pair inputs.
        invariant: tokens see only invariant inputs (PDG, event type, particle m^2).
        vector_update: update the four-momenta equivariantly after every block.

    The other options (``num_skims``, ``num_event_types``, ``vocab_size``, ``dim``, ``heads``,
    ``blocks``, ``cls_blocks``, ``mlp_ratio``, ``pair_hidden``, ``pair_bias``, ``dropout``,
    ``num_event_features``) are
    those of :class:`~smartbkg.models.transformer.ParticleTransformer` (``pair_bias`` is
    ``"shared"`` when ``vector_update`` is on: one MLP, applied again to every block's updated
    momenta).

    Forward: a PyG ``Batch`` (contract) -> (B, S) logits.
    """

    def __init__(self, *, num_skims=1, num_event_types=NUM_EVENT_TYPES, vocab_size=None, dim=128, heads=8,
                 blocks=8, cls_blocks=2, mlp_ratio=4, pair_hidden=64, pair_bias="shared",
                 adjacency=True, invariant=True, vector_update=False, dropout=0.0, num_event_features=0):
        self.invariant, self.vector_update = invariant, vector_update
        names = ("adjacency",) * adjacency + INVARIANT_PAIR_FEATURES
        super().__init__(num_skims=num_skims, num_event_types=num_event_types,
                         vocab_size=vocab_size, dim=dim, heads=heads, blocks=blocks,
                         cls_blocks=cls_blocks, mlp_ratio=mlp_ratio, pair_features=names,
                         pair_hidden=pair_hidden,
                         pair_bias="shared" if vector_update else pair_bias, dropout=dropout,
                         num_event_features=num_event_features)
        self.vector_mixers = (nn.ModuleList(Linear(dim, heads) for _ in range(blocks - 1))
                              if vector_update else None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for mixer in getattr(self, "vector_mixers", None) or ():
            nn.init.zeros_(mixer.weight)
            nn.init.zeros_(mixer.bias)

    def node_input_width(self):
        return 1 if self.invariant else 9

    def node_inputs(self, x, p4):
        mass2 = encode_invariant(minkowski_mass2(p4))[..., None]
        return mass2 if self.invariant else torch.cat([self.encode(x), mass2], dim=-1)

    def pair_inputs(self, p4, mask, adjacency):
        features = pair_features(p4, mask, self.pair_names, adjacency=adjacency)
        first = len(self.pair_names) - len(INVARIANT_PAIR_FEATURES)
        return torch.cat([features[:, :first], encode_invariant(features[:, first:])], dim=1)

    def encode_particles(self, h, p4, mask, adjacency, pairs):
        if not self.vector_update:
            return super().encode_particles(h, p4, mask, adjacency, pairs)
        for block, mixer in zip(self.blocks, self.vector_mixers):
            (block_mask,) = self.attention_biases(p4, mask, adjacency, pairs)
            coefficients = torch.tanh(mixer(h)) / self.heads
            h, mixed = block(h, block_mask, vectors=p4)
            p4 = update_vectors(p4, mixed, coefficients)
        (block_mask,) = self.attention_biases(p4, mask, adjacency, pairs)
        return self.blocks[-1](h, block_mask)


def update_vectors(p4, mixed, coefficients):
    """The equivariant update p4 + sum_h c^h mixed^h, in float32 (float64 for float64 ``p4``)
    with autocast off.

    Shapes: ``p4`` (B, L, 4), ``mixed`` (B, H, L, 4) per-head attention mixtures of ``p4``,
    ``coefficients`` (B, L, H) (any float dtype); returns (B, L, 4).
    """
    dtype = torch.promote_types(p4.dtype, torch.float32)
    with torch.autocast(device_type=p4.device.type, enabled=False):
        return p4.to(dtype) + torch.einsum("bhlc,blh->blc", mixed.to(dtype),
                                           coefficients.to(dtype))
