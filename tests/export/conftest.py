"""Fixtures of the export tests: real events of the embedded Pythia sample, a trained run and
its export, generated once per session."""

import numpy as np
import pytest

from tests.export.export_cases import MAX_PARTICLES, UNKNOWN_PDG, joined_event, table_event
from smartbkg.data.preprocess import preprocess
from smartbkg.data.readers import read_events


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """Parquet shards of the embedded generator: 600 events, seed 11."""
    from smartbkg.simulation import produce

    folder = tmp_path_factory.mktemp("export_sample")
    produce(folder, 600, seed=11)
    return folder


@pytest.fixture(scope="session")
def pythia_table(sample_dir):
    """The sample after the Belle II preprocessing (what the caller of the graph feeds)."""
    table, _ = preprocess(read_events([sample_dir]))
    return table


@pytest.fixture(scope="session")
def parity_events(pythia_table):
    """Real events from 1 to :data:`MAX_PARTICLES` particles: one particle, the smallest and
    largest of the sample, a few ordinary ones (one with an unknown PDG id), and events of 100
    and 200 particles joined from real events."""
    table = pythia_table
    events = [table_event(table, i) for i in range(len(table))]
    sizes = table.counts
    single = {key: value[:1] for key, value in events[0].items() if key != "c"}
    single["c"] = events[0]["c"]
    unknown = dict(events[3], pdg=events[3]["pdg"].copy())
    unknown["pdg"][1] = UNKNOWN_PDG
    chosen = [single, events[int(np.argmin(sizes))], events[int(np.argmax(sizes))], events[1],
              events[2], unknown, joined_event(events[10:], 100),
              joined_event(events[20:], MAX_PARTICLES)]
    assert min(len(e["pdg"]) for e in chosen) == 1
    assert max(len(e["pdg"]) for e in chosen) == MAX_PARTICLES
    return chosen


@pytest.fixture(scope="session")
def trained_run(sample_dir, tmp_path_factory):
    """A finished training run (tiny gatgap, one epoch, skim tau_generic) on the sample."""
    from smartbkg.train.config import RunConfig
    from smartbkg.train.loop import Trainer

    out = tmp_path_factory.mktemp("export_run") / "run"
    config = RunConfig.from_dict({
        "data": {"path": [str(sample_dir)], "skims": ["tau_generic"], "batch_size": 64},
        "model": {"name": "gatgap", "options": {"units": 8, "layers": 2, "heads": 2}},
        "loss": {"name": "entropy"},
        "train": {"epochs": 1, "lr": 5e-3, "quiet": True, "patience": None},
        "out": str(out),
    })
    Trainer(config).fit()
    return out


@pytest.fixture(scope="session")
def exported_run(trained_run, tmp_path_factory):
    """``smartbkg-export`` of the trained run: (path of model.onnx, the lines it printed)."""
    import contextlib
    import io

    from smartbkg.export.cli import main

    out = tmp_path_factory.mktemp("export_out") / "model.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main([str(trained_run), "--out", str(out)])
    return out, printed.getvalue().splitlines()
