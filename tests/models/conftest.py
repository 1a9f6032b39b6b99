"""Tiny configurations of every model and small batches of random decay trees."""

import pytest

from smartbkg.data.table import EVENT_TYPES
from tests.models.batches import synthetic_batch

VOCAB = 50

#: (registry name, tiny config) of every model variant the property tests cover.
TINY_MODELS = [
    ("gatgap", dict(units=8, heads=2, layers=2)),
    ("gatgap", dict(units=8, heads=2, layers=2, event_dim=4)),
    ("gatgap", dict(units=8, heads=2, layers=2, attention="gatv2")),
    ("gatgap", dict(units=8, heads=2, layers=2, detector_features=True)),
    ("transformer", dict(dim=16, heads=2, blocks=2, cls_blocks=1, pair_hidden=8)),
    ("transformer", dict(dim=16, heads=2, blocks=2, cls_blocks=1, pair_hidden=8,
                         pair_bias="per_block",
                         pair_features=("adjacency", "ln_m2", "angle", "ln_delta", "ln_kt",
                                        "ln_z"))),
    ("transformer", dict(dim=16, heads=2, blocks=1, cls_blocks=1, pair_features=())),
    ("lorentz", dict(dim=16, heads=2, blocks=2, cls_blocks=1, pair_hidden=8)),
    ("lorentz", dict(dim=16, heads=2, blocks=3, cls_blocks=1, pair_hidden=8,
                     vector_update=True)),
    ("lorentz", dict(dim=16, heads=2, blocks=2, cls_blocks=1, pair_hidden=8, invariant=False,
                     adjacency=False)),
    ("deepsets", dict(hidden=16, layers=2)),
    ("deepsets", dict(hidden=16, layers=2, detector_features=True)),
]


def model_id(param):
    name, cfg = param
    return name + "".join(f"-{k}={v}" for k, v in cfg.items() if k in
                          ("event_dim", "attention", "pair_bias", "pair_features",
                           "vector_update", "invariant", "detector_features"))


@pytest.fixture(params=TINY_MODELS, ids=[model_id(p) for p in TINY_MODELS])
def tiny_model(request):
    """(name, model) of a tiny model with 2 skims."""
    from smartbkg.models import build_model

    name, cfg = request.param
    import torch

    torch.manual_seed(0)
    # The data's sizes, as the trainer passes them: the synthetic events have the 7 generic types.
    return name, build_model(name, num_skims=2, num_event_types=len(EVENT_TYPES), vocab_size=VOCAB, **cfg)


@pytest.fixture(scope="session")
def events():
    """Six random events of varied sizes (2 skims)."""
    return synthetic_batch(6, num_particles=12, num_skims=2, vocab_size=VOCAB, seed=3)

