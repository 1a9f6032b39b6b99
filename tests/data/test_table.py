import warnings

import numpy as np
import pytest

from smartbkg.data.table import EVENT_TYPES, EventTable, ragged_arange, skim_names
from smartbkg.errors import ConfigError, DataError


@pytest.mark.parametrize("starts, counts, expected", [
    ([0, 10, 3], [2, 3, 1], [0, 1, 10, 11, 12, 3]),
    ([5, 7], [0, 2], [7, 8]),
    ([4], [0], []),
    ([], [], []),
])
def test_ragged_arange(starts, counts, expected):
    out = ragged_arange(np.array(starts), np.array(counts))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)


def test_ragged_arange_matches_concatenated_aranges():
    rng = np.random.default_rng(0)
    starts, counts = rng.integers(0, 1000, 200), rng.integers(0, 20, 200)
    expected = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
    np.testing.assert_array_equal(ragged_arange(starts, counts), expected)


def test_sizes_and_global_mother(small_table):
    t = small_table
    assert len(t) == 3 and t.n_particles == 18
    np.testing.assert_array_equal(t.counts, [8, 5, 5])
    np.testing.assert_array_equal(t.event_index(), [0] * 8 + [1] * 5 + [2] * 5)
    # Event 1 starts at particle 8: its D0 (local 2, mother 0) has global mother 8.
    np.testing.assert_array_equal(t.global_mother()[8:13], [-1, -1, 8, 10, 10])
    np.testing.assert_array_equal(t.event_type_names, ["mixed", "charged", "uubar"])


def test_take_reorders_events_and_keeps_local_mothers(small_table):
    t = small_table.take([2, 0])
    np.testing.assert_array_equal(t.counts, [5, 8])
    np.testing.assert_array_equal(t.event_id, [12, 10])
    np.testing.assert_array_equal(t.particles["pdg"][:5], [2, -2, 111, 22, 22])
    np.testing.assert_array_equal(t.particles["mother"][5:], [-1, -1, -1, 2, 2, 3, 3, 4])
    np.testing.assert_array_equal(t.labels, [[1, 1], [1, 0]])
    np.testing.assert_array_equal(t.weight, [2.0, 1.0])
    np.testing.assert_array_equal(t.event_type_names, ["uubar", "mixed"])
    np.testing.assert_array_equal(t.particles["initial"][5:7], [True, True])


def test_take_with_mask_and_slice_equal(small_table, assert_tables_equal):
    assert_tables_equal(small_table.take(np.array([True, False, True])), small_table[::2])
    assert len(small_table.take(np.zeros(3, bool))) == 0


def test_concat_merges_event_type_lists_by_name(small_table):
    other = EventTable.from_events([small_table.event(1)], labels=[[0, 1]], skims=("hadronic", "leptonic"), event_type=["b"],
                                   event_types=("a", "b", "charged"), event_id=[99])
    both = EventTable.concat([small_table, other])
    assert both.event_types == (*EVENT_TYPES, "a", "b")
    np.testing.assert_array_equal(both.event_type_names, ["mixed", "charged", "uubar", "b"])
    np.testing.assert_array_equal(both.offsets, [0, 8, 13, 18, 23])
    np.testing.assert_array_equal(both.particles["mother"][18:], [-1, -1, 0, 2, 2])
    # The second table has no weights: they become 1.
    np.testing.assert_array_equal(both.weight, [1.0, 0.5, 2.0, 1.0])
    np.testing.assert_array_equal(both.event_id, [10, 11, 12, 99])


def test_concat_refuses_different_skims(small_table):
    with pytest.raises(DataError, match="skims differ"):
        EventTable.concat([small_table, small_table.select_skims(["leptonic"])])
    with pytest.raises(DataError, match="no events"):
        EventTable.concat([])


def test_select_skims_reorders_and_rejects_unknown(small_table):
    t = small_table.select_skims(["leptonic", "hadronic"])
    assert t.skims == ("leptonic", "hadronic")
    np.testing.assert_array_equal(t.labels, small_table.labels[:, ::-1])
    assert t.particles["pdg"] is small_table.particles["pdg"]  # no copy of particles
    with pytest.raises(DataError, match="unknown skim"):
        small_table.select_skims(["nope"])
    one = small_table.select_skims("leptonic")  # one name, not the letters l, e, p ...
    assert one.skims == ("leptonic",)
    np.testing.assert_array_equal(one.labels[:, 0], small_table.labels[:, 1])


def test_skim_names():
    assert skim_names(None) is None
    assert skim_names("fei") == ("fei",)
    assert skim_names(["a", "b"]) == ("a", "b") and skim_names(()) == ()
    with pytest.raises(ConfigError, match="skims must be a skim name or a list of names, got 5"):
        skim_names(5)
    with pytest.raises(ConfigError, match="skim names must be strings, got 3"):
        skim_names(["a", 3])


def test_constructor_validates(small_table):
    particles = dict(small_table.particles)
    del particles["energy"]
    with pytest.raises(DataError, match="missing particle fields"):
        EventTable(small_table.offsets, particles, small_table.labels, small_table.skims, small_table.event_type)
    particles = dict(small_table.particles, x=np.zeros(3))
    with pytest.raises(DataError, match="shape"):
        EventTable(small_table.offsets, particles, small_table.labels, small_table.skims, small_table.event_type)
    with pytest.raises(DataError, match="event type code"):
        small_table.replace(event_type=np.array([0, 1, 9]))


def test_integer_fields_that_int32_cannot_hold_are_errors_not_wrapped(small_table):
    for name, value, shown in (("pdg", 2**31 + 5, "2147483653"), ("mother", -2**40, "-1099511627776"),
                               ("pdg", 211.5, "211.5"), ("pdg", np.nan, "nan")):
        values = small_table.particles[name].astype(np.int64 if isinstance(value, int) else np.float64)
        values[9] = value  # the second particle of event 11
        with pytest.raises(DataError, match=f"^event 11: field '{name}': {shown} is no 32-bit integer$"):
            small_table.replace(particles={**small_table.particles, name: values})
    wide = small_table.replace(particles={**small_table.particles, "pdg": small_table.particles["pdg"].astype(float)})
    np.testing.assert_array_equal(wide.particles["pdg"], small_table.particles["pdg"])  # exact integers are fine
    with pytest.raises(DataError, match="event type code outside"):
        small_table.replace(event_type=np.array([0, 1, 2**16]))  # would wrap to 0 as int16


def test_values_beyond_float32_become_inf_without_a_warning(small_table):
    x = small_table.particles["x"].astype(np.float64)
    x[0] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = small_table.replace(particles={**small_table.particles, "x": x}, weight=np.array([1e39, 1, 1]))
    assert np.isinf(table.particles["x"][0]) and np.isinf(table.weight[0])


def test_from_events_defaults_initial_and_broadcasts_type(small_table):
    event = {k: v for k, v in small_table.event(1).items() if k != "initial"}
    t = EventTable.from_events([event, event], labels=[[1], [0]], skims=("s",), event_type="taupair")
    np.testing.assert_array_equal(t.particles["initial"], np.zeros(10, bool))
    np.testing.assert_array_equal(t.event_type_names, ["taupair", "taupair"])
    np.testing.assert_array_equal(t.event_id, [0, 1])
    assert t.weight is None
