"""Random decay-tree events in the batch contract, for tests, benchmarks and smoke checks.

The events are kinematically consistent (every decay conserves four-momentum, every particle is
on its mass shell, daughters start where their mother decayed), so Lorentz invariants, pair
features and invariance tests behave as on generated events; the particle content is a small
fixed menu of common hadrons and leptons, not a physics model. Use the simulation package for
physics.

Each event starts from two B-meson-like roots back to back in the e+e- centre-of-mass frame
(sqrt(s) = 10.58 GeV), boosted along z with beta*gamma = 0.287 as at Belle II; particles are then
decayed into two or three bodies, isotropically in the mother's rest frame, until the event has
its target size or nothing can decay.
"""

import numpy as np
import torch
from torch_geometric.data import Batch, Data

#: Speed of light [cm/ns].
C_LIGHT = 29.9792458

#: (PDG id, mass GeV, c*tau cm) of the particles the generator draws daughters from.
_MENU = np.array([
    (22, 0.0, 0.0), (11, 0.000511, 0.0), (13, 0.10566, 65.9), (211, 0.13957, 780.0),
    (111, 0.13498, 2.5e-6), (321, 0.49368, 371.0), (310, 0.49761, 2.68), (221, 0.54786, 1.5e-7),
    (113, 0.77526, 1e-13), (313, 0.89555, 1e-13), (333, 1.01946, 4.6e-12), (421, 1.86484, 0.0123),
    (411, 1.86966, 0.0312), (413, 2.01026, 1e-11), (443, 3.0969, 2e-10),
])
_ROOT = (511, 5.27966, 0.0455)


def _two_body(mass, m1, m2, rng):
    """Daughter four-momenta (2, 4) = (E, px, py, pz) of an isotropic decay at rest [GeV]."""
    p = np.sqrt(max((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2), 0.0)) / (2 * mass)
    cos_t, phi = rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
    sin_t = np.sqrt(1 - cos_t**2)
    direction = np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
    return np.array([[np.hypot(p, m1), *(p * direction)], [np.hypot(p, m2), *(-p * direction)]])


def _decay(mass, daughter_masses, rng):
    """Daughter four-momenta (n, 4) of a decay at rest into n = 2 or 3 bodies [GeV].

    Three-body decays go through an intermediate state of uniformly drawn invariant mass.
    """
    if len(daughter_masses) == 2:
        return _two_body(mass, *daughter_masses, rng)
    m1, m2, m3 = daughter_masses
    m23 = rng.uniform(m2 + m3, mass - m1)
    first, pair = _two_body(mass, m1, m23, rng)
    return np.concatenate([first[None], boost(_two_body(m23, m2, m3, rng), pair[1:] / pair[0])])


def boost(p4, beta):
    """Boost four-momenta ``p4`` (..., 4) = (E, px, py, pz) by velocity ``beta`` (3,) [c]."""
    beta = np.asarray(beta, dtype=np.float64)
    b2 = float(beta @ beta)
    if b2 == 0.0:
        return p4.copy()
    gamma = 1.0 / np.sqrt(1.0 - b2)
    e, p = p4[..., 0], p4[..., 1:]
    bp = p @ beta
    e_new = gamma * (e + bp)
    p_new = p + ((gamma - 1.0) * bp / b2 + gamma * e)[..., None] * beta
    return np.concatenate([e_new[..., None], p_new], axis=-1)


def _event(rng, target):
    """One event as numpy arrays: pdg (n,), mother (n,), x (n, 8) in the contract's order."""
    beam = np.array([0.0, 0.0, 0.287 / np.sqrt(1 + 0.287**2)])
    roots = _two_body(10.58, _ROOT[1], _ROOT[1], rng)
    pdg, mass, ctau, mother = [_ROOT[0], -_ROOT[0]], [_ROOT[1]] * 2, [_ROOT[2]] * 2, [-1, -1]
    p4 = [boost(r, beam) for r in roots]
    vertex = [np.zeros(4), np.zeros(4)]  # (t ns, x, y, z cm)
    open_ = [0, 1]
    while open_ and len(pdg) + 2 <= target:
        i = open_.pop(rng.integers(len(open_)))
        n_daughters = 3 if len(pdg) + 3 <= target and rng.random() < 0.5 else 2
        allowed = np.nonzero(_MENU[:, 1] < mass[i] / n_daughters)[0]
        if len(allowed) == 0:
            continue
        chosen = rng.choice(allowed, size=n_daughters)
        e, p3 = p4[i][0], p4[i][1:]
        flight = rng.exponential(ctau[i]) if ctau[i] > 0 else 0.0
        decay_at = vertex[i] + flight / mass[i] * np.array([e / C_LIGHT, *p3])
        for k in chosen:
            pdg.append(int(_MENU[k, 0]) * (1 if rng.random() < 0.5 else -1))
            mass.append(_MENU[k, 1])
            ctau.append(_MENU[k, 2])
            mother.append(i)
            vertex.append(decay_at)
            open_.append(len(pdg) - 1)
        p4 += [boost(d, p3 / e) for d in _decay(mass[i], _MENU[chosen, 1], rng)]
    vertex, p4 = np.array(vertex), np.array(p4)
    x = np.concatenate([vertex, p4], axis=1).astype(np.float32)
    return np.array(pdg), np.array(mother), x


def _tokens(pdg, vocab_size):
    """(n,) int64 PDG tokens of PDG ids ``pdg`` (see :func:`synthetic_batch`)."""
    if vocab_size is None:
        from ..data.vocab import pdg_to_token
        return pdg_to_token(pdg)
    return (np.abs(pdg) * 7 + (pdg < 0)) % (vocab_size - 1) + 1


def synthetic_batch(num_events, *, num_particles=40, num_skims=1, num_event_types=7,
                    vocab_size=None, seed=0):
    """A :class:`~torch_geometric.data.Batch` of random decay-tree events (batch contract).

    Args:
        num_events: number of events B.
        num_particles: target particles per event; each event draws its size uniformly from
            [num_particles // 2, 3 * num_particles // 2] and stops earlier when nothing can decay.
        num_skims: S, number of label columns (random 0/1, correlated with the event size).
        num_event_types: event-type codes are drawn from [0, num_event_types).
        vocab_size: None for the tokens of the shipped vocabulary (:mod:`smartbkg.data.vocab`);
            a number V for a fixed function of the PDG id into [1, V) (tiny test models).
        seed: the same seed gives the same batch.

    Returns:
        Batch with ``x`` (N, 8) [prodTime ns, x, y, z cm, E, px, py, pz GeV], ``pdg`` (N,),
        ``edge_index`` (2, E) mother<->daughter, ``y`` (B, S), ``event_type`` (B,),
        ``weight`` (B,), ``batch`` and ``ptr``.
    """
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(num_events):
        target = int(rng.integers(max(num_particles // 2, 3), 3 * num_particles // 2 + 1))
        pdg, mother, x = _event(rng, target)
        daughters = np.nonzero(mother >= 0)[0]
        edges = np.stack([np.concatenate([mother[daughters], daughters]),
                          np.concatenate([daughters, mother[daughters]])])
        size = len(pdg) / (1.5 * num_particles)
        y = rng.random(num_skims) < 0.2 + 0.6 * size
        data.append(Data(
            x=torch.from_numpy(x),
            pdg=torch.from_numpy(_tokens(pdg, vocab_size)),
            edge_index=torch.from_numpy(edges).long(),
            y=torch.from_numpy(y.astype(np.float32))[None],
            event_type=torch.tensor([rng.integers(num_event_types)]),
            weight=torch.ones(1),
        ))
    return Batch.from_data_list(data)
