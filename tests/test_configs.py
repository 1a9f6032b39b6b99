"""The shipped run configurations (configs/*.yaml) load and validate as smartbkg-train reads them:
``all_skims.yaml`` pre-trains on every skim of the embedded sample, each ``<skim>.yaml`` fine-tunes
its checkpoint on one skim, on the same events."""

from pathlib import Path

import pytest

from smartbkg.simulation.skims import SKIMS
from smartbkg.train.config import RunConfig

FOLDER = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(FOLDER.glob("*.yaml"))
PER_SKIM = [p for p in CONFIGS if p.stem != "all_skims"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_says_how_to_train_it(path):
    config = RunConfig.from_file(path)
    config.validate()
    assert config.out == f"runs/{path.stem}" and config.data.event_features
    assert f"smartbkg-train --config configs/{path.stem}.yaml" in path.read_text()


def test_pre_training_covers_every_skim():
    config = RunConfig.from_file(FOLDER / "all_skims.yaml")
    assert sorted(config.data.skims) == sorted(SKIMS) and config.train.init_from is None


@pytest.mark.parametrize("path", PER_SKIM, ids=[p.stem for p in PER_SKIM])
def test_per_skim_config_fine_tunes_the_pre_training_on_its_events(path):
    pre, config = RunConfig.from_file(FOLDER / "all_skims.yaml"), RunConfig.from_file(path)
    assert config.data.skims == [path.stem] and path.stem in SKIMS
    assert config.train.init_from == "runs/all_skims/checkpoints/best.pt" and config.train.reset_head
    assert config.data.cache_dir == "runs/all_skims/data"  # the pre-training's generated sample
    same = ("generate_events", "generate_seed", "split_seed", "val_fraction", "test_fraction", "event_features")
    assert [getattr(config.data, k) for k in same] == [getattr(pre.data, k) for k in same]
    assert config.model == pre.model
