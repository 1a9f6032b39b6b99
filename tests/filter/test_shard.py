"""--shard K/N: parsing, and N shards of generate and convert together equal one unsharded run."""

import numpy as np
import pytest

from smartbkg.data import read_events
from smartbkg.data.convert import main as convert_main
from smartbkg.errors import ConfigError
from smartbkg.filter.shard import Shard, parse_shard
from smartbkg.simulation import produce


def test_parse_shard():
    assert parse_shard("2/5") == Shard(2, 5) and str(parse_shard(" 1 / 1 ")) == "1/1"
    assert parse_shard(None) is None
    for text, message in (("3/2", "K must lie in 1..N"), ("0/2", "K must lie in 1..N"), ("1/0", "N must be"),
                          ("a/b", "takes K/N"), ("1/2/3", "takes K/N"), ("-1/2", "takes K/N")):
        with pytest.raises(ConfigError, match=message):
            parse_shard(text)


def test_rows_and_spans_cover_everything_once():
    for n in (1, 3, 7):
        rows = [Shard(k, n).rows(5, 23) + 5 for k in range(1, n + 1)]
        np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(5, 28))
        assert all(np.all(r % n == k - 1) for k, r in enumerate(rows, 1))
        spans = [Shard(k, n).span(10) for k in range(1, n + 1)]
        assert spans[0][0] == 0 and spans[-1][1] == 10 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def _sorted(table):
    return table.take(np.argsort(table.event_id, kind="stable"))


def test_generate_shards_equal_one_run(tmp_path, assert_tables_equal):
    options = {"types": ["taupair", "uubar"], "chunk_size": 40, "seed": 4}
    produce(tmp_path / "whole", 200, **options)
    metas = [produce(tmp_path / f"s{k}", 200, shard=f"{k}/3", **options) for k in (1, 2, 3)]
    assert [m["shard"]["tasks"] for m in metas] == [[0, 2], [2, 4], [4, 6]]
    assert sum(m["events"]["all"] for m in metas) == 200
    whole = _sorted(read_events(tmp_path / "whole"))
    parts = _sorted(read_events([tmp_path / f"s{k}" for k in (1, 2, 3)]))
    assert_tables_equal(parts, whole)


def test_convert_shards_equal_one_run(tmp_path, random_table, assert_tables_equal):
    from smartbkg.data.parquet import write_parquet

    table = random_table(50, seed=3)
    write_parquet(table, tmp_path / "in.parquet")
    assert convert_main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    for k in (1, 2):
        assert convert_main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / f"s{k}"), "--quiet",
                             "--shard", f"{k}/2"]) == 0
    parts = [read_events(tmp_path / f"s{k}") for k in (1, 2)]
    assert [len(p) for p in parts] == [25, 25]
    np.testing.assert_array_equal(parts[0].event_id, table.event_id[0::2])
    together = read_events([tmp_path / "s1", tmp_path / "s2"])
    assert_tables_equal(_sorted(together), _sorted(read_events(tmp_path / "whole")))
    with pytest.raises(ConfigError, match="K must lie"):
        convert_main([str(tmp_path / "in.parquet"), "--out", str(tmp_path / "bad"), "--shard", "3/2"])
