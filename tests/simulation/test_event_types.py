import pytest

from smartbkg.data.table import EVENT_TYPES
from smartbkg.errors import ConfigError
from smartbkg.simulation.event_types import EVENT_TYPE_SPECS, events_per_type, resolve_types


def test_cross_section_mix():
    counts = events_per_type(100_000)
    assert sum(counts.values()) == 100_000
    total = sum(s.cross_section for s in EVENT_TYPE_SPECS.values())  # 5.659 nb
    for name, n in counts.items():
        assert abs(n - 100_000 * EVENT_TYPE_SPECS[name].cross_section / total) <= 1
    assert counts["uubar"] == 28450  # 1.61 / 5.659 of the events


def test_equal_mix_and_subset():
    assert events_per_type(10, mix="equal") == {"charged": 2, "mixed": 2, "uubar": 2, "ddbar": 1,
                                                 "ssbar": 1, "ccbar": 1, "taupair": 1}
    assert events_per_type(7, ["taupair", "charged"], "equal") == {"charged": 4, "taupair": 3}
    assert resolve_types("ccbar") == ("ccbar",)
    assert resolve_types(None) == EVENT_TYPES


@pytest.mark.parametrize("args", [(10, ["bbbar"]), (10, [], "equal"), (10, None, "flat"), (-1,), (2.5,)])
def test_bad_arguments(args):
    with pytest.raises(ConfigError):
        events_per_type(*args)
