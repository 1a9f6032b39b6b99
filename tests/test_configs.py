"""The shipped run configurations (configs/*.yaml) load and validate as smartbkg-train reads them."""

from pathlib import Path

import pytest

from smartbkg.train.config import RunConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_names_its_skim(path):
    config = RunConfig.from_file(path)
    config.validate()
    assert config.data.skims == [path.stem] and config.out == f"runs/{path.stem}"
