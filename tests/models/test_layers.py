"""Shared layers: the fixed input encoding, the oneDNN-backed Linear, small helpers."""

import math

import numpy as np
import pytest
import torch

from smartbkg.models.layers import (DETECTOR_SCALES, MLP, NODE_SCALES, Linear, NodeFeatureEncoding, detector_features,
                                    encode_invariant)


def test_node_encoding_is_asinh_of_scaled_features():
    x = torch.tensor([[1e-3, 1e-2, -1e-2, 10.0, 5.29, 0.0, -3.0, 1.0]])
    expected = [math.asinh(v / s) for v, s in zip(x[0].tolist(), NODE_SCALES)]
    torch.testing.assert_close(NodeFeatureEncoding()(x)[0], torch.tensor(expected))
    assert NodeFeatureEncoding()(x)[0, 0] == math.asinh(1.0)   # 1 ps maps to asinh(1)
    assert torch.isfinite(NodeFeatureEncoding()(torch.full((1, 8), -1e30))).all()


def test_encode_invariant():
    assert encode_invariant(torch.tensor(0.01)).item() == pytest.approx(math.asinh(1.0))


def test_linear_equals_nn_linear_with_and_without_grad():
    torch.manual_seed(0)
    layer = Linear(16, 8)
    x = torch.randn(50, 16)
    reference = torch.nn.functional.linear(x, layer.weight, layer.bias)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), reference)
        torch.testing.assert_close(layer(x.view(5, 10, 16)), reference.view(5, 10, 8))
    out = layer(x)  # training path keeps autograd
    out.sum().backward()
    torch.testing.assert_close(layer.weight.grad, torch.ones(8, 50) @ x)


def test_mlp_widths():
    mlp = MLP((3, 7, 5))
    assert [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)] == [7, 5]
    assert mlp(torch.zeros(2, 3)).shape == (2, 5)


def test_detector_features_match_the_detector_and_ignore_rotations_about_the_beam():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(0, 1, (500, 8)), dtype=torch.float64)
    features = detector_features(x)
    vx, vy, vz, px, py, pz = (x[:, k].numpy() for k in (1, 2, 3, 5, 6, 7))
    pt = np.hypot(px, py)
    # the tracking acceptance of smartbkg.simulation.detector: |d0| and z0 of the straight line
    d0 = np.abs(vx * py - vy * px) / pt
    z0 = vz - (vx * px + vy * py) / pt**2 * pz
    assert np.allclose(np.abs(np.sinh(features[:, 2].numpy()) * DETECTOR_SCALES[1]), d0)
    assert np.allclose(np.sinh(features[:, 3].numpy()) * DETECTOR_SCALES[2], z0)
    assert np.allclose(features[:, 1].numpy(), pz / np.sqrt(pt**2 + pz**2))
    phi = 0.7
    rot = torch.tensor([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]], dtype=torch.float64)
    turned = x.clone()
    turned[:, 1:3], turned[:, 5:7] = x[:, 1:3] @ rot.T, x[:, 5:7] @ rot.T
    assert torch.allclose(detector_features(turned), features)
    # at rest or along the beam: finite
    still = torch.zeros(2, 8, dtype=torch.float64)
    still[1, 7] = 1.0
    assert torch.isfinite(detector_features(still)).all()
    assert NodeFeatureEncoding(detector_features=True)(x.float()).shape == (500, 13)
