"""Search spaces: the default per model, YAML overrides and restrictions, conditions, list
choices, and one-line errors for unknown models and parameters."""

import optuna
import pytest

from smartbkg.errors import ConfigError
from smartbkg.models import list_models
from smartbkg.train.config import RunConfig
from smartbkg.tune.space import MODEL_SPACES, TRAINING_SPACE, Parameter, SearchSpace, default_space, load_space


@pytest.mark.parametrize("model", sorted(MODEL_SPACES))
def test_default_space_of_every_model_builds_every_candidate(model):
    assert model in list_models()
    space = default_space(model)
    assert list(space.params) == [*TRAINING_SPACE, *MODEL_SPACES[model]]
    space.check(RunConfig())  # every bound and choice builds a valid config, model and loss


def test_suggest_honours_conditions_fixed_values_and_list_choices():
    space = load_space({"params": {"loss.name": {"type": "categorical", "choices": ["entropy", "entropeedup"]},
                                   "train.lr": 0.002, "train.weight_decay": None}}, "transformer")
    assert "train.weight_decay" not in space.params and space.params["train.lr"] == 0.002
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = space.suggest(trial)
        seen.add(values["loss.name"])
        assert ("loss.options.tau" in values) == (values["loss.name"] == "entropeedup")
        assert values["train.lr"] == 0.002 and values["model.name"] == "transformer"
        features = values["model.options.pair_features"]
        assert isinstance(features, list) and features[0] == "adjacency"
        assert trial.params["model.options.pair_features"] == ",".join(features)  # Optuna stores a string
        config = RunConfig().with_overrides(values)
        assert config.model.options["pair_features"] == features
        study.tell(trial, 0.0)
    assert seen == {"entropy", "entropeedup"}


def test_space_round_trips_through_its_dict():
    space = default_space("gatgap")
    again = SearchSpace(space.model, space.to_dict()["params"])
    assert again.to_dict() == space.to_dict()
    assert again.params["model.options.units"] == Parameter("model.options.units", "int", 8, 64, True)


@pytest.mark.parametrize("params, model, message", [
    ({}, "nosuchnet", "unknown model 'nosuchnet'"),
    ({"model.options.nonsense": {"type": "int", "low": 1, "high": 4}}, "gatgap",
     "parameter 'model.options.nonsense' = 1: model 'gatgap'"),
    ({"train.nonsense": 3}, "gatgap", "unknown option(s) ['train.nonsense']"),
    ({"loss.options.tau": {"type": "float", "low": 1, "high": 3}}, "gatgap", "unknown option(s) tau for the entropy"),
    ({"model.options.attention": {"type": "categorical", "choices": ["gat", "gatv9"]}}, "gatgap",
     "parameter 'model.options.attention' = 'gatv9'"),
    ({"train.lr": {"type": "float", "low": 1e-3}}, "gatgap", "needs numbers low and high"),
    ({"train.lr": {"type": "uniform", "low": 0, "high": 1}}, "gatgap", "type must be one of"),
    ({"train.lr": {"type": "float", "low": 1, "high": 2, "when": {"train.later": 1}}}, "gatgap",
     "not an earlier parameter"),
])
def test_bad_spaces_are_one_line_errors(params, model, message):
    with pytest.raises(ConfigError) as info:
        load_space({"model": model, "params": params}).check(RunConfig())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_space_file_model_must_agree(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model: gatgap\nparams: {}\nextra: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['extra'\]"):
        load_space(path)
    path.write_text("model: gatgap\n")
    with pytest.raises(ConfigError, match="contradicts --model 'lorentz'"):
        load_space(path, "lorentz")
    assert load_space(path).model == "gatgap"
