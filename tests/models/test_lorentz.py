"""The Lorentz-invariant attention model is invariant under boosts and rotations."""

import pytest
import torch

from tests.models.batches import synthetic_batch
from tests.models.invariance import assert_invariant, lorentz_matrix, transform_momenta
from smartbkg.models import build_model
from smartbkg.models.layers import Attention, attention_mask
from smartbkg.models.lorentz import update_vectors

TINY = dict(dim=16, heads=2, blocks=3, cls_blocks=1, pair_hidden=8)


@pytest.fixture(scope="module")
def events():
    return synthetic_batch(5, num_particles=25, num_skims=2, vocab_size=50, seed=4)


def build(**cfg):
    torch.manual_seed(0)
    model = build_model("lorentz", num_skims=2, vocab_size=50, **{**TINY, **cfg})
    for mixer in model.vector_mixers or ():  # make the vector update non-trivial
        torch.nn.init.normal_(mixer.weight, std=0.5)
        torch.nn.init.normal_(mixer.bias, std=0.5)
    return model


def test_lorentz_matrix_preserves_the_metric():
    metric = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64))
    for seed in range(5):
        matrix = torch.as_tensor(lorentz_matrix(seed), dtype=torch.float64)
        torch.testing.assert_close(matrix.T @ metric @ matrix, metric)
        assert matrix[0, 0] > 1.0  # a real boost, forward in time


@pytest.mark.parametrize("cfg", [{}, {"vector_update": True}, {"adjacency": False}],
                         ids=["plain", "vector_update", "no_adjacency"])
@pytest.mark.parametrize("seed", range(3))
def test_invariant_under_boosts_and_rotations(events, cfg, seed):
    model = build(**cfg)
    assert_invariant(model, events, lambda b: transform_momenta(b, lorentz_matrix(seed)),
                     atol=1e-4, rtol=1e-4)


def test_non_invariant_inputs_break_invariance(events):
    """With the raw node features switched on, a boost changes the logits (the check can fail)."""
    model = build(invariant=False).eval()
    with torch.no_grad():
        difference = model(events) - model(transform_momenta(events, lorentz_matrix(0)))
    assert difference.abs().max() > 1e-2


def test_vector_update_changes_the_result(events):
    """The equivariant update is active: switching its coefficients off changes the logits."""
    model = build(vector_update=True).eval()
    with torch.no_grad():
        with_update = model(events)
        for mixer in model.vector_mixers:
            torch.nn.init.zeros_(mixer.weight)
            torch.nn.init.zeros_(mixer.bias)
        assert not torch.allclose(model(events), with_update, atol=1e-4)


def test_default_size_is_about_two_million():
    model = build_model("lorentz", num_skims=1, vocab_size=600)
    assert 1.9e6 < sum(p.numel() for p in model.parameters()) < 2.2e6


def test_vector_mixing_is_equivariant_in_float32_under_autocast(events):
    """Under bf16 autocast the attention mixes four-momenta in float32: mixing boosted momenta
    gives the boosted mixture to float32 precision (momenta rounded to bf16 would be off by
    about 4e-3 relative)."""
    torch.manual_seed(0)
    attention = Attention(16, 2).eval()
    tokens = torch.randn(2, 9, 16)
    p4 = events.x[:18, 4:8].reshape(2, 9, 4)
    matrix = torch.as_tensor(lorentz_matrix(1), dtype=torch.float32)
    mask = attention_mask(torch.ones(2, 9, dtype=torch.bool))
    boosted = p4 @ matrix.T
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _, mixed = attention(tokens, tokens, mask, vectors=p4)
        _, mixed_boosted = attention(tokens, tokens, mask, vectors=boosted)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed_boosted, mixed @ matrix.T, rtol=1e-5, atol=1e-5)


def test_vector_update_is_float32_under_autocast():
    """The update p4 + sum_h c^h mixed^h is computed in float32 even with bf16 coefficients."""
    generator = torch.Generator().manual_seed(0)
    p4 = 3 * torch.rand(2, 5, 4, generator=generator)
    mixed = 3 * torch.rand(2, 2, 5, 4, generator=generator)
    coefficients = torch.rand(2, 5, 2, generator=generator).bfloat16()
    expected = p4.double() + torch.einsum("bhlc,blh->blc", mixed.double(), coefficients.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        updated = update_vectors(p4, mixed, coefficients)
    assert updated.dtype == torch.float32
    torch.testing.assert_close(updated.double(), expected, rtol=1e-6, atol=0)
