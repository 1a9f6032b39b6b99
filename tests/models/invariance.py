"""Reusable transformations of batches and invariance checks (cf. lorentz-gatr's helpers).

Each transformation maps a batch-contract ``Batch`` to a new one describing the same events
differently (particle order, frame); :func:`assert_invariant` checks that a model gives the same
logits for both.
"""

import numpy as np
import torch


def permute_particles(batch, seed):
    """The same events with the particles of every event in a random order.

    Node-level tensors (``x``, ``pdg``) are reordered, ``edge_index`` and ``mother_index`` are
    relabelled (so mothers often come after their daughters); the event of every particle and
    all event-level tensors stay as they are.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch.num_nodes, generator=generator, dtype=torch.float64)
    keys = batch.batch.double() + noise
    order = torch.argsort(keys)
    new_position = torch.empty_like(order)
    new_position[order] = torch.arange(batch.num_nodes)
    permuted = batch.clone()
    permuted.x, permuted.pdg = batch.x[order], batch.pdg[order]
    permuted.edge_index = new_position[batch.edge_index]
    permuted.mother_index = new_position[batch.mother_index[order]]
    return permuted


def lorentz_matrix(seed, max_beta=0.9):
    """A random proper orthochronous Lorentz transformation (4, 4) float64: rotation then boost.

    Acts on (E, px, py, pz) column vectors; the boost has speed up to ``max_beta`` along a random
    direction.
    """
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    direction = rng.normal(size=3)
    beta = rng.uniform(0.3, max_beta) * direction / np.linalg.norm(direction)
    gamma = 1 / np.sqrt(1 - beta @ beta)
    boost = np.eye(4)
    boost[0, 0] = gamma
    boost[0, 1:] = boost[1:, 0] = gamma * beta
    boost[1:, 1:] += (gamma - 1) * np.outer(beta, beta) / (beta @ beta)
    rotation4 = np.eye(4)
    rotation4[1:, 1:] = rotation
    return boost @ rotation4


def transform_momenta(batch, matrix):
    """The same events with every four-momentum ``x[:, 4:8]`` transformed by ``matrix`` (4, 4).

    Computed in float64 and rounded once to the batch's dtype.
    """
    transformed = batch.clone()
    p4 = batch.x[:, 4:8].double() @ torch.as_tensor(matrix, dtype=torch.float64).T
    transformed.x = torch.cat([batch.x[:, :4], p4.to(batch.x.dtype)], dim=1)
    return transformed


def assert_invariant(model, batch, transform, *, atol=1e-5, rtol=1e-5):
    """Assert ``model(batch)`` equals ``model(transform(batch))`` within the tolerances."""
    model.eval()
    with torch.no_grad():
        expected, actual = model(batch), model(transform(batch))
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)
