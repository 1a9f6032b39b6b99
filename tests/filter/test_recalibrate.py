"""smartbkg-calibrate: a run's calibration refitted on another labelled sample, into a new run folder."""

import json

import numpy as np
import pytest

from smartbkg import metrics as M
from smartbkg.cli import _run
from smartbkg.data import read_events
from smartbkg.data.parquet import write_parquet
from smartbkg.filter import Filter
from smartbkg.filter.recalibrate import REPORT_FILE
from smartbkg.sampling import Calibration
from smartbkg.simulation import produce
from smartbkg.train.evaluation import CALIBRATION_FORMS
from smartbkg.train.run_folder import load_run


def calibrate_cli(*args):
    return _run("smartbkg.filter.recalibrate", [str(a) for a in args])


@pytest.fixture(scope="module")
def fresh_sample(tmp_path_factory):
    """Another 3000 embedded events (seed 22), not the run's training sample."""
    folder = tmp_path_factory.mktemp("fresh")
    produce(folder, 3000, seed=22, events_per_shard=1500)
    return folder


def test_new_run_has_the_network_and_a_calibration_fitted_on_the_sample(run_dir, fresh_sample, tmp_path, capsys):
    out = tmp_path / "recalibrated"
    assert calibrate_cli(run_dir, "--data", fresh_sample, "--out", out) == 0
    assert "tau_generic" in capsys.readouterr().out
    old, new = load_run(run_dir), load_run(out)
    for name, tensor in old.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), new.model.state_dict()[name].numpy())
    # the calibration is the training's fit, done on the sample's logits and labels
    table = read_events(fresh_sample)
    logits = Filter.of_run(old).logits(table)
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["events"] == 3000 and report["run"] == str(run_dir)
    for j, skim in enumerate(old.skims):
        y = table.labels[:, table.skims.index(skim)]
        expected = Calibration.fit(logits[:, j], y, form=CALIBRATION_FORMS, max_weight=old.config.train.max_weight,
                                   **old.timings)
        assert new.calibrations[skim].form == expected.form
        assert new.calibrations[skim].params == pytest.approx(expected.params)
        assert new.calibrations[skim].fit_info["n_events"] == 3000
        r = report["skims"][skim]
        assert r["passing"] == y.sum() > 0
        p = new.calibrations[skim].apply(logits[:, j])
        assert r["speedup_after"] == pytest.approx(M.speedup(p, y, max_weight=old.config.train.max_weight,
                                                             **old.timings))
        # fitted on these events, the new calibration is at least as good on them as the old one
        assert r["speedup_after"] >= r["speedup_before"] * (1 - 0.01)
    assert old.calibrations != new.calibrations
    assert (run_dir / "calibration.json").read_text() != (out / "calibration.json").read_text()


def test_bad_events_of_the_sample_are_counted_and_reported(run_dir, fresh_sample, tmp_path, capsys):
    table = read_events(fresh_sample)
    px = table.particles["px"].copy()
    px[table.offsets[[3, 10]]] = np.nan  # two events with a NaN momentum
    write_parquet(table.replace(particles={**table.particles, "px": px}), tmp_path / "bad.parquet")
    assert calibrate_cli(run_dir, "--data", tmp_path / "bad.parquet", "--out", tmp_path / "out") == 0
    assert "skipped 2 of 3000 events" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["events"] == 2998 and report["read"]["read"] == 3000 and sum(report["read"]["skipped"].values()) == 2


def test_bad_requests_are_one_line_errors(run_dir, fresh_sample, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    table = read_events(fresh_sample)
    write_parquet(table.select_skims(["tau_generic"]), tmp_path / "one_skim.parquet")
    leptonic = table.skims.index("leptonic_untagged")
    never = table.take(np.flatnonzero(~table.labels[:, leptonic])[:200])
    write_parquet(never, tmp_path / "never_passing.parquet")
    cases = [
        ((tmp_path / "norun", "--data", fresh_sample, "--out", tmp_path / "a"), "does not exist"),
        ((run_dir, "--data", fresh_sample, "--out", tmp_path / "full"), "is not an empty folder"),
        ((run_dir, "--data", tmp_path / "one_skim.parquet", "--out", tmp_path / "b"),
         "has no labels for skim(s) ['leptonic_untagged']"),
        ((run_dir, "--data", tmp_path / "never_passing.parquet", "--out", tmp_path / "c"),
         "has no passing event of leptonic_untagged"),
    ]
    for args, message in cases:
        assert calibrate_cli(*args) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
