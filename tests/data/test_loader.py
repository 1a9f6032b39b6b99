import itertools

import numpy as np
import pytest
import torch

from smartbkg.data.dataset import EventGraphDataset, StreamingEventGraphDataset
from smartbkg.data.loader import GraphLoader, plan_batches
from smartbkg.data.parquet import write_parquet
from smartbkg.errors import ConfigError


@pytest.mark.parametrize("n, batch_size, world",
                         list(itertools.product([0, 1, 7, 64, 100, 257], [2, 3, 16, 64], [1, 2, 3, 8])))
def test_plan_covers_every_event_once_with_equal_batch_counts(n, batch_size, world):
    if n and n < world:
        with pytest.raises(ConfigError):
            plan_batches(n, batch_size, 0, world)
        return
    plans = [plan_batches(n, batch_size, r, world) for r in range(world)]
    assert len({len(p) for p in plans}) == 1  # same number of batches on every rank
    events = np.concatenate([np.arange(p[0], p[-1]) for p in plans])
    np.testing.assert_array_equal(np.sort(events), np.arange(n))
    for p in plans:
        sizes = np.diff(p)
        assert np.all(sizes <= batch_size) and np.all(sizes >= 1)
        assert np.all(sizes[:-2] == batch_size)  # full batches but the last (or, one event short, the last two)
        assert len(sizes) == -(-(-(-n // world)) // batch_size)  # ceil(ceil(n / world) / batch_size)
    longest = plans[-1]  # the last rank's slice is never shorter than another's
    assert np.all(np.diff(longest)[:-1] == batch_size)


@pytest.mark.parametrize("n, batch_size, world", [(100, 16, 3), (7, 2, 2), (5, 8, 1)])
def test_plan_drop_last(n, batch_size, world):
    plans = [plan_batches(n, batch_size, r, world, drop_last=True) for r in range(world)]
    assert len({len(p) for p in plans}) == 1
    assert all(np.all(np.diff(p) == batch_size) for p in plans)
    events = np.concatenate([np.arange(p[0], p[-1]) for p in plans])
    assert len(set(events.tolist())) == len(events) == world * ((n // world) // batch_size) * batch_size


def test_plan_by_hand():
    # As torch's and PyG's loaders: full batches, the rest in the last one.
    np.testing.assert_array_equal(plan_batches(300, 32), [*range(0, 300, 32), 300])
    np.testing.assert_array_equal(plan_batches(1000, 256), [0, 256, 512, 768, 1000])
    np.testing.assert_array_equal(plan_batches(10, 4, rank=1, world_size=2), [5, 9, 10])
    # 65 events on 2 ranks: rank 1 has 33 (32 + 1), rank 0 has 32, cut 31 + 1 to keep 2 batches.
    np.testing.assert_array_equal(plan_batches(65, 32, rank=0, world_size=2), [0, 31, 32])
    np.testing.assert_array_equal(plan_batches(65, 32, rank=1, world_size=2), [32, 64, 65])
    # min_size: the last batch takes events from the one before.
    np.testing.assert_array_equal(plan_batches(289, 32, min_size=4), [*range(0, 288, 32), 285, 289])
    with pytest.raises(ConfigError, match="larger batch_size"):
        plan_batches(3, 1, rank=0, world_size=2)


def test_loader_batches_are_full_but_the_last(random_table):
    dataset = EventGraphDataset(random_table(300, seed=2, max_particles=3))
    sizes = [b.num_graphs for b in GraphLoader(dataset, batch_size=32, seed=1)]
    assert sizes == [32] * 9 + [12]
    assert [b.num_graphs for b in GraphLoader(dataset, batch_size=32, drop_last=True)] == [32] * 9


@pytest.fixture
def dataset(random_table):
    return EventGraphDataset(random_table(53, seed=9))


def ids(batches):
    return [b.event_id.tolist() for b in batches]


def test_in_memory_epoch_is_deterministic_and_covers_everything(dataset):
    loader = GraphLoader(dataset, batch_size=8, seed=4)
    assert len(loader) == 7
    first = ids(loader)
    assert ids(loader) == first
    assert sorted(sum(first, [])) == sorted(dataset.table.event_id.tolist())
    loader.set_epoch(1)
    assert ids(loader) != first
    assert ids(GraphLoader(dataset, batch_size=8, seed=5)) != first
    assert sum(ids(GraphLoader(dataset, batch_size=8, shuffle=False)), []) == dataset.table.event_id.tolist()


@pytest.mark.parametrize("world", [2, 3, 4])
def test_in_memory_ranks_cover_every_event_once(dataset, world):
    loaders = [GraphLoader(dataset, batch_size=5, seed=1, rank=r, world_size=world) for r in range(world)]
    for epoch in (0, 3):
        seen = []
        for loader in loaders:
            loader.set_epoch(epoch)
            batches = ids(loader)
            assert len(batches) == len(loader) == len(loaders[0])
            seen += sum(batches, [])
        assert sorted(seen) == sorted(dataset.table.event_id.tolist())


def test_batches_are_fast_path_batches(dataset):
    loader = GraphLoader(dataset, batch_size=10, shuffle=True, seed=2)
    order = loader.epoch_order()
    first = next(iter(loader))
    reference = dataset.store.batch(order[:len(first.event_id)])
    for key in reference.keys():
        assert torch.equal(first[key], reference[key])


def test_refuses_what_it_cannot_do(dataset):
    with pytest.raises(ConfigError, match="transform"):
        GraphLoader(EventGraphDataset(dataset.table, transform=lambda d: d), 4)
    with pytest.raises(ConfigError, match="num_workers"):
        GraphLoader(dataset, 4, num_workers=2)
    with pytest.raises(ConfigError, match="rank"):
        GraphLoader(dataset, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError):
        GraphLoader(list(range(3)), 4)


@pytest.fixture
def shard_paths(tmp_path, random_table):
    paths = []
    for i, (n, group) in enumerate([(40, 9), (23, 5), (31, 31)]):
        write_parquet(random_table(n, seed=20 + i), tmp_path / f"s{i}.parquet", row_group_size=group)
        paths.append(tmp_path / f"s{i}.parquet")
    return paths


@pytest.mark.parametrize("world, workers", [(1, 0), (2, 2), (3, 0), (3, 2)])
def test_streaming_ranks_and_workers_cover_every_event_once(shard_paths, world, workers):
    stream = StreamingEventGraphDataset(shard_paths, buffer_events=12)
    expected = sorted(EventGraphDataset(shard_paths).table.event_id.tolist())
    for epoch in (0, 1):
        seen, counts = [], []
        for rank in range(world):
            loader = GraphLoader(stream, 6, seed=3, rank=rank, world_size=world, num_workers=workers)
            loader.set_epoch(epoch)
            batches = ids(loader)
            counts.append(len(batches))
            assert len(batches) == len(loader)
            seen += sum(batches, [])
            assert loader.report.read == len(sum(batches, []))
        assert len(set(counts)) == 1
        assert sorted(seen) == expected


def test_streaming_is_deterministic_for_seed_epoch_and_workers(shard_paths):
    stream = StreamingEventGraphDataset(shard_paths, buffer_events=12)
    loader = GraphLoader(stream, 6, seed=3, num_workers=2)
    first = ids(loader)
    assert ids(loader) == first
    loader.set_epoch(1)
    assert ids(loader) != first
    # the shuffle inside a buffer depends on (seed, epoch, buffer start) only, not on the worker
    single = GraphLoader(stream, 6, seed=3, num_workers=0)
    assert sorted(sum(ids(single), [])) == sorted(sum(first, []))
