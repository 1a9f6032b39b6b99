import numpy as np
import pytest
import torch

from smartbkg.data.bucketing import bucket_by_length, padding_fraction
from smartbkg.data.dataset import EventGraphDataset
from smartbkg.data.loader import GraphLoader, plan_batches
from smartbkg.errors import ConfigError


def test_bucketing_sorts_within_windows_and_keeps_every_event():
    counts = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 0])
    order = np.arange(10)[::-1].copy()  # 9, 8, ..., 0
    got = bucket_by_length(order, counts, batch_size=2, window_batches=2)
    # windows of 4 events: (9, 8, 7, 6) with counts (0, 6, 4, 8), (5, 4, 3, 2) with (2, 7, 3, 9), (1, 0)
    np.testing.assert_array_equal(got, [9, 7, 8, 6, 5, 3, 4, 2, 1, 0])
    np.testing.assert_array_equal(bucket_by_length(order, counts, 2, 0), np.argsort(counts, kind="stable"))


def test_shuffled_buckets_keep_sorted_batches_in_random_order():
    rng_counts = np.random.default_rng(0).integers(1, 60, size=1000)
    order = np.random.default_rng(1).permutation(1000)
    got = bucket_by_length(order, rng_counts, 16, 8, np.random.default_rng(2))
    assert sorted(got.tolist()) == list(range(1000))
    for w in range(0, 1000, 128):  # each window holds the same events as before, batches sorted
        assert set(got[w:w + 128].tolist()) == set(order[w:w + 128].tolist())
        for b in range(w, min(w + 128, 1000), 16):
            assert np.all(np.diff(rng_counts[got[b:b + 16]]) >= 0)
    firsts = [rng_counts[got[b]] for b in range(0, 128, 16)]
    assert firsts != sorted(firsts)  # the window's batches are not served short to long


def test_padding_fraction_by_hand_and_bucketing_removes_most_padding():
    assert padding_fraction([1, 3], [0, 2]) == pytest.approx(1 - 10 / 18)
    assert padding_fraction([2, 2, 2], [0, 3]) == 0.0
    counts = np.random.default_rng(3).integers(5, 80, size=4096)
    cuts = plan_batches(len(counts), 128)
    random = padding_fraction(counts, cuts)
    bucketed = padding_fraction(counts[bucket_by_length(np.arange(4096), counts, 128, 16)], cuts)
    assert random > 0.5 and bucketed < 0.15 * random


def test_loader_bucketing_serves_every_event_once_in_homogeneous_batches(random_table):
    dataset = EventGraphDataset(random_table(256, seed=4, max_particles=40), skims=("hadronic",))
    plain = GraphLoader(dataset, 32, shuffle=True, seed=5)
    bucketed = GraphLoader(dataset, 32, shuffle=True, seed=5, bucket_window=4)
    ids = torch.cat([b.event_id for b in bucketed])
    assert sorted(ids.tolist()) == sorted(torch.cat([b.event_id for b in plain]).tolist())
    spread = [float(torch.diff(b.ptr).max() - torch.diff(b.ptr).min()) for b in bucketed]
    plain_spread = [float(torch.diff(b.ptr).max() - torch.diff(b.ptr).min()) for b in plain]
    assert np.mean(spread) < 0.5 * np.mean(plain_spread)
    bucketed.set_epoch(1)
    assert not torch.equal(torch.cat([b.event_id for b in bucketed]), ids)  # reshuffled per epoch


def test_bucketing_refuses_streaming_and_batch_level_losses():
    from smartbkg.train import RunConfig

    with pytest.raises(ConfigError, match="data.bucket_window.*per-event loss"):
        RunConfig.from_dict({"data": {"bucket_window": 4}, "loss": {"name": "speedup"}})
    with pytest.raises(ConfigError, match="data.bucket_window.*per-event loss"):
        RunConfig.from_dict({"data": {"bucket_window": 4}, "loss": {"name": "entropy", "options": {"disco_lambda": 1},
                                                                     "disco_variable": "n_particles"}})
    with pytest.raises(ConfigError, match="in_memory"):
        RunConfig.from_dict({"data": {"bucket_window": 4, "in_memory": False}})
    assert RunConfig.from_dict({"data": {"bucket_window": 0}, "loss": {"name": "extreme"}}).data.bucket_window == 0
