import json
import subprocess
import sys

import numpy as np
import pytest

from smartbkg.data import EventTable, read_events
from smartbkg.data.convert import main
from smartbkg.data.hdf5 import write_hdf5
from smartbkg.data.hepmc import write_hepmc
from smartbkg.data.parquet import read_parquet, write_parquet
from smartbkg.data.preprocess import PreprocessConfig, preprocess
from smartbkg.errors import ConfigError, DataError


def _cli(*args):
    """Run smartbkg-convert in a subprocess through the console-script wrapper."""
    code = "import sys; from smartbkg.cli import convert_main; convert_main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def inputs(tmp_path, random_table):
    tables = [random_table(30, seed=1), random_table(25, seed=2), random_table(20, seed=3)]
    paths = [tmp_path / "a.parquet", tmp_path / "b.h5", tmp_path / "c.hepmc.gz"]
    write_parquet(tables[0], paths[0])
    write_hdf5(tables[1], paths[1])
    write_hepmc(tables[2], paths[2])
    return paths, EventTable.concat(tables)


def test_end_to_end(tmp_path, inputs, capsys, assert_tables_equal):
    paths, expected = inputs
    out = tmp_path / "out"
    assert main([*map(str, paths), "--out", str(out), "--events-per-shard", "20", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    shards = sorted(out.glob("part-*.parquet"))
    assert [s.name for s in shards] == [f"part-0000{i}.parquet" for i in range(4)]
    assert [len(read_parquet(s)) for s in shards] == [20, 20, 20, 15]
    assert_tables_equal(read_events(out), expected)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["report"] == {"files": 3, "read": 75, "kept": 75, "skipped": {}, "notes": {}}
    assert summary["events_written"] == 75 and [s["events"] for s in summary["shards"]] == [20, 20, 20, 15]
    assert summary["inputs"] == [str(p) for p in paths]


def test_skips_and_notes_are_summarised(tmp_path, small_table, capsys):
    table = small_table.replace(particles={**small_table.particles, "energy": small_table.particles["energy"].copy(),
                                           "pdg": small_table.particles["pdg"].copy()})
    table.particles["energy"][9] = np.inf  # event 11
    table.particles["pdg"][0] = 7777777
    write_parquet(table, tmp_path / "t.parquet")
    assert main([str(tmp_path / "t.parquet"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "events skipped (non-finite value): 1" in printed
    assert "particles with unknown PDG id 7777777: 1" in printed
    assert printed[-1] == f"events written: 2 in 1 shard(s) to {tmp_path / 'out'}"
    report = json.loads((tmp_path / "out" / "summary.json").read_text())["report"]
    assert report["skipped"] == {"non-finite value": 1} and report["kept"] == 2
    np.testing.assert_array_equal(read_events(tmp_path / "out").event_id, [10, 12])


def test_preprocess_and_skim_options(tmp_path, small_table, assert_tables_equal):
    write_hdf5(small_table.select_skims(["hadronic"]).replace(skims=("label",)), tmp_path / "b.h5")
    out = tmp_path / "out"
    assert main([str(tmp_path / "b.h5"), "--out", str(out), "--rename-skim", "label=fei", "--skims", "fei",
                 "--preprocess", "--quiet"]) == 0
    expected, stats = preprocess(read_events(tmp_path / "b.h5", rename_skims={"label": "fei"}), PreprocessConfig())
    converted = read_events(out)
    assert_tables_equal(converted, expected)
    assert converted.skims == ("fei",)
    assert not converted.particles["initial"].any() and stats.dropped_particles["initial state"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preprocess"]["dropped_particles"]["initial state"] == 2
    assert summary["report"]["notes"]["particles dropped by preprocessing (initial state)"] == 2
    (tmp_path / "cfg.yaml").write_text("drop_initial: false\nvertex_cut: null\n")
    assert main([str(tmp_path / "b.h5"), "--out", str(out), "--overwrite", "--preprocess", str(tmp_path / "cfg.yaml"),
                 "--quiet"]) == 0
    assert read_events(out).particles["initial"].sum() == 2
    (tmp_path / "bad.yaml").write_text("drop_abs_pdg: 5\n")
    with pytest.raises(ConfigError, match="drop_abs_pdg must be a list of absolute PDG ids"):
        main([str(tmp_path / "b.h5"), "--out", str(out), "--overwrite", "--preprocess", str(tmp_path / "bad.yaml")])


def test_event_type_option_for_inputs_without_types(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_text()
    (tmp_path / "t.hepmc").write_text("".join(line for line in text.splitlines(True) if "event_type" not in line))
    assert main([str(tmp_path / "t.hepmc"), "--out", str(tmp_path / "o"), "--event-type", "taupair", "--quiet"]) == 0
    assert read_events(tmp_path / "o").event_type_names.tolist() == ["taupair"] * 3


@pytest.mark.parametrize("args, message", [
    (["{missing}", "--out", "{out}"], "missing.hepmc: no such file"),
    (["{input}", "--out", "{out}", "--events-per-shard", "0"], "--events-per-shard: expected an integer >= 1"),
    (["{input}", "--out", "{out}", "--rename-skim", "label"], "--rename-skim takes OLD=NEW"),
    (["{input}", "--out", "{out}", "--skims", "nope"], "unknown skim(s) ['nope']"),
    (["{input}", "--out", "{input}"], "exists and is not a directory"),
    (["{input}", "--out", "{out}", "--labels", "x.csv"], "do not apply to the input format(s) ['parquet']"),
])
def test_user_errors_are_one_line_with_exit_status_2(tmp_path, small_table, args, message):
    write_parquet(small_table, tmp_path / "in.parquet")
    names = {"missing": tmp_path / "missing.hepmc", "out": tmp_path / "out", "input": tmp_path / "in.parquet"}
    result = _cli(*[a.format(**names) for a in args])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_existing_output_needs_overwrite(tmp_path, small_table):
    write_parquet(small_table, tmp_path / "in.parquet")
    assert main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    with pytest.raises(ConfigError, match="already holds 2 converted file"):
        main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--quiet"])
    (tmp_path / "out" / "part-00009.parquet").write_bytes(b"old")
    assert main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out"), "--overwrite", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000.parquet", "summary.json"]


def test_strict_failure_leaves_no_partial_output(tmp_path, small_table, random_table):
    write_parquet(random_table(30, seed=1), tmp_path / "a.parquet")
    bad = small_table.replace(particles={**small_table.particles, "mother": small_table.particles["mother"].copy()})
    bad.particles["mother"][15] = 3  # event 12 starts at 13: its pi0 (2) and a photon (3) are each other's mother
    write_parquet(bad, tmp_path / "b.parquet")
    args = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "--out", str(tmp_path / "out"),
            "--events-per-shard", "10", "--quiet"]
    with pytest.raises(DataError, match="b.parquet: event 12: field 'mother': cyclic mother links"):
        main([*args, "--strict"])
    assert list((tmp_path / "out").iterdir()) == []
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["report"]["skipped"] == {
        "cyclic mother links": 1}
