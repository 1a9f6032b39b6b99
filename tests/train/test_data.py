"""Data of a run: splits, global batches shared by DDP ranks, the cached embedded sample."""

import numpy as np
import pytest
import torch

from smartbkg.errors import ConfigError, DataError
from smartbkg.train.config import DataConfig
from smartbkg.train.data import GlobalBatchLoader, build_splits, embedded_sample, labels
from smartbkg.train.distributed import DistContext

ONE = DistContext()


def _ids(batch):
    return batch.event_id.tolist()


@pytest.fixture(scope="module")
def splits(sample_dir):
    return build_splits(DataConfig(path=[str(sample_dir)], skims=["tau_generic", "radiative"]), "unused", ctx=ONE)


def test_splits_are_disjoint_seeded_and_cover_the_sample(splits, sample_dir):
    parts = [set(splits.train.events()), set(splits.val.events()), set(splits.test.events())]
    assert [len(p) for p in parts] == [900, 300, 300]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(range(1500))
    again = build_splits(DataConfig(path=[str(sample_dir)], skims=["tau_generic", "radiative"]), "x", ctx=ONE)
    assert np.array_equal(again.val.events(), splits.val.events())
    other = build_splits(DataConfig(path=[str(sample_dir)], skims=["tau_generic"], split_seed=1), "x", ctx=ONE)
    assert not np.array_equal(other.val.events(), splits.val.events())
    y = labels(splits.train)
    assert splits.retention == pytest.approx({"tau_generic": y[:, 0].mean(), "radiative": y[:, 1].mean()})
    assert splits.skims == ("tau_generic", "radiative")


def test_retention_override_and_event_type_selection(sample_dir):
    cfg = DataConfig(path=[str(sample_dir)], skims=["tau_generic"], retention={"tau_generic": 0.05},
                     event_types=["taupair", "uubar"], test_fraction=0.0)
    s = build_splits(cfg, "x", ctx=ONE)
    assert s.retention == {"tau_generic": 0.05} and s.test is None
    names = {s.event_types[c] for c in s.train.table.event_type[s.train.events()]}
    assert names == {"taupair", "uubar"}
    with pytest.raises(ConfigError, match="data.event_types"):
        build_splits(DataConfig(path=[str(sample_dir)], event_types=["bhabha"]), "x", ctx=ONE)
    with pytest.raises(ConfigError, match="data.retention"):
        build_splits(DataConfig(path=[str(sample_dir)], skims=["tau_generic"], retention={"radiative": 0.1}),
                     "x", ctx=ONE)


def test_skim_without_passing_events_is_refused(sample_dir):
    with pytest.raises(DataError, match="skim 'charm_dstar' has retention 0.0"):
        build_splits(DataConfig(path=[str(sample_dir)], skims=["charm_dstar"]), "x", ctx=ONE)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_the_global_batches_of_one_process(splits, world_size):
    single = GlobalBatchLoader(splits.train, 64, shuffle=True, seed=5, ctx=ONE)
    ranks = [GlobalBatchLoader(splits.train, 64, shuffle=True, seed=5, ctx=DistContext(r, world_size))
             for r in range(world_size)]
    for epoch in (1, 2):
        for loader in (single, *ranks):
            loader.set_epoch(epoch)
        expected = [_ids(b) for b in single]
        shares = [[_ids(b) for b in loader] for loader in ranks]
        assert all(len(s) == len(expected) == len(single) for s in shares)  # equal batch counts
        for k, batch in enumerate(expected):
            assert sum((s[k] for s in shares), []) == batch
            sizes = [len(s[k]) for s in shares]
            assert max(sizes) - min(sizes) <= 1
    single.set_epoch(1)
    first = [_ids(b) for b in single]
    single.set_epoch(2)
    assert [_ids(b) for b in single] != first
    assert sorted(sum(first, [])) == sorted(splits.train.table.event_id[splits.train.events()].tolist())


def test_evaluation_order_is_fixed_and_batch_must_feed_every_rank(splits):
    loader = GlobalBatchLoader(splits.val, 100, shuffle=False, seed=0, ctx=ONE)
    order = torch.cat([b.event_id for b in loader]).tolist()
    assert order == splits.val.table.event_id[splits.val.events()].tolist()
    with pytest.raises(ConfigError, match="cannot be shared by 4 ranks"):
        GlobalBatchLoader(splits.val, 3, shuffle=False, seed=0, ctx=DistContext(0, 4))


def test_embedded_sample_is_generated_once_and_cached(tmp_path):
    cfg = DataConfig(generate_events=50, generate_seed=4, generate_types=["taupair", "uubar"],
                     cache_dir=str(tmp_path / "cache"))
    folder = embedded_sample(cfg, tmp_path / "run", ctx=ONE, quiet=True)
    assert folder == tmp_path / "cache" / "embedded-50ev-seed4-taupair+uubar"
    shards = sorted(folder.glob("*.parquet"))
    stamp = [p.stat().st_mtime_ns for p in shards]
    assert embedded_sample(cfg, tmp_path / "other", ctx=ONE, quiet=True) == folder
    assert [p.stat().st_mtime_ns for p in shards] == stamp
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # no temporary folder left
