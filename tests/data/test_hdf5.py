import pickle

import h5py
import networkx as nx
import numpy as np
import pytest

from smartbkg.data.checks import ReadReport, SkippedEventsWarning
from smartbkg.data.hdf5 import STATUS_INITIAL, read_columns, read_hdf5, write_hdf5
from smartbkg.errors import ConfigError, DataError

FLOATS = ("energy", "prodTime", "x", "y", "z", "px", "py", "pz")


def _write_rows(path, rows, *, key="particles", motherPDG=False, status=None, float_ints=False):
    """A plain compound dataset, one row per (evtNum, label, arrayIndex, PDG, motherIndex).

    Float fields get distinct values (row number + field number / 10); ``motherPDG`` adds that
    column (0 for rows whose motherIndex names no row of the event); ``float_ints`` stores the
    integer columns as float64, as pandas does when a column has NaN.
    """
    rows = list(rows)
    n = len(rows)
    columns = {"evtNum": [r[0] for r in rows], "label": [r[1] for r in rows], "arrayIndex": [r[2] for r in rows],
               "PDG": [r[3] for r in rows], "motherIndex": [r[4] for r in rows]}
    if motherPDG:
        pdg_of = {(r[0], r[2]): r[3] for r in rows}
        columns["motherPDG"] = [r[5] if len(r) > 5 else pdg_of.get((r[0], r[4]), 0) for r in rows]
    if status is not None:
        columns["status"] = status
    dtype = [(k, np.float64 if float_ints and k != "label" else (bool if k == "label" else np.int64)) for k in columns]
    dtype += [(f, np.float64) for f in FLOATS]
    data = np.zeros(n, dtype=dtype)
    for k, values in columns.items():
        data[k] = values
    for j, f in enumerate(FLOATS):
        data[f] = np.arange(n) + j / 10
    with h5py.File(path, "w") as h5:
        h5.create_dataset(key, data=data)
    return path


@pytest.mark.parametrize("layout", ["table", "fixed", "compound"])
@pytest.mark.parametrize("mother_index", ["array", "one-based"])
def test_round_trip_is_exact(tmp_path, small_table, random_table, layout, mother_index, assert_tables_equal):
    for table in (small_table, random_table(60, seed=2)):
        write_hdf5(table, tmp_path / "t.h5", layout=layout, mother_index=mother_index)
        report = ReadReport()
        assert_tables_equal(read_hdf5(tmp_path / "t.h5", report=report), table)
        assert not report.notes and not report.skipped


def test_pandas_layouts(tmp_path, small_table):
    write_hdf5(small_table, tmp_path / "t.h5", layout="table", key="mc_information")
    write_hdf5(small_table, tmp_path / "f.h5", layout="fixed", key="train_events")
    with h5py.File(tmp_path / "t.h5") as f:
        table = f["mc_information/table"]
        assert table.dtype.names[0] == "index" and table.dtype.names[1].startswith("values_block_")
        assert f["mc_information"].attrs["pandas_type"] in (b"frame_table", "frame_table")
    with h5py.File(tmp_path / "f.h5") as f:
        group = f["train_events"]
        levels = [group[f"axis1_level{k}"].attrs["name"] for k in range(4)]
        assert [v.decode() if isinstance(v, bytes) else v for v in levels] == [
            "hadronic", "leptonic", "evtNum", "arrayIndex"]
        assert group["block0_values"].shape[0] == small_table.n_particles
    columns, meta = read_columns(tmp_path / "f.h5")
    assert meta["skims"] == ["hadronic", "leptonic"]
    np.testing.assert_array_equal(columns["motherPDG"][:8], [0, 0, 0, 300553, 300553, 511, 511, -511])
    np.testing.assert_array_equal(columns["nDaughters"][:8], [0, 0, 2, 2, 1, 0, 0, 0])
    np.testing.assert_array_equal(columns["charge"][:8], [-1, 1, 0, 0, 0, 1, -1, 0])
    np.testing.assert_array_equal(columns["status"][:3] & STATUS_INITIAL, [STATUS_INITIAL, STATUS_INITIAL, 0])


def test_basf2_smartbkg_style(tmp_path):
    # Roots point to themselves; the writer dropped virtual/initial particles (event 5: arrayIndex
    # 0, 1, 4; event 6: 1), so links to them are unresolved and make roots, counted as a note.
    rows = [(5, True, 2, 300553, 2), (5, True, 3, 511, 2), (5, True, 5, -511, 4), (5, True, 6, 211, 3),
            (6, False, 0, 22, 0), (6, False, 2, 111, 1), (6, False, 3, 22, 2)]
    report = ReadReport()
    table = read_hdf5(_write_rows(tmp_path / "b.h5", rows), report=report)
    np.testing.assert_array_equal(table.counts, [4, 3])
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, -1, 1, -1, -1, 1])
    np.testing.assert_array_equal(table.event_id, [5, 6])
    assert table.skims == ("label",) and table.labels[:, 0].tolist() == [True, False]
    assert dict(report.notes) == {"particles whose mother is not in the table (made roots)": 2}
    np.testing.assert_array_equal(table.event_type_names, ["unknown", "unknown"])


def test_missing_mother_as_error_gives_dangling_links(tmp_path):
    rows = [(5, True, 2, 300553, 2), (5, True, 5, -511, 4)]
    table = read_hdf5(_write_rows(tmp_path / "b.h5", rows), missing_mother="error")
    np.testing.assert_array_equal(table.particles["mother"], [-1, -2])


def test_kahn_style_roots_by_mother_pdg(tmp_path):
    # The original smartBKG saver wrote motherIndex 0 and motherPDG 0 for particles without mother.
    rows = [(7, True, 0, 300553, 0), (7, True, 1, 511, 0), (7, True, 2, -511, 0), (7, True, 3, 211, 1)]
    report = ReadReport()
    table = read_hdf5(_write_rows(tmp_path / "k.h5", rows, motherPDG=True, status=[1, 1, 1, 2]), report=report)
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, 0, 1])
    assert not report.notes


@pytest.mark.parametrize("motherPDG", [True, False])
def test_one_based_convention_is_detected(tmp_path, motherPDG):
    # arrayIndex 3 and 4 were filtered out; 1-based motherIndex 3 names arrayIndex 2, which a
    # 0-based reading would not find. With motherPDG the PDG ids decide as well.
    rows = [(1, False, 0, 511, 0, 0), (1, False, 1, 421, 1, 511), (1, False, 2, 413, 1, 511),
            (1, False, 5, 211, 3, 413)]
    table = read_hdf5(_write_rows(tmp_path / "o.h5", rows, motherPDG=motherPDG))
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, 0, 2])
    forced = read_hdf5(tmp_path / "o.h5", mother_index="array")
    np.testing.assert_array_equal(forced.particles["mother"][:3], [-1, -1, 1])


def test_undecidable_convention_is_noted(tmp_path):
    rows = [(1, False, 0, 511, 0), (1, False, 1, 421, 0), (1, False, 2, 211, 1)]
    report = ReadReport()
    table = read_hdf5(_write_rows(tmp_path / "u.h5", rows), report=report)
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, 1])
    assert list(report.notes) == ["motherIndex convention undecidable from the data (0-based arrayIndex assumed)"]


def test_initial_state_from_status_bit(tmp_path):
    rows = [(1, False, 0, 11, 0), (1, False, 1, -11, 1), (1, False, 2, 300553, 2)]
    status = [STATUS_INITIAL | 1, STATUS_INITIAL, 1]
    table = read_hdf5(_write_rows(tmp_path / "i.h5", rows, status=status))
    np.testing.assert_array_equal(table.particles["initial"], [True, True, False])


def test_rows_in_any_order(tmp_path):
    # Events interleaved, particles not in arrayIndex order: events come in order of first
    # appearance, particles sorted by arrayIndex.
    rows = [(9, True, 1, 211, 0), (3, False, 0, 22, 0), (9, True, 0, 511, 0), (3, False, 1, 22, 0)]
    table = read_hdf5(_write_rows(tmp_path / "r.h5", rows))
    np.testing.assert_array_equal(table.event_id, [9, 3])
    np.testing.assert_array_equal(table.particles["pdg"], [511, 211, 22, 22])
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, -1, 0])
    np.testing.assert_array_equal(table.particles["energy"], [2, 0, 1, 3])  # the rows' own values


def test_tree_structure_against_networkx(tmp_path):
    rng = np.random.default_rng(11)
    rows, graphs = [], {}
    for evt in range(15):
        n = int(rng.integers(1, 30))
        index = np.sort(rng.choice(200, n, replace=False))
        graph = nx.DiGraph()
        graph.add_nodes_from(index.tolist())
        for k in range(n):
            mother = int(index[rng.integers(0, k)]) if k and rng.random() > 0.15 else int(index[k])
            if mother != index[k]:
                graph.add_edge(mother, int(index[k]))
            rows.append((evt, False, int(index[k]), 211, mother))
        graphs[evt] = graph
    order = rng.permutation(len(rows))
    table = read_hdf5(_write_rows(tmp_path / "tree.h5", [rows[i] for i in order]))
    columns, _ = read_columns(tmp_path / "tree.h5")
    for e, evt in enumerate(table.event_id):
        index = np.sort(columns["arrayIndex"][columns["evtNum"] == evt])
        mother = table.event(e)["mother"]
        graph = nx.DiGraph()
        graph.add_edges_from((int(index[m]), int(index[k])) for k, m in enumerate(mother) if m >= 0)
        graph.add_nodes_from(index.tolist())
        for node in graphs[evt]:
            assert nx.ancestors(graph, node) == nx.ancestors(graphs[evt], node)


def test_events_that_cannot_be_built_are_skipped_or_fail(tmp_path):
    rows = [(1, True, 0, 511, 0), (1, True, 1, 211, 0),
            (2, True, 0, 511, 0), (2, True, 0, 22, 0),  # duplicate arrayIndex
            (3, True, 0, 511, 0), (3, False, 1, 22, 0),  # label differs within the event
            (4, True, 0, 511, 0)]
    path = _write_rows(tmp_path / "bad.h5", rows)
    report = ReadReport()
    table = read_hdf5(path, report=report)
    np.testing.assert_array_equal(table.event_id, [1, 4])
    assert report.read == 2 and dict(report.skipped) == {
        "duplicate particle index": 1, "label differs between particles of one event": 1}
    with pytest.raises(DataError, match="bad.h5: event 2: field 'arrayIndex': duplicate particle index"):
        read_hdf5(path, strict=True)


def _edit_rows(path, **changes):
    """Change column values of some rows of a compound dataset: column -> {row: value}."""
    with h5py.File(path, "r+") as f:
        data = f["mc_information"][()]
        for column, rows in changes.items():
            for row, value in rows.items():
                data[column][row] = value
        f["mc_information"][...] = data


def test_event_type_and_weight_must_agree_within_an_event(tmp_path, small_table):
    # small_table: events 10 (rows 0-7), 11 (rows 8-12), 12 (rows 13-17); weights 1, 0.5, 2.
    path = tmp_path / "b.h5"
    write_hdf5(small_table, path, layout="compound")
    _edit_rows(path, event_type={9: 5}, weight={16: 7.0})  # a particle of 11 (charged) says ccbar; one of 12 weighs 7
    report = ReadReport()
    table = read_hdf5(path, report=report)
    np.testing.assert_array_equal(table.event_id, [10])
    assert dict(report.skipped) == {"event type differs between particles of one event": 1,
                                    "weight differs between particles of one event": 1}
    with pytest.raises(DataError, match="b.h5: event 11: field 'event_type': event type differs"):
        read_hdf5(path, strict=True)
    # A weight that is NaN on every row of its event is consistent: the checks call it non-finite.
    write_hdf5(small_table, path, layout="compound")
    _edit_rows(path, weight={row: np.nan for row in range(13, 18)})
    table = read_hdf5(path, report=ReadReport())
    assert len(table) == 3 and np.isnan(table.weight[2])


def test_event_type_codes_must_name_an_event_type(tmp_path, small_table):
    path = tmp_path / "b.h5"
    for code, message in ((9, "code 9 names none of the 7 event types"), (-1, "code -1 names none"),
                          (np.nan, "a null or non-integer code names none")):
        write_hdf5(small_table.replace(weight=None), path, layout="compound")
        with h5py.File(path, "r+") as f:  # event_type as floats, as pandas stores a column with NaN
            data = f["mc_information"][()]
            rows = np.zeros(len(data), dtype=[(n, float if n == "event_type" else data.dtype[n])
                                               for n in data.dtype.names])
            for n in data.dtype.names:
                rows[n] = data[n]
            rows["event_type"][8:13] = code  # every particle of event 11
            del f["mc_information"]
            f.create_dataset("mc_information", data=rows)
        with pytest.raises(DataError, match=f"b.h5: event 11: field 'event_type': {message}"):
            read_hdf5(path)


def test_null_ids_in_float_columns(tmp_path):
    rows = [(1, True, 0, 511, 0), (2, True, 0, np.nan, 0), (3, True, 0, 22.5, 0)]
    report = ReadReport()
    table = read_hdf5(_write_rows(tmp_path / "n.h5", rows, float_ints=True), report=report)
    np.testing.assert_array_equal(table.event_id, [1])
    assert dict(report.skipped) == {"null or non-integer value": 2}
    with pytest.warns(SkippedEventsWarning, match=r"skipped 2 events: null or non-integer value \(2\)"):
        read_hdf5(tmp_path / "n.h5")  # no report: the skips are still announced
    rows = [(np.nan, True, 0, 511, 0)]
    with pytest.raises(DataError, match="field 'evtNum': null or non-integer event number"):
        read_hdf5(_write_rows(tmp_path / "e.h5", rows, float_ints=True))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("particles", data=np.zeros(1, dtype=[(c, "S3") if c == "PDG" else (c, float) for c in (
            "evtNum", "arrayIndex", "PDG", "motherIndex", *FLOATS)]))
    with pytest.raises(DataError, match="s.h5: field 'PDG': integer column has dtype"):
        read_hdf5(tmp_path / "s.h5")


def test_pdg_ids_beyond_int32_name_file_event_and_field(tmp_path):
    path = _write_rows(tmp_path / "p.h5", [(1, True, 0, 511, 0), (2, True, 0, 2**31 + 1, 0)])
    with pytest.raises(DataError, match="^.*p.h5: event 2: field 'pdg': 2147483649 is no 32-bit integer$"):
        read_hdf5(path)


def test_missing_columns_and_unknown_skims(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("particles", data=np.zeros(2, dtype=[("evtNum", int), ("PDG", int)]))
    with pytest.raises(DataError, match=r"m.h5: field 'arrayIndex': missing columns \['arrayIndex'"):
        read_hdf5(tmp_path / "m.h5")
    path = _write_rows(tmp_path / "s.h5", [(1, True, 0, 511, 0)])
    with pytest.raises(DataError, match=r"unknown skim\(s\) \['fei'\]; the file has \['label'\]"):
        read_hdf5(path, skims=["fei"])
    assert read_hdf5(path, skims=[]).labels.shape == (1, 0)


def test_choosing_the_table(tmp_path, small_table):
    write_hdf5(small_table, tmp_path / "two.h5", layout="compound", key="a")
    with h5py.File(tmp_path / "two.h5", "a") as f:
        f.create_dataset("b", data=f["a"][()][:5])
    with pytest.raises(DataError, match=r"several tables \['a', 'b'\]; name one with key="):
        read_hdf5(tmp_path / "two.h5")
    assert len(read_hdf5(tmp_path / "two.h5", key="b")) == 1
    with pytest.raises(DataError, match="no table 'c'"):
        read_hdf5(tmp_path / "two.h5", key="c")
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(DataError, match="no per-particle table"):
        read_hdf5(tmp_path / "none.h5")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_file(tmp_path, small_table, damage):
    path = tmp_path / "t.h5"
    write_hdf5(small_table, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:8] + b"\x55" * (len(data) - 8))
    with pytest.raises(DataError, match="t.h5: cannot read HDF5 file"):
        read_hdf5(path)


def test_pickled_attributes_cannot_run_code(tmp_path, small_table):
    write_hdf5(small_table, tmp_path / "t.h5", layout="table")
    with h5py.File(tmp_path / "t.h5", "a") as f:
        f["mc_information/table"].attrs["values_block_0_kind"] = np.bytes_(pickle.dumps(print, protocol=0))
    with pytest.raises(DataError, match="cannot decode a pandas attribute .refusing to load .*print"):
        read_hdf5(tmp_path / "t.h5")


def test_bad_options(tmp_path, small_table):
    with pytest.raises(ConfigError, match="mother_index"):
        read_hdf5(tmp_path / "t.h5", mother_index="zero")
    with pytest.raises(ConfigError, match="layout"):
        write_hdf5(small_table, tmp_path / "t.h5", layout="csv")
