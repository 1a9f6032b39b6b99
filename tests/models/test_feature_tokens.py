import torch

from smartbkg.data.features import FeatureDataset
from smartbkg.models import build_model


def _batch(n=16, f=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    return FeatureDataset(x.numpy(), (x[:, 0] > 0).numpy().astype(int), ("signal",), [f"f{i}" for i in range(f)]).batch(
        torch.arange(n))


def test_feature_token_model_shapes_and_feature_identity():
    torch.manual_seed(0)
    model = build_model("feature_tokens", num_features=6, dim=16, heads=2, blocks=2).eval()
    batch = _batch()
    out = model(batch)
    assert out.shape == (16, 1) and torch.isfinite(out).all()
    # each event alone gives the same output as in the batch (no mixing between events)
    single = model(FeatureDataset(batch.x[:1].numpy(), [1], ("signal",), [f"f{i}" for i in range(6)]).batch(
        torch.arange(1)))
    torch.testing.assert_close(single, out[:1], atol=1e-5, rtol=1e-5)
    # the features are not a set: swapping two features changes the output
    swapped = _batch()
    swapped.x = swapped.x[:, [1, 0, 2, 3, 4, 5]]
    assert not torch.allclose(model(swapped), out, atol=1e-4)


def test_feature_models_learn_a_simple_rule():
    torch.manual_seed(1)
    for name, options in (("feature_tokens", {"dim": 16, "heads": 2, "blocks": 1}), ("dnn", {"hidden": 32})):
        model = build_model(name, num_features=6, **options)
        batch = _batch(256, seed=2)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(150):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch.y)
            loss.backward()
            optimizer.step()
        accuracy = ((model(batch) > 0).float() == batch.y).float().mean()
        assert accuracy > 0.95, (name, float(accuracy))
