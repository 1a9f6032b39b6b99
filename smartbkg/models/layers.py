r"""Building blocks shared by the models: input encodings, attention blocks, masks.

Node features arrive in raw physical units (batch contract): ``x`` (N, 8) =
[prodTime ns, x cm, y cm, z cm, E GeV, px GeV, py GeV, pz GeV]. Their scales differ by orders of
magnitude and are heavy-tailed (production times from 0 to ns, vertices from microns to 10 cm),
so every model first applies the same fixed, parameter-free map

.. math::
    \tilde x_k = \operatorname{asinh}(x_k / s_k),

with :data:`NODE_SCALES` :math:`s` = (1 ps, 100 um, 100 um, 100 um, 1 GeV, 1 GeV, 1 GeV, 1 GeV).
``asinh`` is linear below the scale and logarithmic above it, odd (keeps signs) and finite for
any physical input (abs(x) < 1e30 in the feature's unit), so a B-meson flight of 200 um and a K_S
flight of 5 cm both land in O(1..10).
Lorentz invariants (GeV^2) use the same map with scale :data:`INVARIANT_SCALE`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError

#: Scales s_k of the node features [prodTime ns, x, y, z cm, E, px, py, pz GeV].
NODE_SCALES = (1e-3, 1e-2, 1e-2, 1e-2, 1.0, 1.0, 1.0, 1.0)

#: Scale of Lorentz invariants (masses squared, Minkowski products) [GeV^2], about m_pi^2 / 2.
INVARIANT_SCALE = 1e-2


def default_vocab_size():
    """Number of PDG tokens of the shipped vocabulary (``smartbkg.data.vocab.VOCAB_SIZE``)."""
    from ..data.vocab import VOCAB_SIZE

    return VOCAB_SIZE


_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def linear(x, weight, bias=None):
    """``F.linear``; for CPU float32 inference through oneDNN's matmul (see :class:`Linear`)."""
    if (_ONEDNN_LINEAR is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling()):
        return _ONEDNN_LINEAR(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """:class:`torch.nn.Linear` that runs CPU float32 inference through oneDNN's matmul.

    PyTorch's default CPU BLAS (MKL) reaches about 100 GFLOP/s per core on AMD Zen CPUs where
    oneDNN reaches about 230 (measured for (5000, 128) x (128, 128) products), which halves the
    time of the GAT layers. oneDNN is used only where it computes the same function and nothing
    else needs the default path: CPU, float32, no autocast, no gradient needed, not tracing,
    exporting or compiling. Everything else is plain ``F.linear``; parameters are those of
    ``nn.Linear``.
    """

    def forward(self, x):
        return linear(x, self.weight, self.bias)


class NodeFeatureEncoding(nn.Module):
    r"""The fixed map :math:`\operatorname{asinh}(x / s)` of the raw node features (no parameters),
    optionally followed by the :func:`detector_features` of each particle.

    Args:
        detector_features: append the :data:`DETECTOR_FEATURES` of :func:`detector_features`.

    Shapes: ``x`` (..., 8) raw features in the contract's order -> (..., ``out_features``)
    encoded, ``out_features`` = 8 or 13.
    """

    def __init__(self, detector_features=False):
        super().__init__()
        self.register_buffer("scales", torch.tensor(NODE_SCALES), persistent=False)
        self.detector_features = detector_features
        self.out_features = len(NODE_SCALES) + (len(DETECTOR_FEATURES) if detector_features else 0)

    def forward(self, x):
        encoded = torch.asinh(x / self.scales)
        return torch.cat([encoded, detector_features(x)], dim=-1) if self.detector_features else encoded


#: Names of the columns of :func:`detector_features`.
DETECTOR_FEATURES = ("asinh_pt", "cos_theta", "asinh_d0", "asinh_z0", "asinh_r_xy")
#: Scales of :func:`detector_features`: the fast detector's track thresholds, pT 0.05 GeV, impact
#: parameters d0 0.5 cm and z0 2 cm, and 1 cm for the production radius.
DETECTOR_SCALES = (0.05, 0.5, 2.0, 1.0)


def detector_features(x):
    r"""What the detector response of a particle depends on, from its raw node features.

    :math:`\operatorname{asinh}(p_T / 0.05)`, :math:`\cos\theta = p_z / |p|` (0 at rest),
    :math:`\operatorname{asinh}(d_0 / 0.5)` and :math:`\operatorname{asinh}(z_0 / 2)` of the
    straight line from the production vertex along the momentum (distance of closest approach to
    the beam line and its z there, cm, as the tracking acceptance of the embedded detector), and
    :math:`\operatorname{asinh}(r_{xy} / 1)` of the production vertex: products and ratios of the
    raw features that a network would otherwise have to learn. Rotations about the beam axis
    leave them unchanged.

    Shapes: ``x`` (..., 8) raw features [prodTime, x, y, z, E, px, py, pz] -> (..., 5).
    """
    vx, vy, vz, px, py, pz = (x[..., k] for k in (1, 2, 3, 5, 6, 7))
    pt2 = px * px + py * py
    pt, p = torch.sqrt(pt2), torch.sqrt(pt2 + pz * pz)
    moving, transverse = p > 0, pt2 > 0
    cos_theta = torch.where(moving, pz / torch.where(moving, p, torch.ones_like(p)), torch.zeros_like(p))
    safe_pt = torch.where(transverse, pt, torch.ones_like(pt))
    d0 = torch.where(transverse, (vx * py - vy * px) / safe_pt, torch.hypot(vx, vy))
    z0 = torch.where(transverse, vz - (vx * px + vy * py) * pz / (safe_pt * safe_pt), vz)
    s_pt, s_d0, s_z0, s_r = DETECTOR_SCALES
    return torch.stack([torch.asinh(pt / s_pt), cos_theta, torch.asinh(d0 / s_d0), torch.asinh(z0 / s_z0),
                        torch.asinh(torch.hypot(vx, vy) / s_r)], dim=-1)


def encode_invariant(value):
    r""":math:`\operatorname{asinh}(v / s)` of a Lorentz invariant ``value`` [GeV^2], any shape."""
    return torch.asinh(value / INVARIANT_SCALE)


def event_features_of(batch, encoder):
    """The batch's ``event_features`` (B, F) for a model with an event-feature ``encoder``, else None.

    Raises:
        ConfigError: the model takes event features and the batch has none (data built without
            ``event_features``).
    """
    if encoder is None:
        return None
    features = batch.get("event_features")
    if features is None:
        raise ConfigError("the model takes event features, but the batch has none: build the data with "
                          "event_features=True (data.event_features: true in a run)")
    return features


class MLP(nn.Sequential):
    """Linear -> GELU -> ... -> Linear over the last dimension; ``dims`` = (in, hidden..., out)."""

    def __init__(self, dims, dropout=0.0):
        layers = []
        for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(Linear(n_in, n_out))
            if i < len(dims) - 2:
                layers += [nn.GELU(), nn.Dropout(dropout)]
        super().__init__(*layers)


def attention_mask(valid, bias=None):
    """Mask for :func:`~torch.nn.functional.scaled_dot_product_attention` over padded tokens.

    Every query attends to every real key; a padded key is hidden from all queries but itself.
    So padding never reaches a real token, and no row is empty (no NaN anywhere, even for an
    event without particles).

    Args:
        valid: (B, L) bool, True for real tokens.
        bias: optional (B, H, L, L) float attention bias (added to the logits).

    Returns:
        (B, 1, L, L) bool mask (True = attend) without ``bias``; with ``bias`` the (B, H, L, L)
        float mask ``bias`` with ``-inf`` where attention is not allowed.
    """
    eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
    allowed = (valid[:, None, None, :] | eye)
    if bias is None:
        return allowed
    return bias.masked_fill(~allowed, float("-inf"))


class Attention(nn.Module):
    r"""Multi-head attention with :func:`~torch.nn.functional.scaled_dot_product_attention`.

    Args:
        dim: D, token width.
        num_heads: H (D must be divisible by H).
        dropout: attention-weight dropout during training.

    Shapes: ``query`` (B, Lq, D), ``context`` (B, Lk, D), ``mask`` broadcastable to
    (B, H, Lq, Lk) (bool, True = attend, or float added to the logits); returns (B, Lq, D).
    With ``vectors`` (B, Lk, C) the same attention weights of every head are also applied to
    these channels, and ``(out, mixed)`` is returned with ``mixed`` (B, H, Lq, C) in float32
    (float64 for float64 ``vectors``): that attention runs with autocast off, so that
    four-momenta are never rounded to bf16 (the projections may still run in bf16).
    """

    def __init__(self, dim, num_heads, dropout=0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.dropout = num_heads, dropout
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, query, context, mask, vectors=None):
        b, lq, d = query.shape
        h = self.num_heads
        q = self.q(query).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        if vectors is None:
            out = self._attend(q, k, v, mask)
        else:
            dtype = torch.promote_types(vectors.dtype, torch.float32)
            with torch.autocast(device_type=q.device.type, enabled=False):
                v = torch.cat([v.to(dtype), vectors[:, None].expand(-1, h, -1, -1).to(dtype)],
                              dim=-1)
                out = self._attend(q.to(dtype), k.to(dtype), v, mask)
            out, mixed = out[..., : d // h], out[..., d // h:]
        # an explicit copy and a view, not reshape: re-tracing for ONNX export (dynamic number of
        # particles) can otherwise turn the reshape into a view that does not exist
        out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format)
        out = self.proj(out.view(b, lq, d))
        return out if vectors is None else (out, mixed)

    def _attend(self, q, k, v, mask):
        if mask.is_floating_point():
            mask = mask.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              dropout_p=self.dropout if self.training else 0.0)


class SelfAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN x), then x + MLP(LN x).

    Args:
        dim: D; num_heads: H; mlp_ratio: hidden width of the MLP in units of D;
        dropout: dropout of attention weights and MLP activations.

    Shapes: ``x`` (B, L, D), ``mask`` as for :class:`Attention`; returns (B, L, D).
    """

    def __init__(self, dim, num_heads, mlp_ratio=4, dropout=0.0):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP((dim, mlp_ratio * dim, dim), dropout)

    def forward(self, x, mask, vectors=None):
        """With ``vectors`` (B, L, C), also return their per-head attention mixture (B, H, L, C)."""
        y = self.norm_attn(x)
        if vectors is None:
            x = x + self.attn(y, y, mask)
            return x + self.mlp(self.norm_mlp(x))
        update, mixed = self.attn(y, y, mask, vectors)
        x = x + update
        return x + self.mlp(self.norm_mlp(x)), mixed


class ClassAttentionBlock(SelfAttentionBlock):
    """Class-attention block (CaiT / ParT): the class token attends to itself and the particles.

    Shapes: ``cls`` (B, 1, D), ``x`` (B, L, D), ``mask`` (B, 1, 1, 1 + L) bool over
    [class token, particles]; returns the updated class token (B, 1, D).
    """

    def forward(self, cls, x, mask):
        context = self.norm_attn(torch.cat([cls, x], dim=1))
        cls = cls + self.attn(context[:, :1], context, mask)
        return cls + self.mlp(self.norm_mlp(cls))


def reset_all(module):
    """Re-initialise every submodule of ``module`` that has ``reset_parameters`` (not itself)."""
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()


def init_embedding(embedding, std=0.02):
    """Normal(0, std) init of an :class:`~torch.nn.Embedding` or a parameter tensor."""
    weight = embedding.weight if isinstance(embedding, nn.Embedding) else embedding
    nn.init.normal_(weight, std=std)


def embed(embedding, codes, option):
    """``embedding(codes)``, with a one-line error naming the constructor ``option`` that sets
    the table size when a code falls outside it.

    ``codes`` (n,) int64 -> (n, dim). The check runs on the CPU, outside tracing, compiling and
    ONNX export (on a GPU it would wait for the device; there an out-of-range code stops the
    process with a device-side assertion).

    Raises:
        ConfigError: a code < 0 or >= ``embedding.num_embeddings``.
    """
    if (codes.device.type == "cpu" and codes.numel() and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling()):
        low, high = int(codes.min()), int(codes.max())
        size = embedding.num_embeddings
        if low < 0 or high >= size:
            raise ConfigError(f"{option}={size} but the batch has code {low if low < 0 else high}: build the model "
                              f"with {option} >= {high + 1} (the data's number of codes)")
    return embedding(codes)


def count_parameters(module):
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["event_features_of", "NODE_SCALES", "INVARIANT_SCALE", "DETECTOR_FEATURES", "DETECTOR_SCALES", "detector_features", "linear", "Linear",
           "NodeFeatureEncoding",
           "encode_invariant", "MLP", "attention_mask", "Attention", "SelfAttentionBlock",
           "ClassAttentionBlock", "reset_all", "init_embedding", "embed", "count_parameters",
           "default_vocab_size"]
