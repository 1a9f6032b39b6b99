"""Shared layers: the fixed input encoding, the oneDNN-backed Linear, small helpers."""

import math

import pytest
import torch

from smartbkg.models.layers import MLP, NODE_SCALES, Linear, NodeFeatureEncoding, encode_invariant


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
