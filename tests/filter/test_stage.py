"""Production mode: generation -> filter -> detector + skims on the kept events only."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from smartbkg.cli import _run
from smartbkg.data import read_events
from smartbkg.filter import Filter, filter_uniforms, shared_uniform


def test_generate_with_filter_keeps_labels_and_weights_of_the_full_run(run_dir, tmp_path, capsys):
    common = ["--events", "600", "--seed", "13", "--types", "taupair,ccbar", "--quiet"]
    assert _run("smartbkg.simulation.cli", [*common, "--output", str(tmp_path / "full")]) == 0
    assert _run("smartbkg.simulation.cli", [*common, "--output", str(tmp_path / "kept"), "--filter", str(run_dir),
                                            "--filter-seed", "2"]) == 0
    full, kept = read_events(tmp_path / "full"), read_events(tmp_path / "kept")
    flt = Filter.from_run(run_dir)
    decision = shared_uniform(flt.probabilities(full), filter_uniforms(2, full.event_id), flt.skims)
    order = np.argsort(kept.event_id)
    expected = np.sort(full.event_id[decision.keep])
    np.testing.assert_array_equal(kept.event_id[order], expected)
    # the detector response of a kept event does not depend on the others: same labels as unfiltered
    rows = np.searchsorted(full.event_id, kept.event_id[order], sorter=np.argsort(full.event_id))
    rows = np.argsort(full.event_id)[rows]
    np.testing.assert_array_equal(kept.labels[order], full.labels[rows])
    data = pq.read_table(sorted((tmp_path / "kept").glob("*.parquet")))
    for name, values in decision.take(rows).columns().items():
        np.testing.assert_allclose(data.column(name).to_numpy()[order], values)
    meta = json.loads((tmp_path / "kept" / "metadata.json").read_text())
    assert meta["events"]["all"] == 600 and meta["kept"]["all"] == len(kept)
    assert meta["filter"] == {"run": str(run_dir), "skims": list(flt.skims), "seed": 2}
    assert set(meta["seconds_per_event"]) == {"generation", "filter", "detector_skims"}
    # weighted passes estimate the passes of the generated events; skims not filtered on: unknown
    assert meta["retention"]["radiative"]["all"] is None
    j = full.skims.index("tau_generic")
    assert meta["passed"]["tau_generic"]["all"] == pytest.approx(
        (kept.labels[order, j] * decision.take(rows).weight[:, 0]).sum())


def test_filter_options_need_a_filter(tmp_path, capsys):
    assert _run("smartbkg.simulation.cli", ["--events", "10", "--output", str(tmp_path / "o"),
                                            "--filter-seed", "3"]) == 2
    assert "need --filter RUN_DIR" in capsys.readouterr().err
    assert _run("smartbkg.simulation.cli", ["--events", "10", "--output", str(tmp_path / "o"),
                                            "--filter", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run("smartbkg.simulation.cli", ["--events", "10", "--output", str(tmp_path / "o"), "--shard", "3/2"]) == 2
    assert "K must lie in 1..N" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
