"""Pair features against hand-computed values, padding, clamping and invariances."""

import math

import numpy as np
import pytest
import torch

from smartbkg.data.pair_features import (PAIR_FEATURES, dense_adjacency, minkowski_mass2,
                                         pair_features)
from smartbkg.errors import ConfigError

# a = (E 2, p (1, 0, 0)), m^2 = 3; b = (E 3, p (0, 2, 0)), m^2 = 5; c at rest, m = 1;
# d = (E 1, p (-1, 0, 0)) massless, back to back with a.
P4 = torch.tensor([[[2.0, 1, 0, 0], [3, 0, 2, 0], [1, 0, 0, 0], [1, -1, 0, 0], [0, 0, 0, 0]]],
                  dtype=torch.float64)
MASK = torch.tensor([[True, True, True, True, False]])


def features(*names, **kwargs):
    return dict(zip(names, pair_features(P4, MASK, names, **kwargs)[0]))


def test_hand_computed_pair_a_b():
    f = features(*[n for n in PAIR_FEATURES if n != "adjacency"])
    assert f["ln_m2"][0, 1] == pytest.approx(math.log(25 - 5))   # (E_a + E_b)^2 - |p_a + p_b|^2
    assert f["angle"][0, 1] == pytest.approx(math.pi / 2)
    assert f["ln_delta"][0, 1] == pytest.approx(math.log(math.pi / 2))
    assert f["ln_kt"][0, 1] == pytest.approx(math.log(2 * 2 * math.sin(math.pi / 4)))
    assert f["ln_z"][0, 1] == pytest.approx(math.log(2 / 5))
    assert f["inner"][0, 1] == pytest.approx(6.0)                # 2 * 3 - 0
    assert f["diff_m2"][0, 1] == pytest.approx(1 - 5)            # (E_a - E_b)^2 - |p_a - p_b|^2
    for name, value in f.items():                                # symmetric
        torch.testing.assert_close(value, value.T, msg=name)


def test_special_pairs():
    f = features("ln_m2", "angle", "ln_delta", "inner", "diff_m2")
    assert f["angle"][0, 3] == pytest.approx(math.pi)            # back to back
    assert f["angle"][0, 0] == 0.0 and f["ln_delta"][0, 0] == pytest.approx(math.log(1e-8))
    assert f["angle"][2, 0] == 0.0                               # particle at rest
    assert f["inner"][0, 0] == pytest.approx(3.0)                # <p, p> = m^2
    assert f["ln_m2"][0, 0] == pytest.approx(math.log(4 * 3))
    assert f["ln_m2"][3, 3] == pytest.approx(math.log(1e-8))     # massless: clamped
    assert f["diff_m2"][1, 1] == 0.0


def test_padding_is_zero_and_everything_finite():
    values = pair_features(P4.float(), MASK, PAIR_FEATURES, adjacency=torch.ones(1, 5, 5))
    assert values.shape == (1, len(PAIR_FEATURES), 5, 5)
    assert torch.isfinite(values).all()
    assert (values[:, :, 4, :] == 0).all() and (values[:, :, :, 4] == 0).all()
    garbage = P4.float().clone()
    garbage[0, 4] = torch.tensor([float("nan"), 1e30, -1e30, 5])
    again = pair_features(garbage, MASK, PAIR_FEATURES, adjacency=torch.ones(1, 5, 5))
    torch.testing.assert_close(again, values)


def test_adjacency_of_two_events():
    # event 0: 0 -> 1, 0 -> 2 ; event 1 (nodes 3, 4): 3 -> 4 ; edges both ways
    edges = torch.tensor([[0, 1, 0, 2, 3, 4], [1, 0, 2, 0, 4, 3]])
    batch, ptr = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 3, 5])
    adjacency = dense_adjacency(edges, batch, ptr, 4)
    expected = torch.zeros(2, 4, 4)
    expected[0, 0, 1] = expected[0, 1, 0] = expected[0, 0, 2] = expected[0, 2, 0] = 1
    expected[1, 0, 1] = expected[1, 1, 0] = 1
    torch.testing.assert_close(adjacency, expected)
    out = pair_features(torch.zeros(2, 4, 4), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool(),
                        ("adjacency",), adjacency=adjacency)
    torch.testing.assert_close(out[:, 0], expected)


def test_order_of_names_is_kept():
    both = pair_features(P4, MASK, ("inner", "angle"))
    torch.testing.assert_close(both[:, 0], pair_features(P4, MASK, ("inner",))[:, 0])
    torch.testing.assert_close(both[:, 1], pair_features(P4, MASK, ("angle",))[:, 0])


def test_errors():
    with pytest.raises(ConfigError, match="unknown pair features"):
        pair_features(P4, MASK, ("ln_m2", "mass"))
    with pytest.raises(ConfigError, match="adjacency"):
        pair_features(P4, MASK, ("adjacency",))


def test_invariances():
    """Minkowski features are Lorentz invariant; angle-based ones rotation invariant."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = torch.eye(4, dtype=torch.float64)
    rotation[1:, 1:] = torch.as_tensor(q)
    beta, gamma = 0.6, 1.25
    boost = torch.eye(4, dtype=torch.float64)
    boost[0, 0] = boost[3, 3] = gamma
    boost[0, 3] = boost[3, 0] = gamma * beta
    names = tuple(n for n in PAIR_FEATURES if n != "adjacency")
    reference = pair_features(P4, MASK, names)
    rotated = pair_features(P4 @ rotation.T, MASK, names)
    torch.testing.assert_close(rotated, reference)
    boosted = pair_features(P4 @ boost.T, MASK, ("inner", "diff_m2", "ln_m2"))
    torch.testing.assert_close(boosted, pair_features(P4, MASK, ("inner", "diff_m2", "ln_m2")))


def test_minkowski_mass2_is_exact_for_light_fast_particles():
    assert minkowski_mass2(torch.tensor([5.0, 3.0, 0.0, 2.0])).item() == 25 - 9 - 4
    # an electron of 1 GeV in float32: m^2 = 2.6e-7 GeV^2, about float32's resolution of E^2
    p4 = torch.tensor([1.0, 0.6, 0.0, math.sqrt(1 - 0.36 - 0.511e-3**2)], dtype=torch.float32)
    exact = (p4.double()[0] ** 2 - (p4.double()[1:] ** 2).sum()).item()
    assert minkowski_mass2(p4).dtype == torch.float32
    assert minkowski_mass2(p4).item() == pytest.approx(exact, rel=1e-6)


def pair_at_angle(e_a, e_b, m_a, m_b, theta, seed):
    """float32 four-momenta (2, 4) of two particles [GeV] at opening angle theta, random frame."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    directions = np.array([[0.0, 0.0, 1.0], [math.sin(theta), 0.0, math.cos(theta)]]) @ q.T
    momenta = directions * [[math.sqrt(e_a**2 - m_a**2)], [math.sqrt(e_b**2 - m_b**2)]]
    return torch.tensor(np.concatenate([[[e_a], [e_b]], momenta], axis=1), dtype=torch.float32)


M_E, M_PI = 0.511e-3, 0.1396
#: (E_a, E_b, m_a, m_b [GeV], opening angle [rad]): pairs whose m^2 cancels in float32
TRICKY_PAIRS = {
    "collinear_photons_1e-2": (1.0, 0.5, 0.0, 0.0, 1e-2),
    "collinear_photons_1e-3": (1.0, 0.5, 0.0, 0.0, 1e-3),
    "hard_collinear_photons": (3.0, 2.0, 0.0, 0.0, 1e-3),
    "soft_photons": (0.01, 0.02, 0.0, 0.0, 0.05),
    "photon_conversion": (0.3, 0.2, M_E, M_E, 2e-3),
    "soft_electrons": (0.005, 0.003, M_E, M_E, 0.1),
    "pions": (1.0, 0.4, M_PI, M_PI, 0.3),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kinematics", TRICKY_PAIRS.values(), ids=TRICKY_PAIRS.keys())
def test_float32_features_match_float64_on_tricky_pairs(kinematics, seed):
    """ln m^2, angle and <p_a, p_b> in float32 equal the textbook forms evaluated in float64
    on the same (float32) momenta, for collinear photons, conversions and soft pairs
    (m^2 down to 5e-7 GeV^2, where the textbook forms in float32 are off by up to 10%)."""
    p4 = pair_at_angle(*kinematics, seed)
    names = ("ln_m2", "angle", "inner")
    values = pair_features(p4[None], torch.ones(1, 2, dtype=torch.bool), names)[0, :, 0, 1]
    a, b = p4.double()
    total = a + b
    ln_m2 = math.log(max(total[0] ** 2 - total[1:].square().sum(), 1e-8))
    angle = math.atan2(torch.linalg.cross(a[1:], b[1:]).norm(), a[1:] @ b[1:])
    inner = a[0] * b[0] - a[1:] @ b[1:]
    assert values[0].item() == pytest.approx(ln_m2, abs=1e-4)
    assert values[1].item() == pytest.approx(angle, rel=1e-4)
    assert values[2].item() == pytest.approx(inner.item(), rel=1e-4)


def test_autocast_changes_nothing():
    """Under bf16 autocast the features are computed in float32: the same values bit for bit."""
    p4, mask = synthetic_p4()
    adjacency = torch.ones(*mask.shape, mask.shape[1])
    expected = pair_features(p4, mask, PAIR_FEATURES, adjacency=adjacency)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = pair_features(p4, mask, PAIR_FEATURES, adjacency=adjacency)
    assert actual.dtype == torch.float32
    assert torch.equal(actual, expected)
    assert pair_features(p4.bfloat16(), mask, ("ln_m2",)).dtype == torch.float32


def synthetic_p4():
    """Dense four-momenta (B, L, 4) and mask of a few synthetic events."""
    from torch_geometric.utils import to_dense_batch

    from smartbkg.data.graphs import GraphStore
    from smartbkg.data.synthetic import decay_trees

    batch = GraphStore(decay_trees(4, num_particles=20, seed=1)).batch(range(4))
    x, mask = to_dense_batch(batch.x, batch.batch)
    return x[..., 4:8], mask


def generic_p4(seed):
    """(1, 6, 4) float64 four-vectors: timelike, spacelike, negative energy, at rest."""
    p4 = torch.randn(1, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    p4[0, 0, 1:] = 0.0                    # at rest
    p4[0, 1, 0] = -3.0                    # negative energy
    p4[0, 2, 0] = p4[0, 2, 1:].norm() * 3  # timelike
    return p4


@pytest.mark.parametrize("seed", range(3))
def test_inner_and_masses_equal_the_textbook_forms_for_any_four_vectors(seed):
    """The rewritten <p_a, p_b> is an identity, also where E_a E_b <= 0 or m^2 < 0."""
    p4 = generic_p4(seed)
    mask = torch.ones(1, 6, dtype=torch.bool)
    inner, ln_m2, diff_m2 = pair_features(p4, mask, ("inner", "ln_m2", "diff_m2"))[0]
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    expected = torch.einsum("ic,jc,c->ij", p4[0], p4[0], metric)
    torch.testing.assert_close(inner, expected)
    mass2 = expected.diagonal()
    torch.testing.assert_close(diff_m2, mass2[:, None] + mass2[None] - 2 * expected)
    total = mass2[:, None] + mass2[None] + 2 * expected
    torch.testing.assert_close(ln_m2, total.clamp(min=1e-8).log())


def test_gradients_are_finite():
    """Padding, particles at rest, identical, back-to-back and negative-energy pairs."""
    p4 = torch.cat([P4, generic_p4(0)], dim=1).requires_grad_(True)
    mask = torch.cat([MASK, torch.ones(1, 6, dtype=torch.bool)], dim=1)
    values = pair_features(p4, mask, PAIR_FEATURES, adjacency=torch.ones(1, 11, 11))
    (values * torch.randn_like(values)).sum().backward()
    assert torch.isfinite(p4.grad).all()
    assert (p4.grad[0, 4] == 0).all()   # padding
