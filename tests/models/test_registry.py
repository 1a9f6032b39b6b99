"""The model registry: build by name, clear errors for unknown names and options."""

import pytest

from smartbkg.errors import ConfigError
from smartbkg.models import build_model, list_models, register_model


def test_all_models_registered():
    assert {"gatgap", "transformer", "lorentz", "deepsets"} <= set(list_models())


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ConfigError, match="gatgap"):
        build_model("resnet", num_skims=1)


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="gatgap.*units_per_head"):
        build_model("gatgap", num_skims=1, units_per_head=3)


def test_missing_num_skims_is_a_config_error():
    with pytest.raises(ConfigError, match="num_skims"):
        build_model("deepsets")


def test_name_clash_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("gatgap")(type("Other", (), {}))


@pytest.mark.parametrize("name, option", [("transformer", "dim"), ("gatgap", "units"), ("deepsets", "hidden")])
def test_negative_size_is_a_config_error(name, option):
    with pytest.raises(ConfigError, match=rf"model '{name}': sizes must be >= 0, got \{{'{option}': -3\}}"):
        build_model(name, num_skims=1, **{option: -3})
