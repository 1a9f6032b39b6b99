import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smartbkg.data.checks import ReadReport, SkippedEventsWarning
from smartbkg.data.parquet import read_parquet, write_parquet
from smartbkg.data.readers import read_events
from smartbkg.data.table import EVENT_TYPES
from smartbkg.errors import DataError

FLOATS = ("prodTime", "x", "y", "z", "px", "py", "pz", "energy")


def _belle2_file(path, events, labels, *, extra=None):
    """A Belle II smartBKG-style file: particles {pdg, index, mother_index, floats}, a label column, no metadata."""
    rows = []
    for particles in events:
        rows.append([{"pdg": pdg, "index": index, "mother_index": mother,
                      **{f: float(k + 0.5 * j) for j, f in enumerate(FLOATS)}}
                     for k, (pdg, index, mother) in enumerate(particles)])
    table = pa.table({"particles": rows, "label": labels, **(extra or {})})
    pq.write_table(table, path)
    return path


def test_round_trip_is_exact(tmp_path, random_table, small_table, assert_tables_equal):
    for table in (small_table, random_table(200, seed=4)):
        write_parquet(table, tmp_path / "t.parquet", row_group_size=64)
        assert_tables_equal(read_parquet(tmp_path / "t.parquet"), table)
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 4


def test_row_groups_and_skim_subset(tmp_path, random_table, assert_tables_equal):
    table = random_table(100, seed=1)
    write_parquet(table, tmp_path / "t.parquet", row_group_size=30)
    part = read_parquet(tmp_path / "t.parquet", row_groups=[1, 3], skims=["leptonic"])
    assert_tables_equal(part, table.take(np.r_[30:60, 90:100]).select_skims(["leptonic"]))


def test_belle2_conventions(tmp_path):
    # Roots are marked with their own index or -1; `index` is not the position in the event.
    events = [
        [(300553, 10, 10), (511, 20, 10), (-511, 30, 10), (211, 40, 20), (22, 50, 30)],
        [(22, 7, -1), (111, 3, 3), (22, 5, 3)],
    ]
    path = _belle2_file(tmp_path / "b2.parquet", events, [True, False])
    table = read_parquet(path)
    assert table.skims == ("label",)
    np.testing.assert_array_equal(table.labels[:, 0], [True, False])
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, 0, 1, 2, -1, -1, 1])
    assert not table.particles["initial"].any()  # Belle II files lack the flag
    assert table.event_types == (*EVENT_TYPES, "unknown")
    np.testing.assert_array_equal(table.event_type_names, ["unknown", "unknown"])
    np.testing.assert_array_equal(table.particles["x"][:2], [0.5, 1.5])  # k + 0.5 * (field number)
    assert read_parquet(path, default_event_type="mixed").event_type_names.tolist() == ["mixed", "mixed"]


def test_tree_structure_against_networkx(tmp_path):
    # Shuffled, gapped indices: compare the ancestors of every particle with a graph built
    # directly from the (index, mother_index) pairs.
    rng = np.random.default_rng(3)
    events = []
    for _ in range(20):
        n = int(rng.integers(2, 25))
        index = rng.permutation(np.arange(n) * 3 + 100)
        mother = [int(index[rng.integers(0, k)]) if k and rng.random() > 0.2 else int(index[k]) for k in range(n)]
        order = rng.permutation(n)  # file order differs from the tree order
        events.append([(211, int(index[k]), mother[k]) for k in order])
    table = read_parquet(_belle2_file(tmp_path / "tree.parquet", events, [False] * len(events)))
    for e, particles in enumerate(events):
        reference = nx.DiGraph()
        reference.add_nodes_from(index for _, index, _ in particles)
        reference.add_edges_from((m, i) for _, i, m in particles if m != i)
        mother = table.event(e)["mother"]
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(mother)))
        graph.add_edges_from((int(m), k) for k, m in enumerate(mother) if m >= 0)
        position = {index: k for k, (_, index, _) in enumerate(particles)}
        for _, index, _ in particles:
            expected = {position[a] for a in nx.ancestors(reference, index)}
            assert nx.ancestors(graph, position[index]) == expected


def test_dangling_mother_becomes_minus_two(tmp_path):
    path = _belle2_file(tmp_path / "d.parquet", [[(511, 0, 0), (211, 1, 9)]], [True])
    np.testing.assert_array_equal(read_parquet(path).particles["mother"], [-1, -2])


@pytest.mark.parametrize("index", [(0, 1, 2, 3), (10, 20, 30, 40)], ids=["index=position", "gapped index"])
def test_mother_index_below_minus_one_is_a_dangling_link(tmp_path, index):
    """Only -1 and the particle's own index mark a root; -2, -7 ... name no particle."""
    a, b, c, d = index
    events = [[(511, a, -1), (211, b, a), (22, c, -2), (22, d, d)], [(511, a, a), (22, b, -7)], [(22, a, -1)]]
    path = _belle2_file(tmp_path / "m.parquet", events, [True, False, True])
    np.testing.assert_array_equal(read_parquet(path).particles["mother"], [-1, 0, -2, -1, -1, -2, -1])
    table, report = read_events(path, return_report=True)
    assert dict(report.skipped) == {"dangling mother link": 2} and report.kept == 1
    np.testing.assert_array_equal(table.event_id, [2])


def test_duplicate_index_is_a_counted_skip_or_a_strict_error(tmp_path):
    events = [[(511, 4, 4), (211, 6, 4)], [(511, 4, 4), (211, 6, 4), (22, 6, 4)], [(22, 1, 1), (22, 3, 1)]]
    path = _belle2_file(tmp_path / "dup.parquet", events, [True, True, False],
                        extra={"event_id": pa.array([10, 11, 12], pa.int64())})
    report = ReadReport()
    table = read_parquet(path, report=report)
    np.testing.assert_array_equal(table.event_id, [10, 12])
    np.testing.assert_array_equal(table.particles["mother"], [-1, 0, -1, 0])
    np.testing.assert_array_equal(table.labels[:, 0], [True, False])
    assert dict(report.skipped) == {"duplicate particle index": 1} and report.read == 1
    with pytest.warns(SkippedEventsWarning, match=r"skipped 1 event: duplicate particle index \(1\)"):
        assert len(read_parquet(path)) == 2  # no report given: the skip is still announced
    with pytest.raises(DataError) as error:
        read_parquet(path, strict=True)
    assert str(error.value) == f"{path}: event 11: field 'index': duplicate particle index"


def test_unknown_skim_missing_column_and_nulls(tmp_path):
    path = _belle2_file(tmp_path / "b.parquet", [[(511, 0, 0)]], [True])
    with pytest.raises(DataError, match=r"unknown skim\(s\) \['fei'\]"):
        read_parquet(path, skims=["fei"])
    pq.write_table(pa.table({"label": [True]}), tmp_path / "nop.parquet")
    with pytest.raises(DataError, match="no 'particles' column"):
        read_parquet(tmp_path / "nop.parquet")
    no_energy = pa.table({"particles": [[{"pdg": 1, "mother_index": -1, **{f: 0.0 for f in FLOATS[:-1]}}]]})
    pq.write_table(no_energy, tmp_path / "noe.parquet")
    with pytest.raises(DataError, match=r"lack fields \['energy'\]"):
        read_parquet(tmp_path / "noe.parquet", skims=[])
    nulls = pa.table({"particles": [[{"pdg": None, "mother_index": -1, **{f: 0.0 for f in FLOATS}}]]})
    pq.write_table(nulls, tmp_path / "null.parquet")
    with pytest.raises(DataError, match="field 'pdg': 1 null values"):
        read_parquet(tmp_path / "null.parquet", skims=[])
    null_label = _belle2_file(tmp_path / "nl.parquet", [[(511, 0, 0)], [(511, 0, 0)]], [True, None])
    with pytest.raises(DataError, match="field 'label': 1 null labels"):
        read_parquet(null_label)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_file(tmp_path, small_table, damage):
    path = tmp_path / "t.parquet"
    write_parquet(small_table, path)
    data = path.read_bytes()
    garbage = data[:8] + b"\0" * (len(data) - 16) + data[-8:]
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else garbage)
    with pytest.raises(DataError, match="t.parquet: cannot read parquet file"):
        read_parquet(path)
