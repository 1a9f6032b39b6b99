import gzip
import logging
import re
import warnings

import h5py

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smartbkg.data import EventTable, read_events
from smartbkg.data.hdf5 import write_hdf5
from smartbkg.data.hepmc import write_hepmc
from smartbkg.data.parquet import write_parquet
from smartbkg.data.readers import SkippedEventsWarning, detect_format, expand_paths
from smartbkg.errors import ConfigError, DataError

WRITERS = {"parquet": (write_parquet, "t.parquet"), "hdf5": (write_hdf5, "t.h5"),
           "hepmc": (write_hepmc, "t.hepmc"), "hepmc-gz": (write_hepmc, "t.hepmc.gz")}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_detect_format_from_content(tmp_path, small_table, kind, assert_tables_equal):
    writer, name = WRITERS[kind]
    writer(small_table, tmp_path / name)
    renamed = tmp_path / "no_suffix"
    (tmp_path / name).rename(renamed)
    assert detect_format(renamed) == kind.split("-")[0]
    assert_tables_equal(read_events(renamed), small_table)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"hello world\n", "unknown format"),
    (b"HepMC::Version 2.06.09\nHepMC::IO_GenEvent-START_EVENT_LISTING\n", "HepMC2 files are not supported"),
    (gzip.compress(b"just text\n", mtime=0), "unknown format"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip file"),
], ids=["empty", "text", "hepmc2", "gzipped-text", "corrupt-gzip"])
def test_detect_format_rejects(tmp_path, content, message):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(DataError, match=message):
        detect_format(tmp_path / "f")
    with pytest.raises(DataError, match="no such file"):
        detect_format(tmp_path / "missing")


def test_many_files_of_all_formats_make_one_table(tmp_path, random_table, assert_tables_equal):
    tables = [random_table(20, seed=s) for s in range(3)]
    write_parquet(tables[0], tmp_path / "a.parquet")
    write_hdf5(tables[1], tmp_path / "b.h5", layout="fixed")
    write_hepmc(tables[2], tmp_path / "c.hepmc.gz")
    table, report = read_events([tmp_path / "a.parquet", tmp_path / "b.h5", tmp_path / "c.hepmc.gz"],
                                return_report=True)
    assert_tables_equal(table, EventTable.concat(tables))
    assert report.to_dict() == {"files": 3, "read": 60, "kept": 60, "skipped": {}, "notes": {}}
    # A directory stands for its data files, in name order.
    (tmp_path / "notes.txt").write_text("not data")
    assert expand_paths(tmp_path) == [tmp_path / "a.parquet", tmp_path / "b.h5", tmp_path / "c.hepmc.gz"]
    assert_tables_equal(read_events(tmp_path), table)


def test_format_override_and_options(tmp_path, small_table):
    write_hdf5(small_table, tmp_path / "t.h5", key="events")
    assert len(read_events(tmp_path / "t.h5", format="hdf5", key="events", mother_index="array")) == 3
    with pytest.raises(DataError, match="cannot read parquet file"):
        read_events(tmp_path / "t.h5", format="parquet")
    with pytest.raises(ConfigError, match=r"option\(s\) \['labels'\] do not apply to the input format\(s\) \['hdf5'\]"):
        read_events(tmp_path / "t.h5", labels="x.csv")
    with pytest.raises(ConfigError, match="unknown format 'root'"):
        read_events(tmp_path / "t.h5", format="root")
    with pytest.raises(ConfigError, match="no input files"):
        read_events([])


def _with_bad_events(table):
    """The table plus one bad event of each kind: NaN, dangling, cycle, empty (event ids 90-93)."""
    good = table.event(0)
    nan = dict(good, px=good["px"].copy())
    nan["px"][1] = np.nan
    dangling = dict(good, mother=np.where(np.arange(len(good["pdg"])) == 3, 40, good["mother"]))
    cycle = dict(good, mother=np.where(np.arange(len(good["pdg"])) == 2, 5, good["mother"]))  # 2 -> 5 -> 3 -> 2
    empty = {f: v[:0] for f, v in good.items()}
    bad = EventTable.from_events([nan, dangling, cycle, empty], labels=np.zeros((4, 2)), skims=("hadronic", "leptonic"),
                                 event_type="mixed", event_id=[90, 91, 92, 93])
    return EventTable.concat([table.replace(weight=None), bad])


@pytest.mark.parametrize("kind", ["parquet", "hdf5"])
def test_bad_events_are_skipped_with_a_warning_or_fail_in_strict_mode(tmp_path, small_table, kind, assert_tables_equal):
    writer, name = WRITERS[kind]
    table = _with_bad_events(small_table)
    if kind == "hdf5":
        table = table.take(np.arange(len(table) - 1))  # a per-particle table cannot hold an empty event
    writer(table, tmp_path / name)
    # HDF5 links to particles missing from the table make roots by default (Belle II files lack
    # filtered mothers); as errors they are dangling links.
    options = {"missing_mother": "error"} if kind == "hdf5" else {}
    with pytest.warns(SkippedEventsWarning) as caught:
        clean = read_events(tmp_path / name, **options)
    expected = {"non-finite value": 1, "dangling mother link": 1, "cyclic mother links": 1}
    if kind == "parquet":
        expected["empty event"] = 1
    message = str(caught[0].message)
    assert message.startswith(f"skipped {len(expected)} of {len(table)} events: ")
    assert all(f"{reason} ({n})" in message for reason, n in expected.items())
    assert_tables_equal(clean, small_table.replace(weight=None), weight=False)
    _, report = read_events(tmp_path / name, return_report=True, **options)
    assert dict(report.skipped) == expected and report.kept == 3
    with pytest.raises(DataError, match=f"{name}: event 90: field 'particles': non-finite value"):
        read_events(tmp_path / name, strict=True, **options)


def test_parquet_duplicate_particle_index_is_skipped_with_a_warning_or_fails_in_strict_mode(tmp_path, small_table):
    """An event whose particle index repeats cannot be built: counted like the HDF5 and HepMC skips."""
    write_parquet(small_table, tmp_path / "t.parquet")
    data = pq.read_table(tmp_path / "t.parquet")
    rows = data.column("particles").to_pylist()
    rows[1][2]["index"] = 1  # event 11: the third particle repeats the second one's index
    particles = pa.array(rows, data.schema.field("particles").type)
    # Without smartbkg metadata (a Belle II file) the index column is read, not taken as the position.
    pq.write_table(data.set_column(0, "particles", particles).replace_schema_metadata(None), tmp_path / "t.parquet")
    with pytest.warns(SkippedEventsWarning, match=r"skipped 1 of 3 events: duplicate particle index \(1\)"):
        table = read_events(tmp_path / "t.parquet")
    np.testing.assert_array_equal(table.event_id, [10, 12])
    _, report = read_events(tmp_path / "t.parquet", return_report=True)
    assert report.to_dict() == {"files": 1, "read": 3, "kept": 2, "skipped": {"duplicate particle index": 1},
                                "notes": {}}
    with pytest.raises(DataError, match="t.parquet: event 11: field 'index': duplicate particle index"):
        read_events(tmp_path / "t.parquet", strict=True)


def test_strict_reports_the_earliest_bad_event_of_a_file(tmp_path, random_table):
    table = random_table(6, seed=2)  # event ids 2000 ... 2005, at least 6 particles each
    write_parquet(table, tmp_path / "b.parquet")
    data = pq.read_table(tmp_path / "b.parquet")
    rows = data.column("particles").to_pylist()
    rows[2][1]["mother_index"] = 99  # event 2002: a dangling link (found by the checks)
    rows[3][1]["index"] = rows[3][0]["index"]  # event 2003: a duplicate index (the reader cannot build it)
    particles = pa.array(rows, data.schema.field("particles").type)
    # Without smartbkg metadata (a Belle II file) the index column is read.
    pq.write_table(data.set_column(0, "particles", particles).replace_schema_metadata(None), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="b.parquet: event 2002: field 'mother': dangling mother link"):
        read_events(tmp_path / "b.parquet", strict=True)
    _, report = read_events(tmp_path / "b.parquet", return_report=True)
    assert dict(report.skipped) == {"dangling mother link": 1, "duplicate particle index": 1}
    # HDF5: a label differing within event 2001 comes before a duplicate index in event 2003.
    write_hdf5(table, tmp_path / "b.h5", layout="compound")
    with h5py.File(tmp_path / "b.h5", "r+") as f:
        data = f["mc_information"][()]
        second = [int(table.offsets[k]) + 1 for k in (1, 3)]
        data[table.skims[0]][second[0]] = ~data[table.skims[0]][second[0]]
        data["arrayIndex"][second[1]] = 0
        f["mc_information"][...] = data
    with pytest.raises(DataError, match="b.h5: event 2001: field 'labels': label differs"):
        read_events(tmp_path / "b.h5", strict=True)
    # HepMC: a dangling vertex in event 2001 comes before the truncation in event 2004.
    write_hepmc(table, tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_bytes()
    starts = [text.index(b"\nE %d " % (2000 + k)) for k in range(6)]
    vertex = text.index(b"\nV ", starts[1])
    text = text[:vertex] + re.sub(rb"^(\nV -?\d+ -?\d+ \[)", rb"\g<1>999,", text[vertex:], count=1)
    (tmp_path / "t.hepmc").write_bytes(text[:starts[4] + 40])
    with pytest.raises(DataError, match="t.hepmc: event 2001: field 'mother': dangling mother link"):
        read_events(tmp_path / "t.hepmc", strict=True)


def test_hepmc_dangling_vertex_through_read_events(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_text().replace("V -1 0 [3]", "V -1 0 [30]", 1)
    (tmp_path / "t.hepmc").write_text(text)
    table, report = read_events(tmp_path / "t.hepmc", return_report=True)
    np.testing.assert_array_equal(table.event_id, [11, 12])
    assert dict(report.skipped) == {"dangling mother link": 1} and report.read == 3 and report.kept == 2


def test_unknown_pdg_ids_are_kept_and_counted(tmp_path, small_table, caplog):
    table = small_table.replace(particles={**small_table.particles, "pdg": small_table.particles["pdg"].copy()})
    table.particles["pdg"][[0, 4, 9]] = [9999999, 9999999, 123]
    write_parquet(table, tmp_path / "t.parquet")
    with caplog.at_level(logging.INFO, logger="smartbkg.data.readers"), warnings.catch_warnings():
        warnings.simplefilter("error")  # notes are not skips: no warning
        read = read_events(tmp_path / "t.parquet")
    assert len(read) == 3 and "particles with unknown PDG id 9999999: 2" in caplog.text
    _, report = read_events(tmp_path / "t.parquet", return_report=True)
    assert dict(report.notes) == {"particles with unknown PDG id 9999999": 2, "particles with unknown PDG id 123": 1}


def test_skims_are_selected_and_renamed(tmp_path, small_table):
    write_parquet(small_table, tmp_path / "a.parquet")
    write_hdf5(small_table.select_skims(["hadronic"]).replace(skims=("label",)), tmp_path / "b.h5")
    with pytest.raises(DataError, match=r"b.h5: field 'labels': skims \['label'\] differ from those of the inputs"):
        read_events([tmp_path / "a.parquet", tmp_path / "b.h5"])
    both = read_events([tmp_path / "a.parquet", tmp_path / "b.h5"], skims=["hadronic"],
                       rename_skims={"label": "hadronic"})
    assert both.skims == ("hadronic",)
    np.testing.assert_array_equal(both.labels[:, 0], np.tile(small_table.labels[:, 0], 2))
    with pytest.raises(DataError, match=r"a.parquet: field 'labels': unknown skim\(s\) \['fei'\]"):
        read_events(tmp_path / "a.parquet", skims=["fei"])
    with pytest.raises(ConfigError, match=r"cannot rename skim\(s\) \['fei'\]: no input has them"):
        read_events(tmp_path / "a.parquet", rename_skims={"fei": "x"})


def test_a_file_without_events_does_not_decide_the_skims(tmp_path, small_table, assert_tables_equal):
    # A truncated HepMC file whose first event cannot be read has no skims to show (they come
    # from the events' attributes): it must not clash with the other inputs' skims.
    write_hepmc(small_table, tmp_path / "a.hepmc")
    text = (tmp_path / "a.hepmc").read_bytes()
    (tmp_path / "cut.hepmc.gz").write_bytes(gzip.compress(text[:text.index(b"\nP 3 ")], mtime=0))
    inputs = [tmp_path / "a.hepmc", tmp_path / "cut.hepmc.gz"]
    for paths, options in ((inputs, {}), (inputs[::-1], {}), (inputs[::-1], {"skims": ["leptonic"]}),
                           (inputs[::-1], {"rename_skims": {"hadronic": "fei"}})):
        table, report = read_events(paths, return_report=True, **options)
        expected = small_table.select_skims(options.get("skims", small_table.skims))
        if "rename_skims" in options:
            expected = expected.replace(skims=("fei", "leptonic"))
        assert_tables_equal(table, expected)
        assert report.to_dict() == {"files": 2, "read": 6, "kept": 3, "notes": {}, "skipped": {
            "event cut off at the end of the file": 1, "events missing at the end of the file (truncated)": 2}}
    # Nothing readable at all: an empty table, with the requested skims.
    table, report = read_events(tmp_path / "cut.hepmc.gz", skims=["hadronic"], return_report=True)
    assert len(table) == 0 and table.skims == ("hadronic",) and table.labels.shape == (0, 1)
    assert report.read == 3 and report.kept == 0


def test_one_skim_name_and_inputs_that_are_not_paths(tmp_path, small_table):
    write_parquet(small_table, tmp_path / "a.parquet")
    write_hepmc(small_table, tmp_path / "b.hepmc")
    table = read_events([tmp_path / "a.parquet", tmp_path / "b.hepmc"], skims="leptonic")
    assert table.skims == ("leptonic",)
    np.testing.assert_array_equal(table.labels[:, 0], np.tile(small_table.labels[:, 1], 2))
    for paths, kind in ((small_table, "EventTable"), (5, "int"), ([tmp_path / "a.parquet", None], "NoneType")):
        with pytest.raises(ConfigError, match=f"expected file or folder paths, got {kind}$"):
            read_events(paths)


def test_pdg_ids_beyond_int32_are_errors_naming_the_file(tmp_path, small_table):
    # A Belle II parquet file (no smartbkg metadata) may store pdg as int64.
    write_parquet(small_table, tmp_path / "t.parquet")
    data = pq.read_table(tmp_path / "t.parquet")
    rows = data.column("particles").to_pylist()
    rows[2][1]["pdg"] = 2**31 + 7  # event 12
    structs = pa.array(rows, pa.list_(pa.struct([pa.field(f.name, pa.int64() if f.name == "pdg" else f.type)
                                                 for f in data.schema.field("particles").type.value_type])))
    pq.write_table(data.set_column(0, "particles", structs).replace_schema_metadata(None), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="^.*t.parquet: event 12: field 'pdg': 2147483655 is no 32-bit integer$"):
        read_events(tmp_path / "t.parquet")


def test_default_event_type_for_inputs_without_one(tmp_path):
    rows = np.zeros(2, dtype=[(c, np.int64) for c in ("evtNum", "arrayIndex", "PDG", "motherIndex")]
                    + [(f, np.float64) for f in ("energy", "prodTime", "x", "y", "z", "px", "py", "pz")])
    rows["evtNum"], rows["arrayIndex"], rows["PDG"], rows["energy"] = [1, 2], 0, 22, 1.0
    import h5py
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_dataset("particles", data=rows)
    table = read_events(tmp_path / "b.h5", default_event_type="ssbar")
    np.testing.assert_array_equal(table.event_type_names, ["ssbar", "ssbar"])
    assert table.skims == ()
