"""Particle transformer: masks keep padding inert, pair biases matter, sizes and options."""

import pytest
import torch
from torch_geometric.utils import to_dense_batch

from tests.models.batches import synthetic_batch
from smartbkg.data.graphs import host_offsets
from smartbkg.data.pair_features import dense_adjacency
from smartbkg.errors import ConfigError
from smartbkg.models import build_model
from smartbkg.models.layers import ClassAttentionBlock, SelfAttentionBlock, attention_mask
from smartbkg.models import transformer
from smartbkg.models.transformer import dense_layout, real_pairs


def test_attention_mask_semantics():
    valid = torch.tensor([[True, True, False]])
    mask = attention_mask(valid)
    assert mask.shape == (1, 1, 3, 3)
    assert mask[0, 0].tolist() == [[True, True, False], [True, True, False], [True, True, True]]
    lone = attention_mask(torch.tensor([[True, False, False]]))
    assert lone[0, 0, 1].tolist() == [True, True, False]
    bias = torch.arange(9.0).view(1, 1, 3, 3)
    float_mask = attention_mask(valid, bias)
    assert float_mask[0, 0, 0].tolist() == [0.0, 1.0, float("-inf")]
    assert float_mask[0, 0, 2].tolist() == [6.0, 7.0, 8.0]  # padded query: real keys and itself


@pytest.mark.parametrize("with_bias", [False, True])
def test_padded_tokens_never_reach_real_ones(with_bias):
    torch.manual_seed(0)
    block = SelfAttentionBlock(8, 2).eval()
    cls_block = ClassAttentionBlock(8, 2).eval()
    valid = torch.tensor([[True] * 4 + [False] * 3])
    bias = torch.randn(1, 2, 7, 7) if with_bias else None
    x = torch.randn(1, 7, 8)
    garbage = x.clone()
    garbage[:, 4:] = 1e4 * torch.randn(1, 3, 8)
    cls = torch.randn(1, 1, 8)
    cls_mask = torch.cat([torch.ones(1, 1, dtype=torch.bool), valid], 1)[:, None, None]
    with torch.no_grad():
        mask = attention_mask(valid, bias)
        out, out_garbage = block(x, mask), block(garbage, mask)
        torch.testing.assert_close(out_garbage[:, :4], out[:, :4])
        assert torch.isfinite(out_garbage).all()
        torch.testing.assert_close(cls_block(cls, garbage, cls_mask), cls_block(cls, x, cls_mask))


def test_pair_bias_changes_the_logits():
    """Breaking the decay tree (no edges) changes the output: the adjacency bias is used."""
    torch.manual_seed(0)
    batch = synthetic_batch(3, num_particles=12, vocab_size=50, seed=1)
    model = build_model("transformer", num_skims=1, vocab_size=50, dim=16, heads=2, blocks=1,
                        cls_blocks=1, pair_features=("adjacency",)).eval()
    no_edges = batch.clone()
    no_edges.edge_index = batch.edge_index[:, :0]
    with torch.no_grad():
        assert not torch.allclose(model(batch), model(no_edges))


def test_pair_bias_equals_the_dense_computation():
    """Embedding each unordered real pair once and mirroring equals the full L x L MLP."""
    torch.manual_seed(0)
    batch = synthetic_batch(4, num_particles=12, vocab_size=50, seed=2)
    model = build_model("transformer", num_skims=1, vocab_size=50, dim=16, heads=2, blocks=2,
                        cls_blocks=1, pair_bias="per_block",
                        pair_features=("adjacency", "ln_m2", "angle", "ln_kt", "ln_z"))
    length, num_pairs = dense_layout(batch.ptr)
    x, mask = to_dense_batch(batch.x, batch.batch)
    assert x.shape[1] == length
    adjacency = dense_adjacency(batch.edge_index, batch.batch, batch.ptr, length)
    masks = model.attention_biases(x[..., 4:8], mask, adjacency, real_pairs(mask, num_pairs))
    features = model.pair_inputs(x[..., 4:8], mask, adjacency)
    dense = model.pair_embedding(features.permute(0, 2, 3, 1))
    for block, block_mask in enumerate(masks):
        expected = dense.permute(0, 3, 1, 2)[:, 2 * block: 2 * block + 2]
        real = (mask[:, :, None] & mask[:, None, :])[:, None].expand_as(expected)
        torch.testing.assert_close(block_mask[real], expected[real])
        padded_key = (~mask[:, None, None, :] & ~torch.eye(x.shape[1], dtype=torch.bool))
        assert torch.isneginf(block_mask[padded_key.expand_as(block_mask)]).all()


def test_default_size_is_about_two_million():
    model = build_model("transformer", num_skims=51, vocab_size=600)
    assert 1.9e6 < sum(p.numel() for p in model.parameters()) < 2.2e6


@pytest.mark.parametrize("cfg", [dict(pair_bias="sometimes"), dict(pair_features=("mass",)),
                                 dict(dim=30, heads=8)])
def test_bad_options_are_config_errors(cfg):
    with pytest.raises(ConfigError):
        build_model("transformer", num_skims=1, vocab_size=50, **cfg)


def test_bf16_autocast_keeps_pair_features_in_float32():
    """Under bf16 autocast the pair features are the float32 ones bit for bit, and the logits
    agree with float32 to bf16 precision. The model's attention is dominated by its ln m^2
    bias (last pair layer x 20): pair features computed in bf16 (ln m^2 off by up to 15) move
    these logits by 0.029, correct ones by 0.005."""
    batch = synthetic_batch(8, num_particles=30, num_skims=3, vocab_size=50, seed=1)
    torch.manual_seed(0)
    model = build_model("transformer", num_skims=3, vocab_size=50, dim=32, heads=4, blocks=2,
                        cls_blocks=1, pair_features=("ln_m2",)).eval()
    seen = []
    pair_inputs = model.pair_inputs
    model.pair_inputs = lambda *args: seen.append(pair_inputs(*args)) or seen[-1]
    with torch.no_grad():
        model.pair_embedding[-1].weight.mul_(20)
        expected = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            actual = model(batch)
    assert seen[1].dtype == torch.float32 and torch.equal(seen[1], seen[0])
    assert actual.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected, atol=1e-2, rtol=0)


@pytest.mark.parametrize("name", ["transformer", "lorentz"])
def test_sizes_come_from_the_host_offsets(name, monkeypatch):
    """The padded length and pair count are read from the CPU copy of the offsets (no
    host-device synchronisation for a batch moved to a GPU), not from ``batch.ptr``."""
    batch = synthetic_batch(3, num_particles=9, vocab_size=50, seed=4)
    batch.ptr = batch.ptr.clone()  # as after a move to a GPU: ptr is not the CPU offsets' tensor
    seen = []
    monkeypatch.setattr(transformer, "dense_layout", lambda ptr: seen.append(ptr) or dense_layout(ptr))
    model = build_model(name, num_skims=1, vocab_size=50, dim=16, heads=2, blocks=1, cls_blocks=1,
                        pair_hidden=8)
    model(batch)
    assert len(seen) == 1 and seen[0] is host_offsets(batch) and seen[0] is not batch.ptr
