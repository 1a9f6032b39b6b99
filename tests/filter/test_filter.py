"""Filter built from a run folder: consistency checks, probabilities, decisions."""

import json
import shutil

import numpy as np
import pytest
import torch

from smartbkg.data import read_events
from smartbkg.data.graphs import GraphStore
from smartbkg.data.preprocess import preprocess
from smartbkg.data.skim_emulation import FEATURES, skim_emulation
from smartbkg.data.table import EventTable
from smartbkg.errors import ConfigError, DataError
from smartbkg.filter import Filter
from smartbkg.train.checkpoint import load_checkpoint, save_checkpoint
from smartbkg.train.loop import Trainer


@pytest.fixture(scope="module")
def events(sample_dir):
    return read_events(sample_dir)[:300]


def test_probabilities_are_the_calibrated_network_output(run_dir, run_skims, events):
    flt = Filter.from_run(run_dir)
    assert flt.skims == tuple(run_skims)
    p = flt.probabilities(events)
    assert p.shape == (300, 2) and np.all((p >= 0.01) & (p <= 1))
    # the same logits as the trained model on the same preprocessed events
    trainer = Trainer.resume(run_dir, overrides={"train.quiet": True})
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    trainer.model.load_state_dict(state["model"])
    trainer.model.eval()
    table, _ = preprocess(events)
    with torch.no_grad():
        expected = trainer.model(GraphStore(table).batch(range(len(table)))).numpy()
    np.testing.assert_allclose(flt.logits(events), expected, rtol=1e-5, atol=1e-5)
    # a Batch gives the same as the table; one skim of two is its column
    np.testing.assert_allclose(flt.logits(GraphStore(table).batch(range(len(table)))), expected, rtol=1e-5, atol=1e-5)
    one = Filter.from_run(run_dir, skims=["leptonic_untagged"])
    np.testing.assert_allclose(one.probabilities(events)[:, 0], p[:, 1])
    assert flt.network_ms_per_event > 0


def test_a_run_with_event_features_computes_them_for_the_network(features_run_dir, events):
    flt = Filter.from_run(features_run_dir)
    assert flt.event_features
    store, scored = flt.prepare(events)
    table, _ = preprocess(events)
    np.testing.assert_array_equal(store.event_features.numpy(), skim_emulation(table))
    trainer = Trainer.resume(features_run_dir, overrides={"train.quiet": True})
    trainer.model.load_state_dict(load_checkpoint(features_run_dir / "checkpoints" / "best.pt")["model"])
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(GraphStore(table, event_features=True).batch(range(len(table)))).numpy()
    np.testing.assert_allclose(flt.logits(events), expected, rtol=1e-5, atol=1e-5)


def test_events_prepared_once_serve_every_filter_that_prepares_alike(run_dir, features_run_dir, events):
    flt, same, features = Filter.from_run(run_dir), Filter.from_run(run_dir, skims=["leptonic_untagged"]), \
        Filter.from_run(features_run_dir)
    assert flt.prepares_like(same) and not flt.prepares_like(features)
    prepared = flt.prepare(events)
    np.testing.assert_array_equal(flt.logits(prepared), flt.logits(events))
    np.testing.assert_array_equal(same.logits(prepared)[:, 0], flt.logits(events)[:, 1])


def test_decide_is_seeded_and_iterates_tables(run_dir, events):
    flt = Filter.from_run(run_dir)
    a, b = flt.decide(events, 4), flt.decide(events, 4)
    np.testing.assert_array_equal(a.keep, b.keep)
    assert a.keep.shape == (300,) and a.counts.shape == a.weight.shape == (300, 2)
    chunks = list(flt.decide_tables([events[:100], events[100:]], rng=9))
    assert [len(t) for t, _ in chunks] == [100, 200]
    np.testing.assert_allclose(np.concatenate([d.p for _, d in chunks]), a.p)


def test_events_empty_after_preprocessing_are_kept_with_p_1(run_dir, events):
    only_beams = events.take([0]).replace(particles={k: v.copy() for k, v in events.take([0]).particles.items()})
    only_beams.particles["initial"][:] = True  # every particle is dropped by the preprocessing
    flt = Filter.from_run(run_dir)
    p = flt.probabilities(EventTable.concat([only_beams, events[:2]]))
    np.testing.assert_array_equal(p[0], [1.0, 1.0])
    np.testing.assert_allclose(p[1:], flt.probabilities(events[:2]))


def _copy_run(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("data", "tensorboard"))
    return copy


def test_run_folder_checks(run_dir, tmp_path, events):
    with pytest.raises(ConfigError, match="does not exist"):
        Filter.from_run(tmp_path / "nothing")
    run = _copy_run(run_dir, tmp_path)
    with pytest.raises(ConfigError, match=r"skim\(s\) \['radiative'\] were not trained by this run"):
        Filter.from_run(run, skims=["radiative"])
    # a vocabulary other than the installed one
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    state["model_info"]["vocab_size"] = 500
    save_checkpoint(state, run / "checkpoints" / "best.pt")
    with pytest.raises(ConfigError, match="PDG vocabulary of 500 tokens, this smartbkg has"):
        Filter.from_run(run)
    # a network of an older skim emulation (another number of features)
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    state["model_info"]["num_event_features"] = len(FEATURES) - 1
    save_checkpoint(state, run / "checkpoints" / "best.pt")
    with pytest.raises(ConfigError, match=f"trained with {len(FEATURES) - 1} skim-emulation features, this "
                                          f"smartbkg computes {len(FEATURES)}"):
        Filter.from_run(run)
    # a calibration of other skims
    shutil.copy(run_dir / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
    calibration = json.loads((run / "calibration.json").read_text())
    (run / "calibration.json").write_text(json.dumps({"radiative": calibration["tau_generic"]}))
    with pytest.raises(ConfigError, match="calibrates skims \\['radiative'\\], the network predicts"):
        Filter.from_run(run)
    (run / "calibration.json").unlink()
    with pytest.raises(ConfigError, match="has no calibration.json: the run has not finished"):
        Filter.from_run(run)


def test_unknown_event_type_is_an_error(run_dir, events):
    flt = Filter.from_run(run_dir)
    foreign = events[:5].replace(event_types=("bhabha",), event_type=np.zeros(5, np.int16))
    with pytest.raises(DataError, match=r"5 event\(s\) of event type\(s\) \['bhabha'\] that the network does not know"):
        flt.probabilities(foreign)
    # names in another order are mapped by name
    reordered = events[:50].replace(event_types=tuple(reversed(events.event_types)),
                                    event_type=(len(events.event_types) - 1 - events.event_type[:50]).astype(np.int16))
    np.testing.assert_allclose(flt.probabilities(reordered), flt.probabilities(events[:50]))
