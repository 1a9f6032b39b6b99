"""Pair features against hand-computed values, padding, clamping and invariances."""

import math

import numpy as np
import pytest
import torch

from smartbkg.data.pair_features import PAIR_FEATURES, dense_adjacency, pair_features
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
    batch = torch.tensor([0, 0, 0, 1, 1])
    adjacency = dense_adjacency(edges, batch, 4)
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
