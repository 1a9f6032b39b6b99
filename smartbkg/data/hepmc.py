"""HepMC3 ASCII files (plain or gzip-compressed), from any generator, through pyhepmc.

Reading converts at the reader to smartbkg units: momenta and energies to GeV (MeV files too),
positions to cm (mm files too), and the vertex time, stored by HepMC as c*t in length units,
to ns (t[ns] = ct[mm] / 299.792458).

Decay trees: a particle's mother is the *first incoming particle* of its production vertex (a
Belle II particle has one mother; particles with several parents are counted as a note). A
particle's production point is its production vertex's position; a vertex without a position
takes that of the production vertex of its first incoming particle (as HepMC3 does), and
particles without a production vertex (beams, roots) get the event position. Beam particles
(status 4) are flagged ``initial``.

Labels and event types, per event:

* from event attributes: one attribute ``skim.<name>`` per skim with value 1/0 (or true/false),
  and a string attribute ``event_type``; or
* from a CSV side file (``labels=``): a header ``event_number,<skim>,...[,event_type]`` and one row
  per event, matched on the HepMC event number (which must then be unique).

Event weights: the first HepMC weight of each event (1 for events without weights); a file with
no weights at all gives a table without weights. An event whose weight line HepMC3 cannot parse
(``W nan``, ``W inf``, ``W abc``: HepMC3 drops such lines) is skipped as ``unreadable weight``.

HepMC reading is one C++ parse per event; everything after it (mothers, positions, units) is
vectorised over chunks of events. HepMC3 crashes on a vertex that names an incoming particle id
beyond the event's particle count, so the text is checked for that before HepMC3 parses it and
such events are skipped as dangling mother links (or fail in strict mode).

HepMC3 reports parse failures by printing to the C++ streams; smartbkg counts those events
itself, so HepMC3's messages are switched off (``pyhepmc.Setup``) and whatever C++ still writes
to stdout/stderr while an event is parsed is discarded (``_silenced``).
"""

import csv
import ctypes
import functools
import gzip
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyhepmc
from pyhepmc import GenEvent, GenEventData, Units

from ..errors import ConfigError, DataError
from .checks import _any_per_event, located, reject_events, reporting
from .table import EVENT_TYPES, EventTable, skim_names

SKIM_PREFIX = "skim."
EVENT_TYPE_ATTRIBUTE = "event_type"
#: Speed of light [mm/ns]: HepMC stores vertex times as c*t in length units.
C_MM_PER_NS = 299.792458
#: HepMC status of beam particles.
STATUS_BEAM = 4
GZIP_MAGIC = b"\x1f\x8b"
FOOTER = b"HepMC::Asciiv3-END_EVENT_LISTING"
_MOMENTUM = {Units.GEV: 1.0, Units.MEV: 1000.0}  # divide by this to get GeV
_LENGTH = {Units.MM: 10.0, Units.CM: 1.0}  # divide by this to get cm


# ---------------------------------------------------------------------------------------- reading
def read_hepmc(path, *, skims=None, labels=None, default_event_type="unknown", strict=False, report=None):
    """Read a whole HepMC3 file (see :func:`iter_hepmc` for the arguments) into one :class:`EventTable`."""
    chunks = list(iter_hepmc(path, skims=skims, labels=labels, default_event_type=default_event_type,
                             strict=strict, report=report))
    return chunks[0] if len(chunks) == 1 else EventTable.concat(chunks)


def iter_hepmc(path, *, skims=None, labels=None, default_event_type="unknown", chunk_events=10000,
               strict=False, report=None):
    """Read a HepMC3 file in chunks of events.

    Args:
        path: plain or gzip-compressed HepMC3 ASCII file (detected from the content).
        skims: skims to read (default: all ``skim.*`` attributes of the first event, or all columns
            of the side file).
        labels: optional CSV side file with the labels (see the module docstring).
        default_event_type: event type of events without an ``event_type`` attribute or column.
        chunk_events: events per yielded table.
        strict: raise :class:`DataError` on events that cannot be built instead of skipping them.
        report: optional :class:`~smartbkg.data.checks.ReadReport` that receives notes and such
            skips (without one, skips end in a :class:`~smartbkg.data.checks.SkippedEventsWarning`).

    Yields:
        :class:`EventTable` per chunk (at least one, possibly empty; not yet validated).
    """
    with reporting(report) as report, located(path):
        side = LabelFile(labels) if labels is not None else None
        builder = _ChunkBuilder(path, skims, side, default_event_type, strict, report)
        with _open_text(path) as raw:
            guard = _GuardedStream(raw)
            with _silenced():
                reader = pyhepmc.io.ReaderAscii(pyhepmc.io.pyiostream(guard, 1 << 16))
            event = GenEvent()
            ordinal, failure = 0, None
            while True:
                with _silenced():
                    ok = reader.read_event(event)
                if reader.failed():
                    # At the end of the file HepMC3 reports success with an empty event after the
                    # footer, or with the last event where the footer is missing.
                    if ok and not guard.error and len(event.particles):
                        builder.add(event, bad=ordinal in guard.bad_events, weight_line=guard.has_weight(ordinal))
                    if not ok or guard.error:
                        failure = (guard.error or "cannot parse event (file truncated or corrupt)", True)
                    elif not guard.footer:
                        failure = ("file ends without the HepMC3 footer (truncated?)", False)
                    break
                builder.add(event, bad=ordinal in guard.bad_events, weight_line=guard.has_weight(ordinal))
                ordinal += 1
                if len(builder) >= chunk_events:
                    yield builder.build()
        # The events before the damage first: in strict mode an earlier bad event is the error.
        yield builder.build()
        if failure is not None:
            _unreadable(path, ordinal, *failure, strict, report)


def _unreadable(path, ordinal, reason, counted, strict, report):
    if strict:
        raise DataError(reason, path=path, event=f"#{ordinal} in file order")
    if counted:
        report.read += 1
        report.skipped[f"{reason}; rest of file not read"] += 1
    else:
        report.notes[reason] += 1


_LIBC = ctypes.CDLL(None)


@functools.cache
def _devnull():
    """A write descriptor on /dev/null, opened once per process."""
    return os.open(os.devnull, os.O_WRONLY)


@contextmanager
def _silenced():
    """Run HepMC3 code without its diagnostics reaching the user.

    HepMC3's own messages are switched off through ``pyhepmc.Setup`` (restored afterwards); what
    its C++ code prints regardless (e.g. ``0 vs -1 expected`` on a truncated event) goes to
    /dev/null: file descriptors 1 and 2 point there for the duration. C's buffers are flushed on
    both sides (C++ ``std::cout`` writes through C's buffered stdout), so that output written
    before is not lost and HepMC3's does not come out later.
    """
    setup = pyhepmc.Setup
    saved = setup.print_errors, setup.print_warnings, setup.debug_level
    setup.print_errors, setup.print_warnings, setup.debug_level = False, False, 0
    _LIBC.fflush(None)
    redirected = []
    try:
        for fd in (1, 2):
            try:
                redirected.append((fd, os.dup(fd)))
            except OSError:  # a closed descriptor: nothing to protect
                continue
            os.dup2(_devnull(), fd)
        yield
    finally:
        _LIBC.fflush(None)
        for fd, saved_fd in redirected:
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
        setup.print_errors, setup.print_warnings, setup.debug_level = saved


def _open_text(path):
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


class _GuardedStream:
    """The file object pyhepmc reads (``readinto``): hands on whole lines after checking them.

    A vertex line ``V id status [p1,p2,...]`` naming a particle id outside 1..N (N from the
    event line ``E number n_vertices N``) would crash HepMC3; such ids are replaced by 1, and the
    event's ordinal is put in ``bad_events``. ``footer`` tells whether the end-of-listing line came.
    The ordinals of events with a weight line ``W ...`` are kept until :meth:`has_weight` asks
    (HepMC3 drops a weight line it cannot parse, e.g. ``W nan``, without a word).
    """

    BLOCK = 1 << 20
    _BRACKETS = re.compile(rb"\nV -?\d+ -?\d+ \[([^\]\n]*)\]")
    _COUNT = re.compile(rb"-?\d+ \d+ (\d+)")  # after "E ": event number, vertices, particles

    def __init__(self, raw):
        self.raw = raw
        self.ready = memoryview(b"")
        self.tail = b"\n"  # so that the first line also follows a newline
        self.first = True
        self.eof = False
        self.n_particles = 0  # particles of the event being read
        self.ordinal = -1  # ordinal of that event in the file
        self.bad_events = set()
        self.weighted = set()  # ordinals of events read ahead that have a weight line
        self.footer = False
        self.error = None

    def readinto(self, buffer):
        while not len(self.ready):
            if self.eof:
                return 0
            try:
                self._fill()
            except Exception as exc:  # pyhepmc would take an exception here for the end of the file
                self.error, self.eof = f"cannot check the file ({exc})", True
                return 0
        n = min(len(buffer), len(self.ready))
        buffer[:n] = self.ready[:n]
        self.ready = self.ready[n:]
        return n

    def _fill(self):
        try:
            block = self.raw.read(self.BLOCK)
        except (OSError, EOFError) as exc:  # e.g. a truncated gzip stream
            self.error = f"cannot decompress ({exc})"
            block = b""
        if not block:
            self.eof = True
            data, self.tail = self.tail, b""
        else:
            data = self.tail + block
            cut = data.rfind(b"\n")  # hand on up to the last newline, keep it for the next block
            data, self.tail = data[:cut], data[cut:]
        self.footer |= FOOTER in data
        checked = self._check(data)
        if self.first:
            checked, self.first = checked[1:], False  # drop the newline put in front of the file
        self.ready = memoryview(checked)

    def _check(self, data):
        parts = data.split(b"\nE ")
        # parts[0] continues the current event; every later part starts a new one.
        pieces = [self._check_event(parts[0], self.n_particles)] if self.ordinal >= 0 else [parts[0]]
        for part in parts[1:]:
            self.ordinal += 1
            count = self._COUNT.match(part)
            self.n_particles = int(count.group(1)) if count else 0
            pieces.append(self._check_event(part, self.n_particles))
        return b"\nE ".join(pieces)

    def has_weight(self, ordinal):
        """Whether event ``ordinal`` has a weight line (asked once per event, in file order)."""
        if ordinal not in self.weighted:
            return False
        self.weighted.remove(ordinal)
        return True

    def _check_event(self, text, n_particles):
        if b"\nW " in text:
            self.weighted.add(self.ordinal)
        brackets = self._BRACKETS.findall(text)
        if not brackets:
            return text
        ids = np.array(b",".join(brackets).split(b","), dtype=np.int64) if all(brackets) else np.zeros(1, np.int64)
        if ids.min() >= 1 and ids.max() <= n_particles:
            return text
        self.bad_events.add(self.ordinal)

        def repair(match):
            ids = [int(i) if i.strip().isdigit() else 0 for i in match.group(1).split(b",")]
            fixed = b",".join(b"%d" % (i if 1 <= i <= n_particles else 1) for i in ids)
            return match.group(0)[:match.start(1) - match.start(0)] + fixed + b"]"

        return self._BRACKETS.sub(repair, text)


class LabelFile:
    """Labels from a CSV side file: ``event_number,<skim>,...[,event_type]``, one row per event.

    Label values are 1/0 or true/false (any case). Attributes: ``skims`` (names, in file order),
    ``event_number`` (n,) int64 sorted, ``labels`` (n, n_skims) bool, ``event_type`` (n,) names or None.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
        except OSError as exc:
            raise DataError(f"cannot read label file ({exc.strerror})", path=path) from None
        if not rows or not rows[0] or rows[0][0].strip() != "event_number":
            raise DataError("a label file starts with the header 'event_number,<skim>,...'", path=path)
        header = [h.strip() for h in rows[0]]
        body = [r for r in rows[1:] if r]
        bad = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
        if bad is not None:
            raise DataError(f"line {bad + 2} has {len(body[bad])} fields, the header {len(header)}", path=path)
        table = np.array(body, dtype=str).reshape(len(body), len(header))
        try:
            numbers = table[:, 0].astype(np.int64)
        except ValueError:
            raise DataError("event numbers must be integers", path=path, field="event_number") from None
        order = np.argsort(numbers, kind="stable")
        self.event_number = numbers[order]
        if np.any(self.event_number[1:] == self.event_number[:-1]):
            raise DataError("event number listed twice", path=path, field="event_number")
        self.event_type = table[order, header.index(EVENT_TYPE_ATTRIBUTE)] if EVENT_TYPE_ATTRIBUTE in header else None
        self.skims = [h for h in header[1:] if h != EVENT_TYPE_ATTRIBUTE]
        self.labels = np.zeros((len(body), len(self.skims)), dtype=bool)
        for j, skim in enumerate(self.skims):
            values = np.char.lower(np.char.strip(table[order, header.index(skim)]))
            invalid = ~np.isin(values, ("0", "1", "true", "false"))
            if invalid.any():
                raise DataError(f"label {str(values[invalid][0])!r} is not 0/1/true/false", path=path,
                                event=int(self.event_number[invalid][0]), field=skim)
            self.labels[:, j] = np.isin(values, ("1", "true"))

    def lookup(self, event_number):
        """(rows into the file's arrays, (n,) bool found) for the given event numbers."""
        at = np.minimum(np.searchsorted(self.event_number, event_number), max(len(self.event_number) - 1, 0))
        found = (self.event_number[at] == event_number) if len(self.event_number) else np.zeros(len(event_number), bool)
        return at, found


class _ChunkBuilder:
    """Collects the per-event arrays of GenEvents and turns a chunk of them into an EventTable."""

    def __init__(self, path, skims, side, default_event_type, strict, report):
        self.path, self.side, self.strict, self.report = path, side, strict, report
        self.default_event_type = default_event_type
        skims = skim_names(skims)
        if side is not None:
            missing = [s for s in (skims or []) if s not in side.skims]
            if missing:
                raise DataError(f"unknown skim(s) {missing}; the label file has {side.skims}", path=side.path,
                                field="labels")
        self.skims = list(skims) if skims is not None else (list(side.skims) if side is not None else None)
        self.event_types = list(EVENT_TYPES)
        self._clear()

    def _clear(self):
        self.particles, self.vertices, self.links1, self.links2 = [], [], [], []
        self.number, self.units, self.origin, self.weights, self.attributes, self.bad = [], [], [], [], [], []
        self.unreadable_weight = []

    def __len__(self):
        return len(self.number)

    def add(self, event, bad=False, weight_line=False):
        """Collect one event; ``bad``: it names a missing particle; ``weight_line``: its text has a ``W`` line."""
        data = GenEventData()
        event.write_data(data)
        self.particles.append(data.particles)
        self.vertices.append(data.vertices)
        self.links1.append(data.links1)
        self.links2.append(data.links2)
        self.number.append(data.event_number)
        self.units.append((_MOMENTUM[data.momentum_unit], _LENGTH[data.length_unit]))
        pos = data.event_pos
        self.origin.append((pos.t, pos.x, pos.y, pos.z))
        self.weights.append(data.weights[0] if len(data.weights) else None)
        self.unreadable_weight.append(weight_line and not len(data.weights))
        self.attributes.append({name: value for i, name, value in
                                zip(data.attribute_id, data.attribute_name, data.attribute_string) if i == 0})
        self.bad.append(bad)

    def build(self):
        n = len(self)
        n_part = np.array([len(p) for p in self.particles], dtype=np.int64)
        n_vert = np.array([len(v) for v in self.vertices], dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_part, out=offsets[1:])
        v_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_vert, out=v_offsets[1:])
        part = _concat(self.particles, np.dtype([("pid", "<i4"), ("status", "<i4"), ("px", "<f8"), ("py", "<f8"),
                                                 ("pz", "<f8"), ("e", "<f8")]))
        vert = _concat(self.vertices, np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("t", "<f8")]))
        mother, prod, parent, dangling, several = _tree(self.links1, self.links2, offsets, v_offsets)
        if several:
            self.report.notes["particles with several mothers (first incoming particle taken)"] += several
        event_of = np.repeat(np.arange(n), n_part)
        units = np.array(self.units, dtype=np.float64).reshape(n, 2)
        origin = np.array(self.origin, dtype=np.float64).reshape(n, 4)
        position = _positions(vert, prod, parent, origin, event_of)
        length_div = units[event_of, 1]
        momentum_div = units[event_of, 0]
        particles = {
            "pdg": part["pid"], "mother": np.where(mother >= 0, mother - offsets[event_of], -1),
            "initial": part["status"] == STATUS_BEAM,
            "prodTime": position[:, 0] * (10.0 / length_div) / C_MM_PER_NS,
            "x": position[:, 1] / length_div, "y": position[:, 2] / length_div, "z": position[:, 3] / length_div,
            "px": part["px"] / momentum_div, "py": part["py"] / momentum_div, "pz": part["pz"] / momentum_div,
            "energy": part["e"] / momentum_div,
        }
        event_id = np.array(self.number, dtype=np.int64)
        labels, event_type, rejected = self._labels(event_id)
        weighted = [w is not None for w in self.weights]
        weight = np.array([w if w is not None else 1.0 for w in self.weights]) if any(weighted) else None
        table = EventTable(offsets, particles, labels, tuple(self.skims), event_type, tuple(self.event_types),
                           weight, event_id)
        bad = np.array(self.bad, dtype=bool) | _any_per_event(dangling, event_of, n)
        unreadable = np.array(self.unreadable_weight, dtype=bool)
        keep = reject_events([(bad, "dangling mother link", "mother"), (unreadable, "unreadable weight", "weight"),
                              *rejected], event_id=event_id, report=self.report, strict=self.strict,
                             source=self.path, table=table)
        self._clear()
        return table if keep.all() else table.take(keep)

    def _labels(self, event_id):
        """(labels, event-type codes, [(reject mask, reason, field)]) of the collected events."""
        n = len(event_id)
        if self.side is not None:
            rows, found = self.side.lookup(event_id)
            labels = self.side.labels[rows][:, [self.side.skims.index(s) for s in self.skims]] if n else \
                np.zeros((0, len(self.skims)), bool)
            names = (list(self.side.event_type[rows]) if self.side.event_type is not None else [None] * n)
            names = [attrs.get(EVENT_TYPE_ATTRIBUTE, name) for attrs, name in zip(self.attributes, names)]
            return labels, self._codes(names), [(~found, "no labels in the label file", "labels")]
        if self.skims is None:
            first = self.attributes[0] if self.attributes else {}
            self.skims = [name[len(SKIM_PREFIX):] for name in first if name.startswith(SKIM_PREFIX)]
        labels = np.zeros((n, len(self.skims)), dtype=bool)
        missing = np.zeros(n, dtype=bool)
        invalid = np.zeros(n, dtype=bool)
        for i, attrs in enumerate(self.attributes):
            for j, skim in enumerate(self.skims):
                value = attrs.get(SKIM_PREFIX + skim)
                if value is None:
                    missing[i] = True
                elif value.strip().lower() in ("1", "true"):
                    labels[i, j] = True
                elif value.strip().lower() not in ("0", "false"):
                    invalid[i] = True
        names = [attrs.get(EVENT_TYPE_ATTRIBUTE) for attrs in self.attributes]
        return labels, self._codes(names), [(missing, "missing skim attribute", "labels"),
                                            (invalid, "skim attribute is not 0/1/true/false", "labels")]

    def _codes(self, names):
        names = [self.default_event_type if name is None else name for name in names]
        for name in dict.fromkeys(names):
            if name not in self.event_types:
                self.event_types.append(name)
        return np.array([self.event_types.index(name) for name in names], dtype=np.int16)


def _concat(arrays, dtype):
    """Concatenate structured arrays, keeping only the fields of ``dtype``."""
    if not arrays:
        return np.zeros(0, dtype=dtype)
    raw = np.dtype((np.void, arrays[0].dtype.itemsize))  # concatenating raw records skips field promotion
    return np.concatenate([a.view(raw) for a in arrays]).view(arrays[0].dtype)[list(dtype.names)].astype(dtype)


def _tree(links1, links2, offsets, v_offsets):
    """Mothers from HepMC vertex links, vectorised over a chunk (all indices global).

    Returns:
        mother (n,) or -1, prod (n,) production vertex or -1, parent (n_vertices,) production
        vertex of each vertex's first incoming particle or -1, dangling (n,) bool (a link from a
        particle to a vertex outside the event), number of particles with several parents.
    """
    n, n_vert = int(offsets[-1]), int(v_offsets[-1])
    n_links = np.array([len(link) for link in links1], dtype=np.int64)
    link_event = np.repeat(np.arange(len(n_links)), n_links)
    l1 = np.concatenate(links1).astype(np.int64) if links1 else np.zeros(0, np.int64)
    l2 = np.concatenate(links2).astype(np.int64) if links2 else np.zeros(0, np.int64)
    incoming = (l1 > 0) & (l2 < 0)  # particle l1 enters vertex -l2; else vertex -l1 emits particle l2
    p_local = np.where(incoming, l1, l2) - 1
    v_local = np.where(incoming, -l2, -l1) - 1
    p_ok = (p_local >= 0) & (p_local < np.diff(offsets)[link_event])
    valid = p_ok & (v_local >= 0) & (v_local < np.diff(v_offsets)[link_event])
    p_global = offsets[link_event] + p_local
    v_global = v_offsets[link_event] + v_local
    dangling = np.zeros(n, dtype=bool)
    dangling[p_global[p_ok & ~valid]] = True
    into, out = incoming & valid, ~incoming & valid
    first_in = np.full(n_vert + 1, -1, dtype=np.int64)  # the extra last cell answers index -1
    vertices, first = np.unique(v_global[into], return_index=True)
    first_in[vertices] = p_global[into][first]
    n_in = np.bincount(v_global[into], minlength=n_vert + 1)
    prod = np.full(n + 1, -1, dtype=np.int64)  # the extra last cell answers index -1
    prod[p_global[out]] = v_global[out]
    mother = first_in[prod[:n]]
    parent = prod[first_in[:n_vert]]
    several = int(np.count_nonzero(n_in[prod[:n]][prod[:n] >= 0] > 1))
    return mother, prod[:n], parent, dangling, several


def _positions(vert, prod, parent, origin, event_of):
    """(n, 4) production points (ct, x, y, z) in file units.

    A vertex without a position (all zero) takes that of its parent vertex, recursively, as
    HepMC3 does; particles without production vertex, or whose chain ends unset, take the event
    position ``origin`` (n_events, 4).
    """
    xyzt = np.stack([vert["t"], vert["x"], vert["y"], vert["z"]], axis=1) if len(vert) else np.zeros((0, 4))
    is_set = np.append(np.any(xyzt != 0, axis=1), False)
    source = np.append(np.where(is_set[:-1], np.arange(len(vert)), parent), -1)
    for _ in range(64):  # pointer jumping to the nearest vertex with a position
        follow = ~is_set[source] & (source >= 0)
        if not follow.any():
            break
        source = np.where(follow, source[source], source)
    pos = origin[event_of]
    at = source[prod]
    found = (prod >= 0) & (at >= 0) & is_set[at]
    pos[found] = xyzt[at[found]]
    return pos


# ---------------------------------------------------------------------------------------- writing
HEADER = "HepMC::Version 3.02.05\nHepMC::Asciiv3-START_EVENT_LISTING\n"


def write_hepmc(table, path, *, momentum_unit="GeV", length_unit="mm"):
    """Write events as a HepMC3 ASCII file (gzip-compressed when ``path`` ends with ``.gz``).

    The text is formatted here (16 significant digits, as HepMC3 writes) because pyhepmc cannot
    set the event position. Each particle with daughters gets an end vertex at the production
    point of its first daughter, shared by all her daughters: siblings produced elsewhere read
    back at their first sibling's point (a warning counts them). Roots have no production vertex
    (HepMC3 cannot read a vertex without incoming particles back): the first root's production
    point becomes the event position, and roots elsewhere read back there (a warning counts them). Status: 4 for
    initial-state particles, 2 for particles with daughters, 1 otherwise. Labels are written as
    ``skim.<name>`` attributes, the event type as ``event_type``, the weight (if any) as the event
    weight.

    Args:
        table: the events (:class:`EventTable`).
        path: output file (written to a temporary name, then renamed).
        momentum_unit: ``"GeV"`` or ``"MeV"``.
        length_unit: ``"mm"`` or ``"cm"``.
    """
    units = {"gev": Units.GEV, "mev": Units.MEV, "mm": Units.MM, "cm": Units.CM}
    if momentum_unit.lower() not in ("gev", "mev") or length_unit.lower() not in ("mm", "cm"):
        raise ConfigError(f"units must be GeV/MeV and mm/cm, got {momentum_unit!r}, {length_unit!r}")
    p_scale = _MOMENTUM[units[momentum_unit.lower()]]
    l_scale = _LENGTH[units[length_unit.lower()]]
    unit_line = f"U {momentum_unit.upper()} {length_unit.upper()}\n"
    p = table.particles
    pe = np.stack([p["px"], p["py"], p["pz"], p["energy"]], axis=1).astype(np.float64)
    mass = np.sqrt(np.maximum(pe[:, 3] ** 2 - (pe[:, :3] ** 2).sum(axis=1), 0.0))
    momenta = np.concatenate([pe, mass[:, None]], axis=1) * p_scale
    points = np.stack([p["x"], p["y"], p["z"], p["prodTime"]], axis=1).astype(np.float64)
    points[:, 3] *= C_MM_PER_NS / 10.0  # ns -> c*t in cm
    points *= l_scale
    names = [str(name) for name in table.event_types]
    displaced_roots = displaced_siblings = 0
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with (gzip.open if path.name.endswith(".gz") else open)(tmp, "wt") as f:
        f.write(HEADER)
        for i in range(len(table)):
            lo, hi = int(table.offsets[i]), int(table.offsets[i + 1])
            mother = p["mother"][lo:hi].astype(np.int64)
            has_daughters = np.bincount(mother[mother >= 0], minlength=hi - lo) > 0
            status = np.where(p["initial"][lo:hi], STATUS_BEAM, np.where(has_daughters, 2, 1))
            roots = np.flatnonzero(mother < 0)
            origin = points[lo + roots[0]] if len(roots) else np.zeros(4)
            displaced_roots += int(np.count_nonzero(np.any(points[lo + roots] != origin, axis=1)))
            daughters = np.flatnonzero(mother >= 0)
            first_daughter = np.zeros(hi - lo, dtype=np.int64)
            first_daughter[mother[daughters[::-1]]] = daughters[::-1]  # the last write, the first daughter, wins
            vertex_point = points[lo + first_daughter[mother[daughters]]]
            displaced_siblings += int(np.count_nonzero(np.any(points[lo + daughters] != vertex_point, axis=1)))
            n_vertices = len(np.unique(mother[mother >= 0]))
            lines = [f"E {int(table.event_id[i])} {n_vertices} {hi - lo}"
                     + (" @ " + " ".join(f"{v:.16e}" for v in origin) if origin.any() else "") + "\n", unit_line]
            if table.weight is not None:
                lines.append(f"W {float(table.weight[i]):.16e}\n")
            lines.append(f"A 0 {EVENT_TYPE_ATTRIBUTE} {names[table.event_type[i]]}\n")
            lines += [f"A 0 {SKIM_PREFIX}{skim} {int(table.labels[i, j])}\n" for j, skim in enumerate(table.skims)]
            vertex_of = {}  # mother -> id of its end vertex, numbered -1, -2 ... as first written
            for k in range(hi - lo):
                m = int(mother[k])
                if m >= 0 and m not in vertex_of:
                    vertex_of[m] = -(len(vertex_of) + 1)
                    position = " ".join(f"{v:.16e}" for v in points[lo + k])
                    lines.append(f"V {vertex_of[m]} 0 [{m + 1}] @ {position}\n")
                values = " ".join(f"{v:.16e}" for v in momenta[lo + k])
                lines.append(f"P {k + 1} {vertex_of[m] if m >= 0 else 0} {int(p['pdg'][lo + k])} {values} "
                             f"{int(status[k])}\n")
            f.write("".join(lines))
        f.write(FOOTER.decode() + "\n\n")
    tmp.replace(path)
    if displaced_roots:
        warnings.warn(f"{displaced_roots} root particles away from their event's first root were written at the "
                      f"event position (HepMC3 stores no production point for particles without mother)",
                      stacklevel=2)
    if displaced_siblings:
        warnings.warn(f"{displaced_siblings} particles away from their first sibling were written at that sibling's "
                      f"production point (HepMC3 stores one vertex per mother, shared by her daughters)",
                      stacklevel=2)
