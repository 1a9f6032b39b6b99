"""Odd but well-formed inputs, crafted one class at a time: each is a one-line package error or
a counted skip of exactly the event concerned, never a traceback or a silently changed value.
Command lines likewise: a wrong one is a one-line error before any work."""

import json
import os
import warnings

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartbkg.data import read_events, write_hdf5, write_hepmc
from smartbkg.data.convert import main as convert_main
from smartbkg.data.parquet import METADATA_KEY, table_to_arrow
from smartbkg.errors import ConfigError, SmartBkgError
from smartbkg.locking import locked_folder
from smartbkg.simulation.cli import build_parser as generate_parser
from smartbkg.train.cli import main as train_main


def _outcome(path, **options):
    """("error", message) or ("read", (table, report))."""
    try:
        return "read", read_events(path, return_report=True, **options)
    except SmartBkgError as exc:
        assert "\n" not in str(exc)
        return "error", str(exc)


def _expect(outcome, expected, n_events):
    """``expected``: ("error", text in the message) or ("skip", reason): one event skipped for it."""
    kind, value = outcome
    if expected[0] == "error":
        assert kind == "error" and expected[1] in value, value
        return
    assert kind == "read", value
    table, report = value
    assert dict(report.skipped) == {expected[1]: 1} and len(table) == n_events - 1, report


# ---------------------------------------------------------------------------------------- parquet
def _column(name, values):
    return lambda arrow: arrow.set_column(arrow.schema.get_field_index(name), name, pa.array(values))


def _particle_field(name, convert):
    def change(arrow):
        particles = arrow.column("particles").combine_chunks()
        structs = particles.values
        names = [structs.type.field(i).name for i in range(structs.type.num_fields)]
        children = [pa.array(convert(structs.field(n).to_pylist())) if n == name else structs.field(n) for n in names]
        rebuilt = pa.ListArray.from_arrays(particles.offsets, pa.StructArray.from_arrays(children, names=names))
        return arrow.set_column(0, "particles", rebuilt)
    return change


def _metadata(raw):
    return lambda arrow: arrow.replace_schema_metadata({METADATA_KEY: raw})


PARQUET_CASES = {
    "label 2": (_column("hadronic", [2, 0, 1]), ("skip", "label is not 0/1")),
    "label -1": (_column("hadronic", [-1, 0, 1]), ("skip", "label is not 0/1")),
    "label 0.5": (_column("hadronic", [0.5, 0.0, 1.0]), ("skip", "label is not 0/1")),
    "label NaN": (_column("hadronic", [float("nan"), 0.0, 1.0]), ("skip", "label is not 0/1")),
    "label strings": (_column("hadronic", ["0", "pass", "1"]), ("error", "labels must be booleans or 0/1")),
    "weight abc": (_column("weight", ["abc", "1", "2"]), ("error", "field 'weight': has type string")),
    "weight booleans": (_column("weight", [True, False, True]), ("error", "field 'weight': has type bool")),
    "event type codes": (_column("event_type", [3, 1, 2]), ("error", "expected event type names")),
    "null event type": (_column("event_type", [None, "mixed", "uubar"]), ("error", "1 null event types")),
    "null event id": (_column("event_id", [None, 11, 12]), ("error", "field 'event_id': 1 null values")),
    "particles as strings": (_column("particles", ["a", "b", "c"]), ("error", "expected a list of particle structs")),
    "pdg as strings": (_particle_field("pdg", lambda v: [str(x) for x in v]), ("error", "field 'pdg': has type string")),
    "mother 2**40": (_particle_field("mother_index", lambda v: pa.array([2**40 if i == 3 else x for i, x in enumerate(v)],
                                                                       pa.int64())),
                     ("error", "event 10: field 'mother_index': 1099511627776 is no 32-bit integer")),
    "mother 1.5": (_particle_field("mother_index", lambda v: [1.5 if i == 3 else float(x) for i, x in enumerate(v)]),
                   ("error", "field 'mother_index': 1.5 is no 32-bit integer")),
    "boolean momenta": (_particle_field("px", lambda v: [x > 0 for x in v]), ("error", "field 'px': has type bool")),
    "metadata not JSON": (_metadata(b"{"), ("error", "malformed smartbkg metadata")),
    "metadata a list": (_metadata(b"[1]"), ("error", "must be a JSON object, got list")),
    "metadata skims 5": (_metadata(b'{"skims": 5}'), ("error", "'skims' must be a list of names")),
    "metadata not UTF-8": (_metadata(b"\xff\xfe"), ("error", "malformed smartbkg metadata")),
}


@pytest.mark.parametrize("case", PARQUET_CASES)
def test_crafted_parquet(tmp_path, small_table, case):
    change, expected = PARQUET_CASES[case]
    pq.write_table(change(table_to_arrow(small_table)), tmp_path / "c.parquet")
    _expect(_outcome(tmp_path / "c.parquet"), expected, len(small_table))


# ---------------------------------------------------------------------------------------- HDF5
def test_crafted_hdf5(tmp_path, small_table):
    for layout in ("table", "fixed", "compound"):
        path = tmp_path / f"{layout}.h5"
        write_hdf5(small_table, path, layout=layout)
        with h5py.File(path, "r+") as f:
            f.attrs["smartbkg:mc_information"] = np.bytes_(b"\xff{")
        _expect(_outcome(path), ("error", "malformed smartbkg metadata"), 3)
    path = tmp_path / "fixed.h5"
    write_hdf5(small_table, path, layout="fixed")
    with h5py.File(path, "r+") as f:
        group = f["mc_information"]
        codes = group["axis1_label2"][()]  # the MultiIndex is (hadronic, leptonic, evtNum, arrayIndex)
        codes[0] = -1  # pandas' missing value: the row's event number is NaN
        group["axis1_label2"][...] = codes
        codes = group["axis1_label3"][()]
        codes[1] = 99  # beyond the level values
        group["axis1_label3"][...] = codes
    _expect(_outcome(path), ("error", "damaged index: codes outside the"), 3)
    with h5py.File(path, "r+") as f:
        codes = f["mc_information/axis1_label3"][()]
        codes[1] = 0
        f["mc_information/axis1_label3"][...] = codes
    _expect(_outcome(path), ("error", "null or non-integer event number"), 3)
    path = tmp_path / "labels.h5"
    write_hdf5(small_table, path, layout="compound")
    with h5py.File(path, "r+") as f:
        data = f["mc_information"][()]
        labels = data["hadronic"].astype(np.int64)
        labels[:8] = 2  # every row of the first event
        new = np.empty(len(data), dtype=[(n, np.int64 if n == "hadronic" else data.dtype[n]) for n in data.dtype.names])
        for name in data.dtype.names:
            new[name] = labels if name == "hadronic" else data[name]
        attrs = dict(f["mc_information"].attrs)
        del f["mc_information"]
        f.create_dataset("mc_information", data=new).attrs.update(attrs)
    _expect(_outcome(path), ("skip", "label is not 0/1"), 3)


# ---------------------------------------------------------------------------------------- HepMC
HEPMC_CASES = {
    "particle id abc": (("P 1 0 11 ", "P 1 0 abc "), "unreadable particle line"),
    "particle id 2**40": (("P 1 0 11 ", f"P 1 0 {2**40} "), "unreadable particle line"),
    "particle id 2**31": (("P 1 0 11 ", f"P 1 0 {2**31} "), "PDG id is no 32-bit integer"),
    "parent itself": (("P 1 0 11 ", "P 1 1 11 "), "dangling mother link"),
    "parent 99": (("P 1 0 11 ", "P 1 99 11 "), "dangling mother link"),
    "parent a later particle": (("P 1 0 11 ", "P 1 3 11 "), "dangling mother link"),
    "vertex of particle 0": (("V -1 0 [3]", "V -1 0 [0]"), "dangling mother link"),
    "unknown units": (("U GEV MM", "U FOO BAR"), "unknown units"),
    "duplicated particle line": (("P 2 0 -11", "P 1 0 -11"), "particle lines not numbered 1..N in order"),
    "wrong particle count": (("E 10 3 8", "E 10 3 9"), "particle count differs from the event line"),
    "a 10 MB line": (("A 0 event_type mixed", "A 0 event_type " + "x" * 10_000_000),
                     "line longer than HepMC3 reads (262000 bytes)"),
    "attribute not UTF-8": (("A 0 event_type mixed", "A 0 event_type mi\udcffxed"), "attribute is not UTF-8 text"),
    "malformed event line": (("E 10 3 8", "E 1x0 3 8"), "malformed event line"),
    "attribute without value": (("A 0 skim.hadronic 1", "A 0 skim.hadronic"), "unreadable attribute line"),
    "one unit": (("U GEV MM", "U GEV"), "unknown units"),
    "a tool line in an event": (("U GEV MM\n", "U GEV MM\nT tool\n"), "unreadable line"),
}


@pytest.mark.parametrize("case", HEPMC_CASES)
def test_crafted_hepmc_costs_that_event_only(tmp_path, small_table, case):
    (old, new), reason = HEPMC_CASES[case]
    write_hepmc(small_table, tmp_path / "a.hepmc")
    text = (tmp_path / "a.hepmc").read_text()
    assert old in text
    (tmp_path / "c.hepmc").write_bytes(text.replace(old, new, 1).encode(errors="surrogateescape"))
    _expect(_outcome(tmp_path / "c.hepmc"), ("skip", reason), len(small_table))
    table, _ = _outcome(tmp_path / "c.hepmc")[1]
    assert table.event_id.tolist() == [11, 12]


def test_skims_are_those_of_most_events(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "a.hepmc")
    text = (tmp_path / "a.hepmc").read_text().replace("A 0 skim.leptonic 0\n", "A 0 skim.leptonic 0\nA 0 skim.extra 1\n", 1)
    (tmp_path / "c.hepmc").write_text(text)
    table, report = read_events(tmp_path / "c.hepmc", return_report=True)
    assert table.skims == ("hadronic", "leptonic") and len(table) == 3 and not report.skipped
    assert dict(report.notes) == {"events with skim attributes not read (other skims than most events)": 1}


@pytest.mark.parametrize("text, message", [
    (b"event_number,hadronic\n10,1\n11,\xff\n12,0\n", "label file is not UTF-8 text"),
    (b"event_number,hadronic\n1" + b"0" * 30 + b",1\n", "event numbers must be 64-bit integers"),
    (b"event_number,hadronic\n", "the label file lists no events"),
])
def test_crafted_label_files(tmp_path, small_table, text, message):
    write_hepmc(small_table.replace(labels=np.zeros((3, 0), bool), skims=()), tmp_path / "a.hepmc")
    (tmp_path / "l.csv").write_bytes(text)
    _expect(_outcome(tmp_path / "a.hepmc", labels=tmp_path / "l.csv"), ("error", message), 3)


# ---------------------------------------------------------------------------------------- paths
@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_unreadable_input_and_output_paths(tmp_path, small_table):
    _expect(_outcome("/proc/self/mem"), ("error", "cannot read file (Input/output error)"), 0)
    _expect(_outcome(tmp_path), ("error", "no input files"), 0)
    write_hepmc(small_table, tmp_path / "a.hepmc")
    with pytest.raises(ConfigError, match="cannot create --out /proc/nope"):
        convert_main([str(tmp_path / "a.hepmc"), "--out", "/proc/nope", "--quiet"])


def test_convert_refuses_a_format_that_is_not_the_files(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "a.hepmc")
    convert_main([str(tmp_path / "a.hepmc"), "--out", str(tmp_path / "p"), "--quiet"])
    with pytest.raises(SmartBkgError, match="not a HepMC3 ASCII file"):
        convert_main([str(tmp_path / "p" / "part-00000.parquet"), "--format", "hepmc", "--out", str(tmp_path / "o")])
    assert not list((tmp_path / "o").glob("part-*"))


# ---------------------------------------------------------------------------------------- command lines
@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "option train.seed = -1 must be in [0, 2**63 - 1]"),
    (["--seed", str(2**70)], "must be in [0, 2**63 - 1]"),
    (["--lr", "inf"], "option train.lr: expected a finite number, got inf"),
    (["--lr", "nan"], "option train.lr: expected a finite number"),
    (["--config", "{section}"], "config section 'train' must be a mapping, got 5"),
    (["--config", "{section}", "--epochs", "2"], "config section 'train' must be a mapping, got 5"),
    (["--set", "train.epochs=1e400"], "option train.epochs: expected an integer"),
    (["--set", "out=[1, 2]"], "option out: expected a string"),
    (["--config", "{config}"], "config file is not UTF-8 text"),
    (["--out", "{file}"], "exists and is not a folder"),
    (["--out", "{file}/run"], "cannot create output folder"),
])
def test_train_command_line_errors_before_any_work(tmp_path, argv, message):
    (tmp_path / "config.yaml").write_bytes(b"train:\n  epochs: 3\n  lr: 0.1\xff\n")
    (tmp_path / "section.yaml").write_text("train: 5\n")
    (tmp_path / "file").write_text("x")
    argv = [a.format(config=tmp_path / "config.yaml", section=tmp_path / "section.yaml", file=tmp_path / "file")
            for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    with pytest.raises(ConfigError) as info:
        train_main(["--data", str(tmp_path / "shards"), *argv])
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_a_second_training_into_one_folder_is_refused(tmp_path):
    with locked_folder(tmp_path / "run"):
        with pytest.raises(ConfigError, match=f"output folder {tmp_path / 'run'} is in use by another smartbkg "
                                              f"process \\(pid {os.getpid()}\\)"):
            train_main(["--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run")])
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--seed", str(2**70)], ["--events", "1e3"], ["--types", ","]])
def test_generate_command_line_errors(argv):
    with pytest.raises(ConfigError) as info:
        generate_parser().parse_args(["--events", "10", "--output", "x", *argv])
    assert str(info.value).startswith("smartbkg-generate: argument ") and "\n" not in str(info.value)


TRAIN_FLAGS = ["--epochs", "--lr", "--weight-decay", "--patience", "--seed", "--batch-size", "--events",
               "--skims", "--event-types", "--schedule", "--monitor", "--amp", "--device", "--model", "--loss", "--set"]
VALUES = st.one_of(st.sampled_from(["0", "-1", "1e400", "inf", "nan", "-0", "1.5", str(2**70), "", ",", "a,b",
                                    "train.lr=x", "data=[1]", "train.seed=-5", "out=", "\udcff"]),
                   st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True).map(repr), st.text(max_size=6))


@given(st.lists(st.tuples(st.sampled_from(TRAIN_FLAGS), VALUES), min_size=1, max_size=4))
@settings(max_examples=120, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_train_command_lines_are_one_line_errors_or_configs(tmp_path, capsys, options):
    argv = [item for flag, value in options for item in (flag, value)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            code = train_main(["--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run"), *argv,
                               "--print-config"])
    except SmartBkgError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert code == 0 and "train:" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_summary_of_a_conversion_that_skips(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "a.hepmc")
    text = (tmp_path / "a.hepmc").read_text().replace("U GEV MM", "U FOO BAR", 1)
    (tmp_path / "b.hepmc").write_text(text)
    convert_main([str(tmp_path / "b.hepmc"), "--out", str(tmp_path / "o"), "--quiet"])
    report = json.loads((tmp_path / "o" / "summary.json").read_text())["report"]
    assert report["skipped"] == {"unknown units": 1} and report["read"] == 3 and report["kept"] == 2


CONVERT_FLAGS = ["--format", "--skims", "--rename-skim", "--event-type", "--events-per-shard", "--preprocess",
                 "--key", "--mother-index", "--missing-mother", "--labels", "--strict", "--overwrite", "--bogus"]


@given(st.lists(st.tuples(st.sampled_from(CONVERT_FLAGS), VALUES), min_size=1, max_size=3))
@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_convert_command_lines_are_one_line_errors_or_conversions(tmp_path, small_table, options):
    source = tmp_path / "in.hepmc"
    if not source.exists():
        write_hepmc(small_table, source)
    argv = [item for flag, value in options for item in ((flag,) if flag in ("--strict", "--overwrite") else
                                                          (flag, value))]
    try:
        code = convert_main([str(source), "--out", str(tmp_path / "out"), "--overwrite", "--quiet", *argv])
    except SmartBkgError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert code == 0 and (tmp_path / "out" / "summary.json").exists()
