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
rotations of the event. The angle is computed as ``atan2(|p_a x p_b|, p_a . p_b)``, accurate at
small and large angles; a particle at rest has angle 0 to everything.
"""

import torch

from ..errors import ConfigError

#: Names of the available pair features, in a fixed order.
PAIR_FEATURES = ("adjacency", "ln_m2", "angle", "ln_delta", "ln_kt", "ln_z", "inner", "diff_m2")

#: Lower clamp of the arguments of the logarithms (in the argument's unit).
EPS = 1e-8


def dense_adjacency(edge_index, batch, max_num_nodes):
    """Decay-tree adjacency of a PyG batch as a dense (B, L, L) float tensor.

    Args:
        edge_index: (2, E) int64 global node indices (mother->daughter and daughter->mother).
        batch: (N,) int64 graph index of each node, sorted (as in a PyG ``Batch``).
        max_num_nodes: L, the padded length (at least the largest event).

    Returns:
        (B, L, L) tensor with 1 at [b, i, j] for every edge from local node j to local node i
        of event b (symmetric for the contract's two-way edges), 0 elsewhere and on padding.
    """
    num_graphs = int(batch[-1]) + 1 if batch.numel() else 0
    counts = torch.bincount(batch, minlength=num_graphs)
    start = torch.cumsum(counts, 0) - counts
    src, dst = edge_index
    graph = batch[dst]
    adjacency = torch.zeros(num_graphs, max_num_nodes, max_num_nodes, device=batch.device)
    adjacency[graph, dst - start[graph], src - start[graph]] = 1.0
    return adjacency


def _pair_kinematics(p4):
    """Shared pair quantities of (B, L, 4) four-momenta: energies and three-momenta products."""
    energy, momentum = p4[..., 0], p4[..., 1:]
    dot = torch.einsum("bic,bjc->bij", momentum, momentum)
    cross = torch.linalg.vector_norm(torch.linalg.cross(
        momentum[:, :, None, :].expand(-1, -1, momentum.shape[1], -1),
        momentum[:, None, :, :].expand(-1, momentum.shape[1], -1, -1), dim=-1), dim=-1)
    return energy[:, :, None], energy[:, None, :], dot, cross


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
        (B, F, L, L) tensor, F = len(names), same dtype as ``p4``; zero where either particle is
        padding, finite everywhere.

    Raises:
        ConfigError: for an unknown name, or ``"adjacency"`` without ``adjacency``.
    """
    unknown = [n for n in names if n not in PAIR_FEATURES]
    if unknown:
        raise ConfigError(f"unknown pair features {unknown}; known: {', '.join(PAIR_FEATURES)}")
    if "adjacency" in names and adjacency is None:
        raise ConfigError("pair feature 'adjacency' needs the dense adjacency (edge_index)")
    p4 = p4.masked_fill(~mask[..., None], 0.0)
    e_a, e_b, dot, cross = _pair_kinematics(p4)
    inner = e_a * e_b - dot
    mass2 = p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1)
    mass2_sum = mass2[:, :, None] + mass2[:, None, :]
    e_min = torch.minimum(e_a, e_b)
    angle = torch.atan2(cross, dot) if {"angle", "ln_delta", "ln_kt"} & set(names) else None

    def clamped_log(value):
        return torch.log(torch.clamp(value, min=eps))

    compute = {
        "adjacency": lambda: adjacency.to(p4.dtype),
        "ln_m2": lambda: clamped_log(mass2_sum + 2 * inner),
        "angle": lambda: angle,
        "ln_delta": lambda: clamped_log(angle),
        "ln_kt": lambda: clamped_log(2 * e_min * torch.sin(angle / 2)),
        "ln_z": lambda: clamped_log(e_min / torch.clamp(e_a + e_b, min=eps)),
        "inner": lambda: inner,
        "diff_m2": lambda: mass2_sum - 2 * inner,
    }
    features = torch.stack([compute[n]() for n in names], dim=1)
    pair_mask = (mask[:, :, None] & mask[:, None, :])[:, None]
    return features.masked_fill(~pair_mask, 0.0)
