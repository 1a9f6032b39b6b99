import json
import os

import numpy as np
import pytest

from smartbkg.data.parquet import read_parquet
from smartbkg.data.table import EVENT_TYPES, PARTICLE_FIELDS
from smartbkg.errors import ConfigError
from smartbkg.simulation import SKIMS, SampleConfig, generate, produce

TYPES = ["charged", "uubar", "taupair"]


def assert_same_events(a, b):
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for name in PARTICLE_FIELDS:
        np.testing.assert_array_equal(a.particles[name], b.particles[name], err_msg=name)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.event_id, b.event_id)
    np.testing.assert_array_equal(a.event_type, b.event_type)


@pytest.fixture(scope="module")
def serial():
    return generate(300, seed=3, types=TYPES, chunk_size=40)


def test_identical_events_whatever_the_number_of_workers(serial):
    assert len(serial) == 300 and serial.skims == SKIMS
    assert_same_events(serial, generate(300, seed=3, types=TYPES, chunk_size=40, workers=2))


def test_prefix_and_seed(serial):
    # The first events of a type do not depend on how many are made.
    few = generate(100, seed=3, types=["charged"], chunk_size=40)
    mine = np.flatnonzero(serial.event_type == EVENT_TYPES.index("charged"))
    assert len(mine) == 53
    assert_same_events(few.take(np.argsort(few.event_id)[:53]), serial.take(mine[np.argsort(serial.event_id[mine])]))
    other = generate(100, seed=4, types=["charged"], chunk_size=40)
    assert not np.array_equal(other.particles["px"][:50], few.particles["px"][:50])


def test_event_ids_and_types(serial):
    counts = SampleConfig(300, types=TYPES).counts
    # 300 events in proportion to 0.54 : 1.61 : 0.919 nb, rounded by largest remainder.
    assert counts == {"charged": 53, "uubar": 157, "taupair": 90}
    names = np.asarray(EVENT_TYPES)[serial.event_type]
    for name, n in counts.items():
        ids = np.sort(serial.event_id[names == name])
        np.testing.assert_array_equal(ids, (EVENT_TYPES.index(name) << 40) + np.arange(n))
    # Tasks are interleaved by type: the first 40-event chunks of all three types come first.
    assert list(dict.fromkeys(names[:120])) == TYPES


def test_produce_writes_shards_and_metadata(tmp_path, serial):
    meta = produce(tmp_path / "out", 300, seed=3, types=TYPES, chunk_size=40, events_per_shard=128)
    files = sorted((tmp_path / "out").glob("events-*.parquet"))
    assert [f.name for f in files] == ["events-00000.parquet", "events-00001.parquet", "events-00002.parquet"]
    assert [s["events"] for s in meta["shards"]] == [128, 128, 44]
    tables = [read_parquet(f) for f in files]
    from smartbkg.data.table import EventTable
    back = EventTable.concat(tables)
    order = np.argsort(back.event_id)
    assert_same_events(back.take(order), serial.take(np.argsort(serial.event_id)))
    written = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert written == json.loads(json.dumps(meta))
    assert meta["events"] == {"charged": 53, "uubar": 157, "taupair": 90, "all": 300}
    names = np.asarray(EVENT_TYPES)[serial.event_type]
    for j, skim in enumerate(SKIMS):
        assert meta["passed"][skim]["all"] == int(serial.labels[:, j].sum())
        for t in TYPES:
            assert meta["retention"][skim][t] == pytest.approx(serial.labels[names == t, j].mean())
    for stage in ("generation", "detector_skims"):
        assert all(v > 0 for v in meta["seconds_per_event"][stage].values())
    assert set(meta["initialisation_s"]) == {*TYPES, "all"}
    assert meta["initialisation_s"]["all"] == pytest.approx(sum(meta["initialisation_s"][t] for t in TYPES))
    assert meta["versions"]["pythia8mc"] == "8.317.2"
    assert meta["config"]["seed"] == 3 and meta["config"]["chunk_size"] == 40
    assert [len(v) for v in meta["seeds"]["pythia_by_task"].values()] == [2, 4, 3]  # chunks of 40
    assert len({s for v in meta["seeds"]["pythia_by_task"].values() for s in v}) == 9
    assert "ParticleDecays:limitTau0 = on" in meta["pythia_settings"]["uubar"]
    with pytest.raises(ConfigError, match="is not empty"):
        produce(tmp_path / "out", 10, seed=3)


def test_produce_with_preprocessing(tmp_path):
    meta = produce(tmp_path, 40, seed=1, types=["ccbar"], preprocess=True)
    table = read_parquet(tmp_path / "events-00000.parquet")
    a = np.abs(table.particles["pdg"])
    assert meta["preprocessed"] and not table.particles["initial"].any()
    assert not ((a <= 5) | (a == 21)).any()
    assert meta["preprocess_stats"]["dropped_particles"]["initial state"] == 80
    assert (table.particles["prodTime"][table.offsets[:-1]] == 0).all()


@pytest.mark.parametrize("kwargs", [dict(n_events=0), dict(n_events=10, seed=-1), dict(n_events=10, chunk_size=0),
                                    dict(n_events=10, skims=("fei",)), dict(n_events=10, types=("bbbar",)),
                                    dict(n_events=10, mix="flat")])
def test_bad_sample_config(kwargs):
    with pytest.raises(ConfigError):
        SampleConfig(**kwargs)


def test_bad_workers():
    with pytest.raises(ConfigError, match="workers"):
        generate(10, workers=0)


@pytest.mark.parametrize("kwargs, message", [(dict(workers=0), "workers"), (dict(workers=1.5), "workers"),
                                             (dict(events_per_shard=0), "events per shard"),
                                             (dict(mix="flat"), "mix"), (dict(chunk_size=0), "chunk size")])
def test_bad_arguments_leave_no_directory(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        produce(tmp_path / "a" / "b", 10, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", ["foo.txt", "metadata.json", "events-00000.parquet", "sub/"])
def test_non_empty_output_directory_is_refused(tmp_path, existing):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sample-2").mkdir()                      # a suggestion must not exist already
    target = out / existing.rstrip("/")
    target.mkdir() if existing.endswith("/") else target.write_text("old")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ConfigError, match="is not empty") as info:
        produce(out, 10, types=["taupair"])
    assert str(out) in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in out.iterdir()) == before
    if not existing.endswith("/"):
        assert target.read_text() == "old"


def test_suggested_directory_is_unused(tmp_path):
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "x").write_text("")
    (tmp_path / "sample-2").mkdir()
    with pytest.raises(ConfigError, match=f"e.g. {tmp_path.resolve() / 'sample-3'}"):
        produce(tmp_path / "sample", 10)


def test_empty_existing_directory_is_accepted(tmp_path):
    meta = produce(tmp_path, 12, seed=1, types=["taupair"])
    assert meta["events"]["all"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events-00000.parquet", "metadata.json"]


def test_write_errors_are_one_line_config_errors(tmp_path, monkeypatch):
    import errno

    from smartbkg.simulation import production

    def full_disk(table, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(production, "write_parquet", full_disk)
    with pytest.raises(ConfigError, match=r"^cannot write output file .*events-00000.parquet: No space left on device$"):
        produce(tmp_path / "out", 12, types=["taupair"])
    # Creating the directory fails: a parent is a file.
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^cannot create output directory .*file/x: Not a directory$"):
        produce(tmp_path / "file" / "x", 12)


def test_pythia_initialisation_is_timed_apart(tmp_path, monkeypatch):
    """Building Pythia is paid once per process and type and kept out of the per-event times.

    A fake clock that only moves while a generator is built (100 s) or while the detector
    runs (1 s per task): every figure is then exact."""
    from smartbkg.simulation import production

    clock = [0.0]
    monkeypatch.setattr(production.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(production, "_GENERATORS", {})

    class SlowToBuild(production.PythiaGenerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clock[0] += 100.0

    def reconstruct(table, seed, config):
        clock[0] += 1.0
        return real_reconstruct(table, seed, config)

    real_reconstruct = production.reconstruct
    monkeypatch.setattr(production, "PythiaGenerator", SlowToBuild)
    monkeypatch.setattr(production, "reconstruct", reconstruct)
    # 2 types x 3 chunks of 10 events.
    meta = produce(tmp_path, 60, types=["ddbar", "taupair"], mix="equal", chunk_size=10)
    assert meta["initialisation_s"] == {"ddbar": 100.0, "taupair": 100.0, "all": 200.0}
    assert meta["seconds_per_event"]["generation"] == {"ddbar": 0.0, "taupair": 0.0, "all": 0.0}
    assert meta["seconds_per_event"]["detector_skims"] == {"ddbar": 0.1, "taupair": 0.1, "all": 0.1}
