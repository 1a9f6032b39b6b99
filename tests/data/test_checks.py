import numpy as np
import pytest

from smartbkg.data.checks import ReadReport, drop_bad_events, find_bad_events, reject_events
from smartbkg.data.table import EventTable
from smartbkg.errors import DataError


def _table(mothers, nan_at=None):
    """One event per mother list (pdg 211, finite kinematics), optionally a NaN in one particle's px."""
    events = []
    for mother in mothers:
        n = len(mother)
        event = {"pdg": np.full(n, 211), "mother": np.asarray(mother, np.int32), "energy": np.ones(n)}
        event.update({f: np.zeros(n) for f in ("prodTime", "x", "y", "z", "px", "py", "pz")})
        events.append(event)
    table = EventTable.from_events(events, labels=np.zeros((len(events), 1)), skims=("s",), event_type="mixed",
                                   event_id=100 + np.arange(len(events)))
    if nan_at is not None:
        table.particles["px"][nan_at] = np.nan
    return table


def test_good_events_pass_untouched(small_table):
    clean, report = drop_bad_events(small_table)
    assert clean is small_table
    assert (report.read, report.kept, dict(report.skipped)) == (3, 3, {})


@pytest.mark.parametrize("mothers, reason", [
    ([[]], "empty event"),
    ([[-1, 5]], "dangling mother link"),  # mother beyond the event
    ([[-1, -2]], "dangling mother link"),  # readers mark unresolved links -2
    ([[0]], "cyclic mother links"),  # own mother
    ([[-1, 2, 1]], "cyclic mother links"),  # 1 <-> 2
    ([[2, 0, 1]], "cyclic mother links"),  # 0 -> 2 -> 1 -> 0, no root at all
])
def test_each_reason_is_found(mothers, reason):
    bad = find_bad_events(_table(mothers))
    assert bad[reason].tolist() == [True]
    assert sum(mask.any() for mask in bad.values()) == 1


def test_non_finite_values_are_found_per_event():
    table = _table([[-1, 0], [-1], [-1, 0, 0]], nan_at=3)  # particle 3 is in event 2
    table.particles["energy"][2] = np.inf  # event 1
    assert find_bad_events(table)["non-finite value"].tolist() == [False, True, True]


def test_non_finite_and_negative_weights_are_found():
    table = _table([[-1]] * 5).replace(weight=np.array([1.0, np.nan, np.inf, -0.5, 0.0], np.float32))
    bad = find_bad_events(table)
    assert bad["non-finite weight"].tolist() == [False, True, True, False, False]
    assert bad["negative weight"].tolist() == [False, False, False, True, False]  # a weight of 0 is kept
    clean, report = drop_bad_events(table)
    np.testing.assert_array_equal(clean.event_id, [100, 104])
    assert dict(report.skipped) == {"non-finite weight": 2, "negative weight": 1}
    with pytest.raises(DataError, match="f.parquet: event 101: field 'weight': non-finite weight"):
        drop_bad_events(table, strict=True, source="f.parquet")
    assert not any(m.any() for m in find_bad_events(table.replace(weight=None)).values())


def test_a_long_chain_is_not_a_cycle():
    # 300 particles each the daughter of the previous one: deep but acyclic.
    chain = [-1] + list(range(299))
    cyclic = list(range(1, 300)) + [0]  # one 300-particle loop
    bad = find_bad_events(_table([chain, cyclic]))
    assert bad["cyclic mother links"].tolist() == [False, True]


def test_mothers_index_within_their_own_event():
    # Event 0 has 2 particles; in event 1, mother 1 is valid locally. A mother index that would
    # be valid only globally (e.g. 3 in a 3-particle event) is dangling.
    bad = find_bad_events(_table([[-1, 0], [-1, 0, 1], [-1, 3, 0]]))
    assert bad["dangling mother link"].tolist() == [False, False, True]


def test_drop_counts_each_event_once_under_its_first_reason():
    table = _table([[-1, 0], [], [-1, 7], [0], [-1, 0]], nan_at=4)  # NaN in event 3, which is also cyclic
    clean, report = drop_bad_events(table, source="f.parquet")
    np.testing.assert_array_equal(clean.event_id, [100, 104])
    assert report.read == 5 and report.kept == 2
    assert dict(report.skipped) == {"empty event": 1, "non-finite value": 1, "dangling mother link": 1}


def test_strict_names_file_event_and_field():
    table = _table([[-1, 0], [-1, 4]])
    with pytest.raises(DataError) as err:
        drop_bad_events(table, strict=True, source="f.parquet")
    assert str(err.value) == "f.parquet: event 101: field 'mother': dangling mother link"


def test_reject_events_counts_or_raises():
    report = ReadReport()
    keep = reject_events([(np.array([False, True, True, False]), "duplicate particle index", "index"),
                          (np.array([False, False, True, True]), "label differs", "labels")],
                         event_id=np.array([7, 8, 9, 10]), report=report)
    assert keep.tolist() == [True, False, False, False]  # event 9 counts under its first reason only
    assert report.read == 3 and dict(report.skipped) == {"duplicate particle index": 2, "label differs": 1}
    with pytest.raises(DataError, match="f.h5: event 8: field 'index': duplicate"):
        reject_events([(np.array([False, True]), "duplicate particle index", "index")],
                      event_id=np.array([7, 8]), report=report, strict=True, source="f.h5")


def test_strict_names_the_earliest_bad_event_whatever_the_reason():
    # Event 101 is dangling (found by the checks), event 102 cannot be built (a reader's rejection),
    # event 103 both rejected for labels and dangling: the checks' event comes first in the file.
    table = _table([[-1], [-1, 5], [-1, 0], [-1, 9]])
    rejections = [(np.array([False, False, True, False]), "duplicate particle index", "index"),
                  (np.array([False, False, False, True]), "label differs", "labels")]
    with pytest.raises(DataError, match="^f.parquet: event 101: field 'mother': dangling mother link$"):
        reject_events(rejections, event_id=table.event_id, report=ReadReport(), strict=True, source="f.parquet",
                      table=table)
    # Without the dangling event 101, the rejection of 102 is the earliest.
    fixed = _table([[-1], [-1, 0], [-1, 0], [-1, 9]])
    with pytest.raises(DataError, match="event 102: field 'index': duplicate particle index"):
        reject_events(rejections, event_id=fixed.event_id, report=ReadReport(), strict=True, source="f.parquet",
                      table=fixed)


def test_report_adds_up_and_formats():
    a = ReadReport(read=3, kept=2, files=1)
    a.skipped["empty event"] += 1
    b = ReadReport(read=5, kept=5, files=1)
    b.notes["particles with unknown PDG id 9999"] += 4
    a += b
    assert a.to_dict() == {"files": 2, "read": 8, "kept": 7, "skipped": {"empty event": 1},
                           "notes": {"particles with unknown PDG id 9999": 4}}
    assert a.format().splitlines() == ["files read: 2", "events read: 8", "events kept: 7",
                                       "events skipped (empty event): 1", "particles with unknown PDG id 9999: 4"]
