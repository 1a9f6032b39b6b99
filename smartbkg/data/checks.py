"""Validation of event tables: find bad events, skip them with a count, or fail on the first.

Bad events are never dropped silently: :func:`drop_bad_events` returns a :class:`ReadReport`
that counts every skipped event by reason, and in strict mode raises a :class:`DataError`
naming the file, the event and the field instead.
"""

import json
import warnings
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .table import FLOAT_FIELDS

#: Reasons an event is rejected, with the field each one concerns.
REASON_FIELDS = {
    "empty event": "particles",
    "non-finite value": "particles",
    "non-finite weight": "weight",
    "negative weight": "weight",
    "dangling mother link": "mother",
    "cyclic mother links": "mother",
}


@dataclass
class ReadReport:
    """What was read, kept and skipped (and why), summed over files.

    ``skipped`` counts events by reason; ``notes`` counts things that were kept but are worth
    knowing (e.g. particles with an unknown PDG id).
    """

    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    files: int = 0

    def __iadd__(self, other):
        self.read += other.read
        self.kept += other.kept
        self.skipped.update(other.skipped)
        self.notes.update(other.notes)
        self.files += other.files
        return self

    def format(self):
        """One human-readable line per item."""
        lines = [f"files read: {self.files}", f"events read: {self.read}", f"events kept: {self.kept}"]
        lines += [f"events skipped ({reason}): {n}" for reason, n in sorted(self.skipped.items())]
        lines += [f"{what}: {n}" for what, n in sorted(self.notes.items())]
        return "\n".join(lines)

    def skip_summary(self, total=None):
        """One line saying how many events were skipped (of ``total`` read, if given) and why."""
        reasons = ", ".join(f"{reason} ({n})" for reason, n in sorted(self.skipped.items()))
        n = sum(self.skipped.values())
        of = "" if total is None else f" of {total}"
        return f"skipped {n}{of} event{'' if n == 1 and total is None else 's'}: {reasons}"

    def to_dict(self):
        return {"files": self.files, "read": self.read, "kept": self.kept,
                "skipped": dict(self.skipped), "notes": dict(self.notes)}


class SkippedEventsWarning(UserWarning):
    """Events were skipped while reading (the message says how many and why)."""


@contextmanager
def reporting(report):
    """The caller's :class:`ReadReport`, or a new one whose skips end in one warning.

    Readers count skipped events in the report they are given; called without one, they must
    still not lose events silently, so the skips are announced as a :class:`SkippedEventsWarning`.
    """
    if report is not None:
        yield report
        return
    own = ReadReport()
    yield own
    if own.skipped:
        warnings.warn(own.skip_summary(), SkippedEventsWarning, stacklevel=3)


@contextmanager
def located(path):
    """Give a :class:`DataError` raised without a file name (e.g. by
    :class:`~smartbkg.data.table.EventTable` itself, which knows no file) the name ``path``."""
    try:
        yield
    except DataError as exc:
        if exc.path is not None or path is None:
            raise
        raise DataError(exc.reason, path=path, event=exc.event, field=exc.field) from None


def find_bad_events(table):
    """Per reason, which events are bad.

    Event weights must be finite and non-negative: smartbkg's losses, metrics and importance
    sampling treat them as yields (class means and retention rates are ratios of weight sums,
    the distance correlation needs non-negative weights). Negative weights (e.g. from NLO
    generators) therefore make bad events; a weight of 0 is kept.

    Args:
        table: an :class:`~smartbkg.data.table.EventTable`.

    Returns:
        dict reason -> (n_events,) bool mask, one entry per key of :data:`REASON_FIELDS`.
    """
    n = len(table)
    counts = table.counts
    event_of = table.event_index()
    bad = {"empty event": counts == 0}

    finite = np.ones(table.n_particles, dtype=bool)
    for name in FLOAT_FIELDS:
        finite &= np.isfinite(table.particles[name])
    bad["non-finite value"] = _any_per_event(~finite, event_of, n)
    bad.update(bad_weights(table.weight, n))

    mother = table.particles["mother"].astype(np.int64)
    dangling = (mother < -1) | (mother >= counts[event_of])
    bad["dangling mother link"] = _any_per_event(dangling, event_of, n)

    # Pointer doubling: after k rounds `jump` is the 2^k-th ancestor; in an acyclic event every
    # chain ends at a root (-1) within the event's particle count, so anything left is a cycle.
    jump = np.where(dangling, -1, table.global_mother())
    if np.all(jump < np.arange(len(jump))):  # every mother precedes its daughter: no cycle possible
        bad["cyclic mother links"] = np.zeros(n, dtype=bool)
        return bad
    rounds = int(np.ceil(np.log2(max(int(counts.max(initial=1)), 2)))) + 1
    for _ in range(rounds):
        jump = np.where(jump >= 0, jump[np.maximum(jump, 0)], -1)
    bad["cyclic mother links"] = _any_per_event(jump >= 0, event_of, n)
    return bad


def bad_weights(weight, n_events):
    """{"non-finite weight": mask, "negative weight": mask} of (n_events,) bool for weights (n_events,) or None."""
    if weight is None:
        return {"non-finite weight": np.zeros(n_events, dtype=bool), "negative weight": np.zeros(n_events, dtype=bool)}
    return {"non-finite weight": ~np.isfinite(weight), "negative weight": weight < 0}


def _any_per_event(particle_mask, event_of, n_events):
    return np.bincount(event_of[particle_mask], minlength=n_events) > 0


def drop_bad_events(table, *, strict=False, source=None):
    """Remove bad events, counting them, or raise on the first one in strict mode.

    Args:
        table: the events to check.
        strict: raise :class:`DataError` for the first bad event instead of skipping.
        source: file name used in messages.

    Returns:
        (clean table, :class:`ReadReport` for these events).
    """
    bad = find_bad_events(table)
    if strict:
        raise_earliest([(mask, reason, REASON_FIELDS[reason]) for reason, mask in bad.items()], table.event_id, source)
    report = ReadReport(read=len(table), files=0)
    any_bad = np.zeros(len(table), dtype=bool)
    for reason, mask in bad.items():
        if not mask.any():
            continue
        # Count each bad event once, under its first reason.
        n_new = int((mask & ~any_bad).sum())
        if n_new:
            report.skipped[reason] += n_new
        any_bad |= mask
    report.kept = int((~any_bad).sum())
    return (table.take(~any_bad) if any_bad.any() else table), report


def raise_earliest(candidates, event_id, source):
    """In strict mode: raise a :class:`DataError` for the earliest bad event, if any.

    Args:
        candidates: list of ((n_events,) bool mask, reason, field); for an event bad for several
            reasons the first in the list is named.
        event_id: (n_events,) event identifiers, for the message.
        source: file name used in the message.
    """
    firsts = [(int(np.argmax(mask)), k) for k, (mask, _, _) in enumerate(candidates) if mask.any()]
    if firsts:
        first, k = min(firsts)  # the earliest event, then its first reason
        _, reason, field = candidates[k]
        raise DataError(reason, path=source, event=int(event_id[first]), field=field)


def reject_events(rejections, *, event_id, report, strict=False, source=None, table=None):
    """Count the events a reader cannot build (duplicate indices, null ids ...), or raise in strict mode.

    Args:
        rejections: list of ((n_events,) bool mask of the events to reject, reason, field): the
            reason is the key under which ``report.skipped`` counts them (each event once, under
            its first reason), the field is named in error messages.
        event_id: (n_events,) event identifiers, for the error message.
        report: :class:`ReadReport` that counts the rejected events as read and skipped.
        strict: raise :class:`DataError` for the earliest bad event instead.
        source: file name used in messages.
        table: the reader's :class:`~smartbkg.data.table.EventTable` of these events. In strict
            mode, when an event is rejected, its other events are checked too
            (:func:`find_bad_events`), so that the error names the earliest bad event of the
            file whatever made it bad, as without a reader's rejections.

    Returns:
        (n_events,) bool mask of the events to keep.
    """
    keep = np.ones(len(event_id), dtype=bool)
    rejected = []
    for mask, reason, field in rejections:
        new = mask & keep
        rejected.append((new, reason, field))
        keep &= ~new
    if strict and not keep.all():
        checked = find_bad_events(table).items() if table is not None else ()
        raise_earliest(rejected + [(mask & keep, reason, REASON_FIELDS[reason]) for reason, mask in checked],
                       event_id, source)
    for new, reason, _ in rejected:
        n = int(np.count_nonzero(new))
        if n:
            report.read += n
            report.skipped[reason] += n
    return keep


def metadata_json(version, skims, event_types):
    """The smartbkg metadata of a written file as JSON text, with a CRC-32 of its content.

    File formats keep such metadata where they have no checksum (the parquet footer, HDF5
    attributes in dense storage): the CRC lets :func:`parse_metadata` tell a damaged name from a
    real one.
    """
    meta = {"version": version, "skims": list(skims), "event_types": list(event_types)}
    return json.dumps({**meta, "crc32": _crc(meta)})


def _crc(meta):
    return zlib.crc32(json.dumps(meta, sort_keys=True).encode())


def parse_metadata(raw, path=None):
    """The smartbkg metadata of a file (JSON text, bytes or str) as a dict.

    Raises:
        DataError: not UTF-8, not JSON, not an object, without ``version``, ``skims`` and
            ``event_types`` (lists of names), or whose ``crc32`` does not match its content.
    """
    def fail(message):
        return DataError(message, path=path, field="smartbkg")

    try:
        meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(f"malformed smartbkg metadata ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise fail(f"smartbkg metadata must be a JSON object, got {type(meta).__name__}")
    for key in ("skims", "event_types"):
        names = meta.get(key)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise fail(f"smartbkg metadata {key!r} must be a list of names, got {names!r:.60}")
    if "crc32" in meta:
        crc = meta.pop("crc32")
        if crc != _crc(meta):
            raise fail("smartbkg metadata fails its checksum (damaged)")
    return meta


def label_values(values, path=None, field=None):
    """Skim decisions from a label column: booleans, or numbers that are 0 or 1.

    Args:
        values: (n,) array of a label column.

    Returns:
        ((n,) bool decisions, (n,) bool mask of values that are no decision: other numbers, NaN).

    Raises:
        DataError: a column that holds neither booleans nor numbers (e.g. strings).
    """
    values = np.asarray(values)
    if values.dtype == np.bool_:
        return values, np.zeros(len(values), dtype=bool)
    if values.dtype.kind not in "iuf":
        raise DataError(f"labels must be booleans or 0/1, got values of type {values.dtype}", path=path,
                        field=field)
    return values == 1, (values != 0) & (values != 1)
