"""Fixtures of the training tests: one small embedded sample, generated once per session."""

import numpy as np
import pytest
import torch

from smartbkg.train.config import RunConfig
from smartbkg.train.evaluation import Predictions

#: Events of the shared sample: enough for a few hundred training events with ~16 % tau_generic passes.
SAMPLE_EVENTS = 1500


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """A folder of parquet shards of the embedded generator (1500 events, seed 11)."""
    from smartbkg.simulation import produce

    folder = tmp_path_factory.mktemp("sample")
    produce(folder, SAMPLE_EVENTS, seed=11)
    return folder


@pytest.fixture
def tiny_config(sample_dir):
    """``tiny_config(out, model=..., **sections)``: a run config for the shared sample."""
    return lambda out, **kwargs: make_config(sample_dir, out, **kwargs)


def make_config(sample_dir, out, *, model="deepsets", options=None, **sections):
    """A fast run on ``sample_dir``: a tiny model, batches of 64, 3 epochs, quiet.

    ``sections`` update the sections of the config dict, e.g. ``train={"epochs": 2}``.
    """
    default_options = {"deepsets": {"hidden": 16, "layers": 2, "pdg_dim": 8},
                       "gatgap": {"units": 8, "layers": 2, "heads": 2},
                       "transformer": {"dim": 16, "heads": 2, "blocks": 1, "cls_blocks": 1, "pair_hidden": 8},
                       "lorentz": {"dim": 16, "heads": 2, "blocks": 1, "cls_blocks": 1, "pair_hidden": 8}}
    values = {
        "data": {"path": [str(sample_dir)], "skims": ["tau_generic"], "batch_size": 64},
        "model": {"name": model, "options": options if options is not None else default_options[model]},
        "loss": {"name": "entropy"},
        "train": {"epochs": 3, "lr": 5e-3, "quiet": True, "patience": None},
        "out": str(out),
    }
    for name, changes in sections.items():
        values[name] = {**values.get(name, {}), **changes}
    return RunConfig.from_dict(values)


@pytest.fixture
def separated_toy():
    """Predictions of one skim "s" with logits x ~ N(3y, 1), 400 events, y ~ Bernoulli(0.5)
    (seeded): so well separated that the top bins of equal signal hold no background."""
    rng = np.random.default_rng(7)
    y = (rng.random(400) < 0.5).astype(np.float32)
    x = rng.normal(3.0 * y, 1.0).astype(np.float32)
    return Predictions(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None], torch.ones(400),
                       torch.zeros(400, dtype=torch.int64), 0.0)
