"""Fixtures of the filter tests: one small embedded sample and one tiny trained run per session."""

import pytest

from smartbkg.train.config import RunConfig
from smartbkg.train.loop import train

#: Skims of the tiny run: the two of the embedded sample with the most passing events.
SKIMS = ["tau_generic", "leptonic_untagged"]


@pytest.fixture(scope="session")
def run_skims():
    """The skims of the tiny run, in its output order."""
    return list(SKIMS)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """Parquet shards of the embedded generator: 2000 events, seed 21 (shards of 800 events)."""
    from smartbkg.simulation import produce

    folder = tmp_path_factory.mktemp("sample")
    produce(folder, 2000, seed=21, events_per_shard=800)
    return folder


@pytest.fixture(scope="session")
def run_dir(sample_dir, tmp_path_factory):
    """A finished run folder: a tiny DeepSets trained 2 epochs on :data:`SKIMS` of ``sample_dir``."""
    out = tmp_path_factory.mktemp("run") / "run"
    train(RunConfig.from_dict({
        "data": {"path": [str(sample_dir)], "skims": SKIMS, "batch_size": 64},
        "model": {"name": "deepsets", "options": {"hidden": 16, "layers": 2, "pdg_dim": 8}},
        "loss": {"name": "entropy"},
        "train": {"epochs": 2, "lr": 5e-3, "quiet": True, "patience": None},
        "out": str(out),
    }))
    return out


@pytest.fixture(scope="session")
def features_run_dir(sample_dir, tmp_path_factory):
    """A finished run folder like ``run_dir``, with the generator-level skim emulation (``data.event_features``)."""
    out = tmp_path_factory.mktemp("run_features") / "run"
    train(RunConfig.from_dict({
        "data": {"path": [str(sample_dir)], "skims": SKIMS, "batch_size": 64, "event_features": True},
        "model": {"name": "deepsets", "options": {"hidden": 16, "layers": 2, "pdg_dim": 8}},
        "loss": {"name": "entropy"},
        "train": {"epochs": 2, "lr": 5e-3, "quiet": True, "patience": None},
        "out": str(out),
    }))
    return out
