"""Models that take the generator-level skim emulation (``num_event_features``): the features
reach the output, a batch without them is refused, and models without the option are unchanged."""

import pytest
import torch

from smartbkg.data.graphs import GraphStore
from smartbkg.data.skim_emulation import FEATURES
from smartbkg.data.synthetic import decay_trees
from smartbkg.errors import ConfigError
from smartbkg.models import build_model

OPTIONS = {"deepsets": {"hidden": 16, "layers": 2}, "gatgap": {"units": 8, "heads": 2, "layers": 2},
           "transformer": {"dim": 16, "heads": 2, "blocks": 1, "cls_blocks": 1, "pair_hidden": 8},
           "lorentz": {"dim": 16, "heads": 2, "blocks": 1, "cls_blocks": 1, "pair_hidden": 8}}


@pytest.fixture(scope="module")
def batch():
    table = decay_trees(12, num_skims=2, seed=3)
    return GraphStore(table, event_features=True).batch(range(12))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_event_features_change_the_output(name, batch):
    torch.manual_seed(0)
    model = build_model(name, num_skims=2, num_event_features=len(FEATURES), **OPTIONS[name]).eval()
    with torch.no_grad():
        out = model(batch)
        changed = batch.clone()
        changed.event_features = changed.event_features.clone()
        changed.event_features[3] += 1.0
        out_changed = model(changed)
    assert out.shape == (12, 2) and torch.isfinite(out).all()
    # only event 3 moves: the features enter per event
    assert not torch.allclose(out[3], out_changed[3])
    torch.testing.assert_close(torch.cat([out[:3], out[4:]]), torch.cat([out_changed[:3], out_changed[4:]]))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_a_batch_without_event_features_is_refused(name):
    model = build_model(name, num_skims=2, num_event_features=len(FEATURES), **OPTIONS[name])
    plain = GraphStore(decay_trees(4, num_skims=2, seed=1)).batch(range(4))
    with pytest.raises(ConfigError, match="event_features"):
        model(plain)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_models_without_the_option_ignore_the_features(name, batch):
    torch.manual_seed(0)
    model = build_model(name, num_skims=2, **OPTIONS[name]).eval()
    assert model.event_features is None
    plain = batch.clone()
    del plain.event_features
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(plain))


def test_models_that_do_not_take_event_features_say_so():
    with pytest.raises(ConfigError, match="num_event_features"):
        build_model("dnn", num_features=3, num_event_features=len(FEATURES))
