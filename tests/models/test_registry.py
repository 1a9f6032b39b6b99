"""The model registry: build by name, clear errors for unknown names and options."""

import pyarrow.parquet as pq
import pytest

from smartbkg.data import EventGraphDataset, GraphLoader
from smartbkg.data.parquet import write_parquet
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


def test_name_clash_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("gatgap")(type("Other", (), {}))


@pytest.mark.parametrize("name, option", [("transformer", "dim"), ("gatgap", "units"), ("deepsets", "hidden")])
def test_negative_size_is_a_config_error(name, option):
    with pytest.raises(ConfigError, match=rf"model '{name}': sizes must be >= 0, got \{{'{option}': -3\}}"):
        build_model(name, num_skims=1, **{option: -3})


#: One tiny configuration of every model (sizes only: the data-dependent options keep their defaults).
TINY = {"gatgap": dict(units=8, heads=2, layers=2, event_dim=4), "deepsets": dict(hidden=16, layers=2),
        "transformer": dict(dim=16, heads=2, blocks=1, cls_blocks=1, pair_hidden=8),
        "lorentz": dict(dim=16, heads=2, blocks=1, cls_blocks=1, pair_hidden=8)}


@pytest.fixture(scope="module")
def untyped_batch(tmp_path_factory):
    """A batch of events read from a parquet file without event types: all "unknown", code 7."""
    from tests.conftest import make_random_table

    path = tmp_path_factory.mktemp("untyped") / "events.parquet"
    write_parquet(make_random_table(6, seed=3, skims=("hadronic",)), path)
    pq.write_table(pq.read_table(path).drop_columns(["event_type"]), path)
    dataset = EventGraphDataset(path)
    assert dataset.event_types[-1] == "unknown" and len(dataset.event_types) == 8
    return next(iter(GraphLoader(dataset, batch_size=6, shuffle=False)))


def test_defaults_fit_the_data_the_package_reads(untyped_batch):
    assert set(untyped_batch.event_type.tolist()) == {7}
    for name, sizes in TINY.items():
        assert build_model(name, **sizes)(untyped_batch).shape == (6, 1), name


def test_gatgap_builds_with_no_options():
    assert build_model("gatgap").head.out_features == 1


@pytest.mark.parametrize("name", ["transformer", "deepsets", "gatgap"])
def test_out_of_range_codes_name_the_option(name, untyped_batch):
    with pytest.raises(ConfigError, match=r"num_event_types=7 but the batch has code 7: build the model with "
                                          r"num_event_types >= 8"):
        build_model(name, num_event_types=7, **TINY[name])(untyped_batch)
    with pytest.raises(ConfigError, match=r"vocab_size=3 .* build the model with vocab_size >= \d+"):
        build_model(name, vocab_size=3, **TINY[name])(untyped_batch)
