"""smartbkg-filter end to end: shards with p_/weight_ columns, summary, sharding, crashes, bad input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from smartbkg.cli import _run
from smartbkg.data import read_events
from smartbkg.data.hdf5 import write_hdf5
from smartbkg.data.hepmc import write_hepmc
from smartbkg.filter import Filter, apply_filter, filter_uniforms, shared_uniform


def filter_cli(*args):
    """(exit status, stderr) of smartbkg-filter run in this process through the console-script wrapper."""
    return _run("smartbkg.filter.cli", [str(a) for a in args])


def read_output(folder):
    """(events, {column: values}) of the kept events a filter wrote to ``folder``."""
    table = read_events(folder)
    data = pq.read_table(sorted(folder.glob("part-*.parquet")))
    columns = {name: data.column(name).to_numpy() for name in data.column_names
               if name.startswith(("p_", "weight_"))}
    return table, columns


def test_filter_writes_kept_events_with_weights_and_a_summary(run_dir, sample_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert filter_cli(run_dir, "--data", sample_dir, "--out", out, "--seed", 3, "--events-per-shard", 300) == 0
    printed = capsys.readouterr().out
    assert "events read: 2000" in printed and "tau_generic: counted" in printed
    summary = json.loads((out / "summary.json").read_text())
    kept, columns = read_output(out)
    assert summary["complete"] and summary["events"] == 2000 and summary["kept"] == len(kept)
    assert [s["events"] for s in summary["shards"]][:-1] == [300] * (len(summary["shards"]) - 1)
    # the columns are what the Filter decides for these events (uniforms of their positions)
    events = read_events(sample_dir)
    flt = Filter.from_run(run_dir)
    decision = shared_uniform(flt.probabilities(events), filter_uniforms(3, np.arange(2000)), flt.skims)
    np.testing.assert_array_equal(kept.event_id, events.event_id[decision.keep])
    for name, values in decision.take(decision.keep).columns().items():
        np.testing.assert_allclose(columns[name], values)
    # weights: 1/p where the event counts for the skim, 0 elsewhere; labels pass through
    w, p = columns["weight_tau_generic"], columns["p_tau_generic"]
    assert np.all((w == 0) | np.isclose(w * p, 1))
    assert kept.skims == events.skims
    fraction = summary["kept_fraction"]
    assert fraction["observed"] == pytest.approx(len(kept) / 2000)
    assert fraction["expected"] == pytest.approx(decision.p.max(axis=1).mean())
    assert fraction["expected"] < fraction["independent_draws"]
    tau = summary["skims"]["tau_generic"]
    assert tau["passing"] == int(events.labels[:, events.skims.index("tau_generic")].sum())
    assert abs(tau["yield_pull"]) < 5 and tau["speedup"] > 0
    assert summary["timing"]["network_ms_per_event"] > 0


def test_shards_together_equal_one_unsharded_run(run_dir, sample_dir, tmp_path):
    # parquet shards and a Belle II HDF5 file, read in chunks: positions run over all inputs
    extra = tmp_path / "extra.h5"
    write_hdf5(read_events(sample_dir)[:150], extra)
    inputs = [str(sample_dir), str(extra)]
    flt = Filter.from_run(run_dir)
    whole = apply_filter(flt, inputs, tmp_path / "whole", seed=8, chunk_events=500)
    parts = [apply_filter(flt, inputs, tmp_path / f"part{k}", seed=8, shard=f"{k}/3", chunk_events=700)
             for k in (1, 2, 3)]
    assert sum(p["events"] for p in parts) == whole["events"] == 2150
    assert sum(p["kept"] for p in parts) == whole["kept"]
    kept, columns = read_output(tmp_path / "whole")
    pieces = [read_output(tmp_path / f"part{k}") for k in (1, 2, 3)]
    # every kept event once, with the same columns (event ids repeat between the two inputs)
    key = lambda t, c: sorted(zip(t.event_id.tolist(), c["p_tau_generic"].tolist(), c["weight_tau_generic"].tolist()))
    assert key(kept, columns) == sorted(sum((key(t, c) for t, c in pieces), []))


def test_a_crash_leaves_no_shard_that_looks_complete(run_dir, sample_dir, tmp_path, monkeypatch):
    """Writing the third shard fails halfway: the two complete shards stay, nothing else looks done."""
    real_write_table = pq.write_table
    calls = []

    def crashing(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 3:
            with open(where, "wb") as f:
                f.write(b"PAR1 half a shard")
            raise OSError("killed while writing")
        real_write_table(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", crashing)
    with pytest.raises(OSError, match="killed"):
        apply_filter(Filter.from_run(run_dir), sample_dir, tmp_path / "out", events_per_shard=200)
    done = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert done == [".lock", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet.tmp"]
    assert [len(read_events(tmp_path / "out" / name)) for name in done[1:3]] == [200, 200]
    assert len(read_events(tmp_path / "out")) == 400  # readers take complete shards only


def test_bad_input_is_one_line_with_status_2(run_dir, sample_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns("data", "tensorboard"))
    (broken / "calibration.json").unlink()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("x")
    typed = tmp_path / "typed.hepmc"
    write_hepmc(read_events(sample_dir)[:5].replace(event_types=("bhabha",), event_type=np.zeros(5, np.int16)),
                typed)
    cases = [
        ((broken, "--data", sample_dir, "--out", tmp_path / "a"), "has no calibration.json"),
        ((run_dir, "--data", sample_dir, "--out", tmp_path / "b", "--skims", "radiative"),
         "were not trained by this run"),
        ((run_dir, "--data", typed, "--out", tmp_path / "c"), "that the network does not know"),
        ((run_dir, "--data", sample_dir, "--out", occupied), "is not empty"),
        ((run_dir, "--data", sample_dir, "--out", tmp_path / "d", "--shard", "3/2"), "K must lie in 1..N"),
        ((run_dir, "--data", sample_dir, "--out", tmp_path / "e", "--shard", "x"), "--shard takes K/N"),
        ((run_dir, "--data", tmp_path / "missing.parquet", "--out", tmp_path / "f"), "no such file"),
        ((run_dir, "--data", sample_dir, "--out", tmp_path / "g", "--seed", "-1"), "expected an integer in [0, "),
    ]
    for args, message in cases:
        assert filter_cli(*args) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_console_script_prints_no_traceback(tmp_path):
    code = "import sys; from smartbkg.cli import filter_main; filter_main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "norun"), "--data", str(tmp_path),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: run folder") and done.stderr.count("\n") == 1


def test_onnx_backend_makes_the_same_decisions(run_dir, sample_dir, tmp_path):
    """The run's ONNX export in onnxruntime keeps the same events with the same weights as PyTorch."""
    from smartbkg.export.exporter import export_run

    model = tmp_path / "export" / "model.onnx"
    model.parent.mkdir()
    export_run(run_dir, model)
    outs = {backend: tmp_path / backend for backend in ("torch", "onnx")}
    assert filter_cli(run_dir, "--data", sample_dir, "--out", outs["torch"], "--seed", 5) == 0
    assert filter_cli(run_dir, "--data", sample_dir, "--out", outs["onnx"], "--seed", 5, "--backend", "onnx",
                      "--onnx", model) == 0
    (kept_t, columns_t), (kept_o, columns_o) = read_output(outs["torch"]), read_output(outs["onnx"])
    np.testing.assert_array_equal(kept_t.event_id, kept_o.event_id)
    for name in columns_t:  # logits agree to ~1e-5; the calibration turns that into p within 1e-3
        np.testing.assert_allclose(columns_o[name], columns_t[name], rtol=1e-3)
    assert filter_cli(run_dir, "--data", sample_dir, "--out", tmp_path / "x", "--backend", "onnx") == 2
