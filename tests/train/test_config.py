"""Run configuration: YAML/JSON round trip, overrides, coercion and clear errors."""

import json

import pytest

from smartbkg.errors import ConfigError
from smartbkg.train.config import RunConfig, apply_override, parse_assignment, read_config_file


def _custom():
    return RunConfig.from_dict({
        "data": {"path": ["a.parquet", "b"], "skims": ["hadronic", "radiative"], "batch_size": 64,
                 "retention": {"hadronic": 0.05}, "preprocess": {"vertex_cut": 5.0}},
        "model": {"name": "transformer", "options": {"dim": 32, "depth": 2}},
        "loss": {"name": "entropeedup", "options": {"tau": 5.0}},
        "train": {"epochs": 7, "lr": 3e-4, "schedule": "cosine", "monitor": "speedup", "patience": None},
        "out": "runs/x",
    })


def test_yaml_round_trip(tmp_path):
    config = _custom()
    config.to_yaml(tmp_path / "config.yaml")
    again = RunConfig.from_file(tmp_path / "config.yaml")
    assert again == config
    assert again.data.retention == {"hadronic": 0.05}
    assert again.train.patience is None and again.train.lr == 3e-4


def test_json_round_trip(tmp_path):
    config = _custom()
    (tmp_path / "c.json").write_text(json.dumps(config.to_dict()))
    assert RunConfig.from_file(tmp_path / "c.json") == config


def test_partial_file_keeps_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 3\n  lr: 1e-3\n")  # YAML 1.1 reads 1e-3 as a string
    config = RunConfig.from_file(tmp_path / "c.yaml")
    assert config.train.epochs == 3 and config.train.lr == 1e-3 and isinstance(config.train.lr, float)
    assert config.model == RunConfig().model


def test_overrides_take_precedence_and_coerce():
    config = _custom().with_overrides({"train.epochs": "12", "data.skims": "hadronic, tau",
                                       "model.options.dim": 64, "out": "elsewhere"})
    assert config.train.epochs == 12
    assert config.data.skims == ["hadronic", "tau"]
    assert config.model.options == {"dim": 64, "depth": 2}
    assert config.out == "elsewhere"


def test_parse_assignment_reads_yaml_values():
    assert parse_assignment("train.lr=0.002") == ("train.lr", 0.002)
    assert parse_assignment("data.skims=[a, b]") == ("data.skims", ["a", "b"])
    assert parse_assignment("train.patience=null") == ("train.patience", None)
    with pytest.raises(ConfigError, match="SECTION.OPTION=VALUE"):
        parse_assignment("train.lr")


@pytest.mark.parametrize("values, match", [
    ({"train": {"epochs": -1}}, "train.epochs = -1 must be >= 0"),
    ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer"),
    ({"train": {"lr": "fast"}}, "train.lr: expected a finite number"),
    ({"train": {"monitor": "accuracy"}}, "train.monitor"),
    ({"train": {"schedule": "step"}}, "train.schedule"),
    ({"train": {"freeze_backbone": True}}, "needs train.init_from"),
    ({"train": {"bogus": 1}}, r"unknown option\(s\) \['train.bogus'\]"),
    ({"training": {}}, "unknown config section"),
    ({"data": {"val_fraction": 0.6, "test_fraction": 0.5}}, "must be < 1"),
    ({"data": {"val_fraction": 0.0}}, "data.val_fraction"),
    ({"data": {"batch_size": 0}}, "data.batch_size"),
    ({"data": {"skims": []}}, "data.skims"),
    ({"data": {"skims": ["a"]}, "train": {"monitor_skim": "b"}}, "train.monitor_skim"),
    ({"data": {"retention": {"a": 1.5}}}, "data.retention.a"),
    ({"train": {"quiet": "yes"}}, "expected true/false"),
    ({"train": {"freeze_backbone": True, "init_from": "a.pt", "lr_backbone": 1e-4}}, "contradicts train.freeze_backbone"),
    ({"data": {"path": ["x"], "generate_seed": 5}}, "data.generate_seed = 5 applies only to the embedded sample"),
    ({"data": {"path": ["x"], "cache_dir": "c"}}, "data.cache_dir = 'c' applies only to the embedded sample"),
    ({"out": ""}, "option out = '' must name the run folder"),
])
def test_impossible_values_raise_one_line(values, match):
    with pytest.raises(ConfigError, match=match) as info:
        RunConfig.from_dict(values)
    assert "\n" not in str(info.value)


def test_override_of_unknown_section():
    with pytest.raises(ConfigError, match="unknown option 'optim.lr'"):
        apply_override({}, "optim.lr", 1)
    with pytest.raises(ConfigError, match="option out = None must name the run folder"):
        apply_override({"out": "runs/x"}, "out", None)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed config file"):
        read_config_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(tmp_path / "list.yaml")
