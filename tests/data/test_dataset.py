import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch_geometric
from torch_geometric.loader import DataLoader as PyGDataLoader

from smartbkg.data.dataset import EventGraphDataset, StreamingEventGraphDataset
from smartbkg.data.loader import GraphLoader
from smartbkg.data.parquet import write_parquet
from smartbkg.data.preprocess import PreprocessConfig
from smartbkg.data.table import EventTable
from smartbkg.data.vocab import VOCAB_SIZE
from smartbkg.data.hdf5 import write_hdf5
from smartbkg.errors import ConfigError, DataError


def with_partons(table, seed=0):
    """Turn a quarter of the particles, but no event's first one, into quarks and gluons."""
    rng = np.random.default_rng(seed)
    p = dict(table.particles)
    parton = rng.random(table.n_particles) < 0.25
    parton[table.offsets[:-1]] = False
    p["pdg"] = np.where(parton, rng.choice([2, -1, 21], table.n_particles), p["pdg"])
    return table.replace(particles=p)


def gluon_only_event(table, i):
    """Table with event i replaced by gluons only (left empty by preprocessing)."""
    p = dict(table.particles)
    p["pdg"] = p["pdg"].copy()
    p["pdg"][table.offsets[i]:table.offsets[i + 1]] = 21
    return table.replace(particles=p)


@pytest.fixture
def shards(tmp_path, random_table):
    """Two parquet files (row groups of 7 and 11 events), 60 events with partons, one left empty."""
    a = gluon_only_event(with_partons(random_table(25, seed=1), 1), 4)
    b = with_partons(random_table(35, seed=2), 2)
    b = b.replace(weight=np.linspace(0.5, 2, len(b)).astype(np.float32))
    write_parquet(a, tmp_path / "a.parquet", row_group_size=7)
    write_parquet(b, tmp_path / "b.parquet", row_group_size=11)
    return [tmp_path / "a.parquet", tmp_path / "b.parquet"], EventTable.concat([a, b])


def items_by_id(data_items):
    return {int(d.event_id): d for d in data_items}


def assert_same_items(got, expected):
    assert sorted(got) == sorted(expected)
    for event_id, item in expected.items():
        for key in item.keys():
            assert torch.equal(got[event_id][key], item[key]), (event_id, key)


def test_in_memory_from_files_equals_from_table(shards):
    paths, table = shards
    from_files = EventGraphDataset(paths)
    from_table = EventGraphDataset(table)
    assert len(from_files) == len(from_table) == 59  # one event left empty by preprocessing
    assert_same_items(items_by_id(from_files[i] for i in range(59)), items_by_id(from_table[i] for i in range(59)))
    assert from_files.report.files == 2 and from_table.report.files == 0
    assert from_files.report.read == 60 and from_files.report.kept == 59
    assert from_files.report.skipped == {"empty after preprocessing": 1}
    assert from_files.preprocess_stats.empty_events == 1


def test_description(shards):
    paths, table = shards
    ds = EventGraphDataset(paths, skims=["leptonic"])
    assert ds.skims == ("leptonic",) and ds.num_skims == 1
    assert ds.event_types == table.event_types
    assert ds.vocab_size == VOCAB_SIZE and ds.num_node_features == 8
    kept = np.ones(60, bool)
    kept[4] = False
    labels, weight = table.labels[kept, 1], np.concatenate([np.ones(24), table.weight[25:]])
    assert ds.label_counts == {"leptonic": int(labels.sum())}
    assert ds.retention["leptonic"] == pytest.approx((weight * labels).sum() / weight.sum())
    assert sum(ds.event_type_counts.values()) == 59
    item = ds[0]
    assert item.x.shape[1] == 8 and item.y.shape == (1, 1)


def test_index_subset(shards):
    ds = EventGraphDataset(shards[0])
    subset = ds[[3, 10, 20]]
    assert len(subset) == 3
    assert [int(d.event_id) for d in subset] == [int(ds[i].event_id) for i in (3, 10, 20)]
    assert sum(subset.label_counts.values()) == int(ds.table.labels[[3, 10, 20]].sum())
    ids = torch.cat([b.event_id for b in GraphLoader(subset, 2, shuffle=True)])
    assert sorted(ids.tolist()) == sorted(int(ds[i].event_id) for i in (3, 10, 20))


def test_works_with_pyg_dataloader(shards):
    ds = EventGraphDataset(shards[0])
    batch = next(iter(PyGDataLoader(ds, batch_size=5, shuffle=False)))
    fast = ds.store.batch(range(5))
    for key in fast.keys():
        assert torch.equal(batch[key], fast[key]), key


def test_bad_events_are_counted_or_raise(tmp_path, random_table):
    table = random_table(6, seed=5)
    p = {k: v.copy() for k, v in table.particles.items()}
    p["px"][table.offsets[2]] = np.nan
    p["mother"][table.offsets[4]:table.offsets[4] + 2] = [1, 0]  # a two-particle cycle
    write_parquet(table.replace(particles=p), tmp_path / "bad.parquet")
    ds = EventGraphDataset(tmp_path / "bad.parquet")
    assert len(ds) == 4
    assert ds.report.skipped == {"non-finite value": 1, "cyclic mother links": 1}
    with pytest.raises(DataError, match=r"bad\.parquet: event 5002: .*non-finite"):
        EventGraphDataset(tmp_path / "bad.parquet", strict=True)


def test_missing_or_wrong_input(tmp_path, small_table):
    with pytest.raises(DataError, match="no such file"):
        EventGraphDataset(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="no such file"):
        StreamingEventGraphDataset(tmp_path / "nope.parquet")
    write_hdf5(small_table, tmp_path / "events.h5")
    assert len(EventGraphDataset(tmp_path / "events.h5")) == 3
    with pytest.raises(ConfigError, match="parquet shards only"):
        StreamingEventGraphDataset(tmp_path / "events.h5")


def test_each_class_is_what_it_does(shards):
    paths, table = shards
    memory, stream = EventGraphDataset(paths), StreamingEventGraphDataset(paths)
    assert isinstance(memory, torch_geometric.data.Dataset) and type(memory) is EventGraphDataset
    assert isinstance(stream, torch.utils.data.IterableDataset) and not isinstance(stream, EventGraphDataset)
    assert isinstance(next(iter(stream)), torch_geometric.data.Data)


def test_api_misuse_gets_clear_answers(shards):
    paths, table = shards
    with pytest.raises(ConfigError, match="StreamingEventGraphDataset reads parquet paths, not an EventTable"):
        StreamingEventGraphDataset(table)
    # One skim name is a skim, not a list of letters, for tables, files and streams alike.
    for ds in (EventGraphDataset(table, "leptonic"), EventGraphDataset(paths, skims="leptonic"),
               StreamingEventGraphDataset(paths, skims="leptonic")):
        assert ds.skims == ("leptonic",) and ds.label_counts == {"leptonic": int(table.labels[:, 1].sum())}


def test_without_preprocessing_keeps_all_particles(shards):
    ds = EventGraphDataset(shards[1], preprocess=None)
    assert ds.store.x.shape[0] == shards[1].n_particles
    assert len(ds) == 60


@pytest.mark.parametrize("shuffle", [False, True])
def test_streaming_equals_in_memory(shards, shuffle):
    paths, _ = shards
    memory = EventGraphDataset(paths, self_loops=True)
    stream = StreamingEventGraphDataset(paths, self_loops=True, buffer_events=9, shuffle=shuffle, seed=2)
    assert isinstance(stream, StreamingEventGraphDataset)
    assert stream.num_events == 60 and stream.skims == memory.skims and stream.event_types == memory.event_types
    expected = items_by_id(memory[i] for i in range(len(memory)))
    items = list(stream)
    assert len(items) == 59
    assert_same_items(items_by_id(items), expected)
    assert stream.report.read == 60 and stream.report.skipped == {"empty after preprocessing": 1}
    batches = list(GraphLoader(stream, 8, shuffle=shuffle, seed=2))
    assert_same_items(items_by_id(d for b in batches for d in b.to_data_list()), expected)


def test_streaming_skips_and_counts_events_that_cannot_be_built(tmp_path, random_table):
    """A Belle II-style file (``index`` read from the file) in which two events repeat a particle
    index: streamed, they are counted and left out, and the other events are served as in memory."""
    write_parquet(random_table(30, seed=3), tmp_path / "t.parquet")
    data = pq.read_table(tmp_path / "t.parquet")
    rows = data.column("particles").to_pylist()
    for event in (5, 17):  # of 9 and 22 particles
        rows[event][-1]["index"] = rows[event][0]["index"]
    particles = pa.array(rows, data.schema.field("particles").type)
    pq.write_table(data.set_column(0, "particles", particles).replace_schema_metadata(None), tmp_path / "t.parquet",
                   row_group_size=7)
    memory = EventGraphDataset(tmp_path / "t.parquet")
    stream = StreamingEventGraphDataset(tmp_path / "t.parquet", buffer_events=9, seed=1)
    items = list(stream)
    assert len(items) == len(memory) == 28
    assert_same_items(items_by_id(items), items_by_id(memory[i] for i in range(len(memory))))
    assert stream.report.skipped == memory.report.skipped == {"duplicate particle index": 2}
    assert stream.report.read == memory.report.read == 30
    with pytest.raises(DataError, match=r"t\.parquet: event 3005: field 'index': duplicate particle index"):
        list(StreamingEventGraphDataset(tmp_path / "t.parquet", shuffle=False, strict=True))


def test_streaming_without_shuffle_keeps_file_order(shards):
    paths, _ = shards
    memory = EventGraphDataset(paths)
    stream = StreamingEventGraphDataset(paths, shuffle=False)
    assert [int(d.event_id) for d in stream] == memory.table.event_id.tolist()


def test_streaming_shuffle_depends_on_seed_and_epoch(shards):
    stream = StreamingEventGraphDataset(shards[0], buffer_events=20, seed=1)
    order = lambda: [int(d.event_id) for d in stream]  # noqa: E731
    first = order()
    assert order() == first
    stream.set_epoch(1)
    second = order()
    assert second != first and sorted(second) == sorted(first)


def test_streaming_with_pyg_dataloader_workers(shards):
    stream = StreamingEventGraphDataset(shards[0], buffer_events=10)
    ids = [int(i) for b in PyGDataLoader(stream, batch_size=4, num_workers=2) for i in b.event_id]
    assert sorted(ids) == sorted(EventGraphDataset(shards[0]).table.event_id.tolist())


def test_streaming_label_counts_before_preprocessing(shards):
    paths, table = shards
    stream = StreamingEventGraphDataset(paths)
    assert stream.label_counts == dict(zip(table.skims, table.labels.sum(0).tolist()))
    weight = np.concatenate([np.ones(25), table.weight[25:]])
    assert stream.retention["hadronic"] == pytest.approx((weight * table.labels[:, 0]).sum() / weight.sum())


def test_events_with_bad_weights_are_skipped_and_left_out_of_the_retention(tmp_path, random_table):
    table = random_table(8, seed=4)
    weight = np.array([1, 2, np.nan, 1, -1, 1, np.inf, 3], np.float32)
    table = table.replace(labels=np.array([[1, 0], [0, 1], [1, 1], [1, 0], [1, 1], [0, 0], [1, 1], [1, 0]], bool),
                          weight=weight)
    write_parquet(table, tmp_path / "w.parquet")
    usable = np.isfinite(weight) & (weight >= 0)  # events 0, 1, 3, 5, 7: weights 1 2 1 1 3
    memory = EventGraphDataset(tmp_path / "w.parquet", preprocess=None)
    stream = StreamingEventGraphDataset(tmp_path / "w.parquet", preprocess=None)
    assert dict(memory.report.skipped) == {"non-finite weight": 2, "negative weight": 1}
    np.testing.assert_array_equal(memory.table.event_id, table.event_id[usable])
    for ds in (memory, stream):
        assert list(ds.retention.values()) == pytest.approx([5 / 8, 2 / 8])


def test_event_types_are_merged_by_name(tmp_path, random_table):
    a = random_table(5, seed=1)
    b = random_table(5, seed=2).replace(event_types=("signal", "charged", "mixed", "uubar", "ddbar", "ssbar",
                                                     "ccbar", "taupair"), event_type=np.zeros(5, np.int16))
    write_parquet(a, tmp_path / "a.parquet")
    write_parquet(b, tmp_path / "b.parquet")
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    memory = EventGraphDataset(paths, preprocess=PreprocessConfig())
    stream = StreamingEventGraphDataset(paths, shuffle=False)
    assert memory.event_types == stream.event_types and "signal" in memory.event_types
    signal = memory.event_types.index("signal")
    assert [int(d.event_type) for d in stream] == memory.store.event_type.tolist()
    assert memory.store.event_type[5:].tolist() == [signal] * 5


def test_unknown_pdg_ids_are_noted(tmp_path, small_table):
    p = {k: v.copy() for k, v in small_table.particles.items()}
    p["pdg"][[2, 9]] = 777777  # the Upsilon(4S) of event 0 and the B- of event 1 (both kept)
    table = small_table.replace(particles=p)
    write_parquet(table, tmp_path / "u.parquet")
    key = "particles with unknown PDG id 777777"
    assert EventGraphDataset(table).report.notes[key] == 2
    assert EventGraphDataset(tmp_path / "u.parquet").report.notes[key] == 2
    loader = GraphLoader(StreamingEventGraphDataset(tmp_path / "u.parquet"), 2)
    tokens = torch.cat([b.pdg for b in loader])
    assert loader.report.notes[key] == 2 and int((tokens == 0).sum()) == 2
