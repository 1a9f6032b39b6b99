r"""Pair features of the particles of an event, for attention biases (vectorised, per batch).

All functions work on dense, padded batches: four-momenta ``p4`` of shape (B, L, 4) ordered
(E, px, py, pz) in GeV and a boolean ``mask`` (B, L) that is True for real particles (as given by
:func:`torch_geometric.utils.to_dense_batch`). Every feature is a (B, L, L) tensor; a pair with a
padded member is exactly 0, and every value is finite (logarithms are clamped below at ``eps``).

Features (select by name, see :data:`PAIR_FEATURES`), for particles a and b:

==============  ==================================================================================
``adjacency``   1 if a and b are mother and daughter in the decay tree (from ``edge_index``), else 0
``ln_m2``       :math:`\ln m^2_{ab}`,
                :math:`m^2_{ab} = (E_a + E_b)^2 - |\vec p_a + \vec p_b|^2` [GeV^2]
``angle``       opening angle :math:`\theta_{ab}` between the three-momenta, in [0, pi] [rad]
``ln_delta``    :math:`\ln \Delta_{ab}` with :math:`\Delta_{ab} = \theta_{ab}` (see below)
``ln_kt``       :math:`\ln k_T`, :math:`k_T = 2 \min(E_a, E_b) \sin(\theta_{ab}/2)` [GeV]
``ln_z``        :math:`\ln z`, :math:`z = \min(E_a, E_b) / (E_a + E_b)`
``inner``       Minkowski product
                :math:`\langle p_a, p_b \rangle = E_a E_b - \vec p_a \cdot \vec p_b`
                [GeV^2] (Lorentz invariant)
``diff_m2``     :math:`(p_a - p_b)^2 = m_a^2 + m_b^2 - 2 \langle p_a, p_b \rangle` [GeV^2]
                (Lorentz invariant)
==============  ==================================================================================

The Particle Transformer (arXiv 2202.03772) defines :math:`\Delta`, :math:`k_T` and :math:`z` for
jets at a hadron collider, with rapidity, azimuth and transverse momentum relative to the beam.
In e+e- events at Belle II there is no such longitudinal boost invariance, most particles are
slow and a particle moving along the beam has no defined rapidity or azimuth. We therefore use
the e+e- (Durham) convention: :math:`\Delta` is the opening angle :math:`\theta_{ab}`, energies
replace transverse momenta, and :math:`k_T = 2 \min(E_a, E_b) \sin(\theta_{ab}/2)`, which is
:math:`\min(E_a, E_b)\,\Delta_{ab}` at small angles as in ParT. These are invariant under
rotations of the event.

Numerics: the features are computed in float32 (float64 for float64 input) with autocast
switched off, so that under bf16 autocast nothing is rounded to bf16 (the MLP that embeds them
may run in bf16). They are written in forms without catastrophic cancellation, so that they keep
float32's relative precision down to collinear photon pairs and soft pairs
(:math:`m^2_{ab} \sim 10^{-8}` GeV^2), where the textbook forms lose every digit:

* each particle's :math:`m^2 = E^2 - |\vec p|^2` is computed in float64 (L values per event;
  for a light, fast particle the two terms cancel);
* with unit vectors :math:`\hat a, \hat b` along the momenta (0 for a particle at rest), the
  chord :math:`c_{ab} = |\hat a - \hat b| = 2 \sin(\theta_{ab}/2)` is accurate at small angles,
  and :math:`\theta_{ab} = 2 \operatorname{atan2}(|\hat a - \hat b|, |\hat a + \hat b|)` at all
  angles (a particle at rest has angle 0 to everything);
* :math:`\langle p_a, p_b \rangle = (E_a E_b - |\vec p_a||\vec p_b|)
  + |\vec p_a||\vec p_b|(1 - \cos\theta_{ab})` with

  .. math::
      E_a E_b - |\vec p_a||\vec p_b| = \frac{E_a^2 E_b^2 - |\vec p_a|^2 |\vec p_b|^2}
      {E_a E_b + |\vec p_a||\vec p_b|} = \frac{m_a^2 E_b^2 + m_b^2 E_a^2 - m_a^2 m_b^2}
      {E_a E_b + |\vec p_a||\vec p_b|}, \qquad 1 - \cos\theta_{ab} = c_{ab}^2 / 2,

  where for physical momenta (:math:`E \ge m \ge 0`) the subtracted term is at most half of the
  others (no cancellation; the form is exactly symmetric in a and b). All terms of
  :math:`m^2_{ab} = m_a^2 + m_b^2 + 2 \langle p_a, p_b \rangle` are then non-negative.
  Where :math:`E_a E_b \le 0` (not physical, but four-vectors updated by a model may be)
  :math:`E_a E_b - |\vec p_a||\vec p_b|` has no cancellation and is used as it is.

``inner`` and ``diff_m2`` come from the same :math:`\langle p_a, p_b \rangle`; ``diff_m2`` is a
difference of non-negative terms, precise to about 1e-7 of :math:`E_a E_b` (absolute).
"""

import torch

from ..errors import ConfigError

#: Names of the available pair features, in a fixed order.
PAIR_FEATURES = ("adjacency", "ln_m2", "angle", "ln_delta", "ln_kt", "ln_z", "inner", "diff_m2")

#: Lower clamp of the arguments of the logarithms (in the argument's unit).
EPS = 1e-8


def dense_adjacency(edge_index, batch, ptr, max_num_nodes):
    """Decay-tree adjacency of a PyG batch as a dense (B, L, L) float tensor.

    No host-device synchronisation (the local index of a node is its global index minus the
    offset ``ptr`` of its event).

    Args:
        edge_index: (2, E) int64 global node indices (mother->daughter and daughter->mother).
        batch: (N,) int64 graph index of each node, sorted (as in a PyG ``Batch``).
        ptr: (B+1,) int64 node offsets of the events (``Batch.ptr``).
        max_num_nodes: L, the padded length (at least the largest event).

    Returns:
        (B, L, L) float32 tensor with 1 at [b, i, j] for every edge from local node j to local
        node i of event b (symmetric for the contract's two-way edges), 0 elsewhere and on
        padding.
    """
    src, dst = edge_index
    graph = batch[dst]
    start = ptr[graph]
    adjacency = torch.zeros(len(ptr) - 1, max_num_nodes, max_num_nodes, device=batch.device)
    adjacency[graph, dst - start, src - start] = 1.0
    return adjacency


def minkowski_mass2(p4):
    """Squared masses E^2 - abs(p)^2 [GeV^2] of four-momenta ``p4`` (..., 4) -> (...).

    Computed in float64 and returned in the dtype of ``p4``: for a light, fast particle the two
    terms cancel (an electron of 1 GeV has m^2 = 2.6e-7 GeV^2, about float32's resolution of E^2).
    """
    p4_64 = p4.double()
    return (p4_64[..., 0] ** 2 - (p4_64[..., 1:] ** 2).sum(-1)).to(p4.dtype)


def _positive_or_one(value):
    """``value`` where positive, else 1: a divisor with finite values and gradients."""
    return torch.where(value > 0, value, torch.ones_like(value))


class _PairKinematics:
    """Pair quantities of (B, L, 4) four-momenta, in the cancellation-free forms of the module
    docstring. Attributes are (B, L, L) unless said; ``angle`` is computed when asked for."""

    def __init__(self, p4):
        energy, momentum = p4[..., 0], p4[..., 1:]
        norm = torch.linalg.vector_norm(momentum, dim=-1)                       # (B, L)
        self.unit = momentum / _positive_or_one(norm)[..., None]               # (B, L, 3)
        self.moving = norm > 0                                                 # (B, L)
        self.chord = torch.linalg.vector_norm(self.unit[:, :, None] - self.unit[:, None], dim=-1)
        self.e_a, self.e_b = energy[:, :, None], energy[:, None, :]
        mass2 = minkowski_mass2(p4)
        m2_a, m2_b = mass2[:, :, None], mass2[:, None, :]
        self.mass2_sum = m2_a + m2_b
        momenta = norm[:, :, None] * norm[:, None, :]
        energies = self.e_a * self.e_b
        # <p_a, p_b> if the momenta were parallel, E_a E_b - |p_a||p_b|: it cancels for
        # E_a E_b > 0 unless rewritten, and has no cancellation otherwise
        numerator = m2_a * self.e_b ** 2 + m2_b * self.e_a ** 2 - m2_a * m2_b
        rewritten = numerator / _positive_or_one(energies + momenta)
        parallel = torch.where(energies > 0, rewritten, energies - momenta)
        self.inner = parallel + momenta * self.chord ** 2 / 2                  # <p_a, p_b>

    @property
    def angle(self):
        """Opening angle in [0, pi]; 0 if either particle is at rest."""
        both = self.moving[:, :, None] & self.moving[:, None, :]
        across = torch.linalg.vector_norm(self.unit[:, :, None] + self.unit[:, None], dim=-1)
        angle = 2 * torch.atan2(self.chord, across)
        return torch.where(both, angle, torch.zeros_like(angle))


def pair_features(p4, mask, names=("adjacency", "ln_m2", "angle"), *, adjacency=None, eps=EPS):
    """Compute the named pair features of a dense batch.

    Args:
        p4: (B, L, 4) float four-momenta (E, px, py, pz) [GeV]; padding entries may hold anything
            finite.
        mask: (B, L) bool, True for real particles.
        names: feature names from :data:`PAIR_FEATURES`, in the order wanted.
        adjacency: (B, L, L) float from :func:`dense_adjacency`; required for ``"adjacency"``.
        eps: lower clamp of the logarithms' arguments.

    Returns:
        (B, F, L, L) tensor, F = len(names), float32 (float64 for float64 ``p4``), computed with
        autocast off; zero where either particle is padding, finite everywhere (values and
        gradients).

    Raises:
        ConfigError: for an unknown name, or ``"adjacency"`` without ``adjacency``.
    """
    unknown = [n for n in names if n not in PAIR_FEATURES]
    if unknown:
        raise ConfigError(f"unknown pair features {unknown}; known: {', '.join(PAIR_FEATURES)}")
    if "adjacency" in names and adjacency is None:
        raise ConfigError("pair feature 'adjacency' needs the dense adjacency (edge_index)")
    dtype = torch.promote_types(p4.dtype, torch.float32)
    with torch.autocast(device_type=p4.device.type, enabled=False):
        p4 = p4.to(dtype).masked_fill(~mask[..., None], 0.0)
        pair = _PairKinematics(p4)
        angle = pair.angle if {"angle", "ln_delta", "ln_kt"} & set(names) else None
        e_min = torch.minimum(pair.e_a, pair.e_b)

        def clamped_log(value):
            return torch.log(torch.clamp(value, min=eps))

        compute = {
            "adjacency": lambda: adjacency.to(dtype),
            "ln_m2": lambda: clamped_log(pair.mass2_sum + 2 * pair.inner),
            "angle": lambda: angle,
            "ln_delta": lambda: clamped_log(angle),
            "ln_kt": lambda: clamped_log(2 * e_min * torch.sin(angle / 2)),
            "ln_z": lambda: clamped_log(e_min / torch.clamp(pair.e_a + pair.e_b, min=eps)),
            "inner": lambda: pair.inner,
            "diff_m2": lambda: pair.mass2_sum - 2 * pair.inner,
        }
        features = torch.stack([compute[n]() for n in names], dim=1)
        pair_mask = (mask[:, :, None] & mask[:, None, :])[:, None]
        return features.masked_fill(~pair_mask, 0.0)
