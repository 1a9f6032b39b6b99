"""Fixtures of the tuning tests: one small embedded sample and the config of tiny trials."""

import pytest
import yaml

from smartbkg.train.config import RunConfig

#: A tiny search space: deepsets widths, learning rate and loss; everything else fixed.
TINY_SPACE = {
    "model": "deepsets",
    "params": {
        "loss.name": {"type": "categorical", "choices": ["entropy", "entropeedup"]},
        "model.options.hidden": {"type": "categorical", "choices": [8, 16]},
        "model.options.layers": 2,
        "model.options.pdg_dim": 4,
        "data.batch_size": 64,
        "train.weight_decay": None,
        "train.schedule": None,
    },
}


@pytest.fixture(scope="session")
def tune_sample(tmp_path_factory):
    """Parquet shards of 800 embedded-generator events (seed 12)."""
    from smartbkg.simulation import produce

    folder = tmp_path_factory.mktemp("tune-sample")
    produce(folder, 800, seed=12)
    return folder


@pytest.fixture
def base_config(tune_sample):
    """The trials' common config: the sample, tau_generic, 2 epochs of a deepsets, quiet."""
    return RunConfig.from_dict({
        "data": {"path": [str(tune_sample)], "skims": ["tau_generic"], "batch_size": 64},
        "model": {"name": "deepsets"},
        "train": {"epochs": 2, "lr": 5e-3, "quiet": True, "patience": None},
    })


@pytest.fixture
def space_file(tmp_path):
    """``space_file(params=None, model="deepsets")``: TINY_SPACE (updated by ``params``) as a YAML file."""
    def write(params=None, model="deepsets"):
        path = tmp_path / "space.yaml"
        path.write_text(yaml.safe_dump({"model": model, "params": {**TINY_SPACE["params"], **(params or {})}}))
        return path
    return write


@pytest.fixture
def tiny_space():
    return TINY_SPACE
