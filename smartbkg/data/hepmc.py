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
vectorised over chunks of events. HepMC3 crashes on some damage and reads other damage as valid
values, so each event's text is checked before HepMC3 parses it (``_GuardedStream``): a
damaged event (a malformed event line, particle lines that do not match the count or the
numbering 1..N, an unreadable or unknown line, a PDG id beyond 32 bits, a parent or vertex link to no
earlier particle or declared vertex, unknown units, attributes that are not UTF-8) is skipped and
counted under its reason (or fails in strict mode), and reading resumes at the next event line.
An event HepMC3 still refuses costs that event and those HepMC3 had read ahead (counted as
``cannot parse event``). Event numbers are taken from the text as 64-bit integers (HepMC3 keeps
32 bits).

Completeness: :func:`write_hepmc` declares the number of events in the header (a run attribute
``A smartbkg.events N``), so events missing from a truncated file are counted as skipped; for
files without the declaration a missing end-of-listing footer is a note (the number of lost
events is not known).

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
import zlib
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass
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
HEPMC2_MARKER = b"HepMC::IO_GenEvent"
HEPMC3_MARKERS = (b"HepMC::Asciiv3", b"HepMC::Version 3")
#: Run attribute (a header line ``A smartbkg.events N``) with the number of events the file holds.
DECLARED_ATTRIBUTE = "smartbkg.events"
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
        skims: skims to read (default: the ``skim.*`` attributes that more than half of the
            events of the first chunk have, or all columns of the side file).
        labels: optional CSV side file with the labels (see the module docstring).
        default_event_type: event type of events without an ``event_type`` attribute or column.
        chunk_events: events per yielded table.
        strict: raise :class:`DataError` on events that cannot be built instead of skipping them.
        report: optional :class:`~smartbkg.data.checks.ReadReport` that receives notes and such
            skips (without one, skips end in a :class:`~smartbkg.data.checks.SkippedEventsWarning`).

    Yields:
        :class:`EventTable` per chunk (at least one, possibly empty; not yet validated).

    Raises:
        DataError: the file is missing, unreadable or no HepMC3 ASCII file, or its gzip stream is
            damaged (raised after the events before the damage were yielded).
    """
    with reporting(report) as report, located(path):
        side = LabelFile(labels) if labels is not None else None
        builder = _ChunkBuilder(path, skims, side, default_event_type, strict, report)
        with _open_text(path) as (raw, head):
            guard = _GuardedStream(raw, head)
            while True:
                reader = _reader(guard)
                event = GenEvent()
                while True:
                    with _silenced():
                        ok = reader.read_event(event)
                    failed = reader.failed()
                    # At the end of the file HepMC3 reports failure, with an empty event after the
                    # footer or with the last event where the footer is missing.
                    if ok and guard.passed:
                        builder.add(event, guard.passed.popleft())
                        if len(builder) >= chunk_events:
                            yield builder.build()
                    if failed:
                        break
                    _count_dropped(guard, builder, report, strict, path)
                if not guard.passed:
                    break
                # HepMC3 refused an event that passed the checks: that event and those HepMC3 had
                # read ahead are lost; reading starts again after them, at the next event line.
                guard.resynchronise("cannot parse event")
                _count_dropped(guard, builder, report, strict, path)
        if guard.damaged:
            raise DataError(guard.damaged, path=path)
        yield builder.build()
        _count_dropped(guard, builder, report, strict, path)
        _count_missing(guard, report, strict, path)


def _reader(guard):
    with _silenced():
        return pyhepmc.io.ReaderAscii(pyhepmc.io.pyiostream(guard, 1 << 16))


def _count_dropped(guard, builder, report, strict, path):
    """Count the events the guard took out of the stream; in strict mode raise for the first,
    after the events before it (in the builder) were checked."""
    if not guard.dropped:
        return
    if strict:
        if len(builder):
            builder.build()
        ordinal, number, reason, field = guard.dropped[0]
        raise DataError(reason, path=path, event=number if number is not None else f"#{ordinal} in file order",
                        field=field)
    for _, _, reason, _ in guard.dropped:
        report.read += 1
        report.skipped[reason] += 1
    guard.dropped.clear()


def _count_missing(guard, report, strict, path):
    """Events the file declares (``A smartbkg.events N``, written by :func:`write_hepmc`) but
    does not hold are counted as skipped; without a declaration a missing footer is a note."""
    seen = guard.ordinal + 1
    missing = guard.declared - seen if guard.declared is not None else None
    if guard.error is not None or (missing and missing > 0):
        reason = guard.error or "events missing at the end of the file (truncated)"
        if strict:
            raise DataError(reason, path=path, event=f"#{seen} in file order")
        n = missing if missing and missing > 0 else 1
        report.read += n
        report.skipped[reason if missing and missing > 0 else f"{reason}; rest of file not read"] += n
    elif missing is not None and missing < 0:
        report.notes[f"events beyond the {guard.declared} the file declares"] += -missing
    elif not guard.footer:
        if strict:
            raise DataError("file ends without the HepMC3 footer (truncated?)", path=path)
        report.notes["file ends without the HepMC3 footer (truncated?)"] += 1


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


def is_hepmc3(head):
    """Whether the first bytes ``head`` of a (decompressed) file are those of a HepMC3 ASCII file.

    Raises:
        DataError: HepMC2 (not supported).
    """
    if any(marker in head for marker in HEPMC3_MARKERS):
        return True
    if HEPMC2_MARKER in head:
        raise DataError("HepMC2 files are not supported; convert them to HepMC3 first")
    return False


@contextmanager
def _open_text(path):
    """(binary stream of the decompressed text, its first bytes, already read) of a HepMC3 file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a regular file", path=path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        raw = gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    with raw:
        try:
            head = raw.read(1024)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"corrupt gzip file ({exc})", path=path) from None
        if not is_hepmc3(head):
            raise DataError("not a HepMC3 ASCII file (no HepMC::Version or HepMC::Asciiv3 line at the start)",
                            path=path)
        yield raw, head


@dataclass
class _Passed:
    """What the guard knows of an event it handed to HepMC3: its place in the file, its number
    (HepMC3 keeps 32 bits), whether its text has a weight line, and whether the file ends inside it."""

    ordinal: int
    number: int
    weight_line: bool
    cut: bool = False


#: Numbers as HepMC3 writes them (or nan/inf, which the checks count); a token of these characters
#: that is no number (``1.2.3``) is not caught here (HepMC3 reads its start).
_FLOAT = rb"[-+.0-9eEnaifNAIFty]+"
_E_LINE = re.compile(rb"(-?\d+) (\d+) (\d+)(?: @(?: " + _FLOAT + rb"){4})?[ \t\r]*(?:\n|$)")
_P_LINE = re.compile(rb"\nP (\d{1,9}) (-?\d{1,9}) (-?\d{1,11})(?: " + _FLOAT + rb"){5} -?\d+[ \t\r]*(?=\n|$)")
_V_LINE = re.compile(rb"\nV (-?\d{1,9}) -?\d+ \[((?:\d{1,9},)*\d{1,9})\](?: @(?: " + _FLOAT + rb"){4})?[ \t\r]*(?=\n|$)")
_U_LINE = re.compile(rb"\nU ([^\n]*)")
_UNITS = {b"GEV MM", b"GEV CM", b"MEV MM", b"MEV CM"}
#: A line that is none of an event's (HepMC3 gives up on some, e.g. a tool line ``T``, mid-event).
_ODD_LINE = re.compile(rb"\n(?![UWAVPNCH] |\n|$)")
_A_LINES = re.compile(rb"\nA [^\n]*")
_A_LINE = re.compile(rb"\nA -?\d+ \S+ [^\n]*\S[ \t\r]*")  # id, name, value
_DECLARED = re.compile(rb"\nA " + re.escape(DECLARED_ATTRIBUTE.encode()) + rb" (\d+)[ \t\r]*(?=\n|$)")
_INT32 = (-(2**31), 2**31 - 1)
#: HepMC3 reads lines into a buffer of 256 KiB and gives up on longer ones (measured: 262,015 bytes
#: are read, 263,015 are not); longer lines are refused before.
MAX_LINE = 262_000


class _GuardedStream:
    """The file object pyhepmc reads (``readinto``): hands on whole events after checking them.

    HepMC3 crashes or gives up on some damage (a vertex naming a particle beyond the event, a
    particle line too many), reads other damage as valid values (an id ``abc`` as 0, an event
    number beyond 32 bits cut to its low bits, an unknown unit as the default) and links a
    particle whose parent does not exist as a root. Every event is therefore checked here first:
    its event line, the count, order and grammar of its particle and vertex lines, parent links,
    units and the encoding of its attributes. A damaged event is taken out of the stream, so
    reading resynchronises at the next event line, and listed in ``dropped`` as (ordinal in
    the file, event number or None, reason, field). The events handed on are queued in ``passed``
    (:class:`_Passed`). ``footer`` tells whether the end-of-listing line came; ``declared`` is
    the event count a ``A smartbkg.events N`` header line declares (None without one); ``error``
    says why the stream ended early (a gzip stream cut short), ``damaged`` why none of it can be
    trusted (compressed data that fails to decompress or its CRC-32).
    """

    BLOCK = 1 << 20

    def __init__(self, raw, head=b""):
        self.raw = raw
        self.ready = memoryview(b"")
        self.pending = b"\n" + head  # text after the last complete event, from a line start
        self.header = None  # the text before the first event (handed on again on a resynchronisation)
        self.eof = False
        self.ordinal = -1  # file ordinal of the last event seen
        self.passed = deque()
        self.dropped = []
        self.declared = None
        self.footer = False
        self.error = None
        self.damaged = None

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

    def resynchronise(self, reason):
        """After HepMC3 failed: drop what it has not returned (counted under ``reason``) and hand
        on the header again, then the next events."""
        for passed in self.passed:
            self.dropped.append((passed.ordinal, passed.number,
                                 "event cut off at the end of the file" if passed.cut else reason, "particles"))
        self.passed.clear()
        self.ready = memoryview(self.header or b"")

    def _fill(self):
        try:
            block = self.raw.read(self.BLOCK)
        except EOFError:  # a gzip stream cut short: what came before is sound
            self.error = "compressed file ends early (truncated)"
            block = b""
        except (OSError, zlib.error) as exc:  # damaged compressed data (or its CRC): the text may be wrong
            self.damaged = f"corrupt gzip stream ({str(exc).strip() or type(exc).__name__}); no event of the file is used"
            block = b""
        data = self.pending + block
        if not block:
            self.eof, self.pending = True, b""
        else:
            cut = data.rfind(b"\nE ")  # hand on the complete events, keep the last one for later
            if cut <= 0:
                self.pending = data
                return
            data, self.pending = data[:cut], data[cut:]
        parts = data.split(b"\nE ")
        pieces = []
        if self.header is None:
            header = parts[0][1:]  # without the newline put in front of the file
            self.header = header + b"\n"
            found = _DECLARED.search(b"\n" + header)
            self.declared = int(found.group(1)) if found else None
            pieces.append(header)
        else:
            pieces.append(parts[0])
        if self.eof:
            self.footer = FOOTER in data
            if len(parts) > 1:  # the last event ends at the footer, or the file ends inside it
                parts[-1] = parts[-1].partition(b"\n" + FOOTER)[0]
        for k, part in enumerate(parts[1:], 1):
            self.ordinal += 1
            checked = self._check_event(part, cut=self.eof and k == len(parts) - 1 and not self.footer)
            if checked is not None:
                pieces.append(checked)
        text = b"\nE ".join(pieces)
        if self.eof and self.footer and len(parts) > 1:
            text += b"\n" + FOOTER + b"\n"
        self.ready = memoryview(text)

    def _check_event(self, text, cut):
        """``text`` (an event without its leading ``E ``) to hand on, or None (listed in ``dropped``)."""
        line = _E_LINE.match(text)
        number = int(line.group(1)) if line else None
        if number is not None and not -(2**63) <= number < 2**63:
            line = number = None
        reason = self._problem(text, line) if line else ("malformed event line", "event")
        if reason is not None:
            if cut:
                reason = ("event cut off at the end of the file", "particles")
            self.dropped.append((self.ordinal, number, *reason))
            return None
        self.passed.append(_Passed(self.ordinal, number, b"\nW " in text, cut))
        return text

    @staticmethod
    def _problem(text, line):
        """(reason, field) of the first problem of an event's text, or None."""
        if len(text) > MAX_LINE and max(map(len, text.split(b"\n"))) >= MAX_LINE:
            return f"line longer than HepMC3 reads ({MAX_LINE} bytes)", "event"
        n_vertices, n_particles = int(line.group(2)), int(line.group(3))
        particles = _P_LINE.findall(text)
        if len(particles) != text.count(b"\nP "):
            return "unreadable particle line", "particles"
        if len(particles) != n_particles:
            return "particle count differs from the event line", "particles"
        vertices = _V_LINE.findall(text)
        if len(vertices) != text.count(b"\nV ") or len(vertices) > n_vertices:
            return "unreadable vertex line", "mother"
        if [p[0] for p in particles] != _numbers(n_particles):
            return "particle lines not numbered 1..N in order", "particles"
        if not all(_INT32[0] <= int(p[2]) <= _INT32[1] for p in particles):
            return "PDG id is no 32-bit integer", "pdg"
        if not all(-n_vertices <= int(p[1]) < k for k, p in enumerate(particles, 1)):
            return "dangling mother link", "mother"
        for vertex_id, incoming in vertices:
            if not -n_vertices <= int(vertex_id) <= -1 or not all(1 <= int(i) <= n_particles
                                                                   for i in incoming.split(b",")):
                return "dangling mother link", "mother"
        if any(unit.rstrip() not in _UNITS for unit in _U_LINE.findall(text)):
            return "unknown units", "units"
        if _ODD_LINE.search(text):
            return "unreadable line", "event"
        attributes = _A_LINES.findall(text)
        try:
            b"".join(attributes).decode()
        except UnicodeDecodeError:
            return "attribute is not UTF-8 text", "attributes"
        if not all(map(_A_LINE.fullmatch, attributes)):
            return "unreadable attribute line", "attributes"
        return None


@functools.lru_cache(maxsize=8)
def _numbers(n):
    """[b"1", b"2", ... b"n"]: the particle ids of an event's lines."""
    return [b"%d" % i for i in range(1, n + 1)]


class LabelFile:
    """Labels from a CSV side file: ``event_number,<skim>,...[,event_type]``, one row per event.

    Label values are 1/0 or true/false (any case). Attributes: ``skims`` (names, in file order),
    ``event_number`` (n,) int64 sorted, ``labels`` (n, n_skims) bool, ``event_type`` (n,) names or None.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except OSError as exc:
            raise DataError(f"cannot read label file ({exc.strerror})", path=path) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"label file is not UTF-8 text (byte {exc.start})", path=path) from None
        except csv.Error as exc:
            raise DataError(f"malformed label file ({exc})", path=path) from None
        if not rows or not rows[0] or rows[0][0].strip() != "event_number":
            raise DataError("a label file starts with the header 'event_number,<skim>,...'", path=path)
        header = [h.strip() for h in rows[0]]
        body = [r for r in rows[1:] if r]
        if not body:
            raise DataError("the label file lists no events", path=path)
        bad = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
        if bad is not None:
            raise DataError(f"line {bad + 2} has {len(body[bad])} fields, the header {len(header)}", path=path)
        table = np.array(body, dtype=str).reshape(len(body), len(header))
        try:
            numbers = table[:, 0].astype(np.int64)
        except (ValueError, OverflowError):
            raise DataError("event numbers must be 64-bit integers", path=path, field="event_number") from None
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
        self.number, self.units, self.origin, self.weights, self.attributes = [], [], [], [], []
        self.unreadable_weight = []

    def __len__(self):
        return len(self.number)

    def add(self, event, passed):
        """Collect one event and what the guard knows of its text (:class:`_Passed`)."""
        data = GenEventData()
        event.write_data(data)
        self.particles.append(data.particles)
        self.vertices.append(data.vertices)
        self.links1.append(data.links1)
        self.links2.append(data.links2)
        self.number.append(passed.number)  # HepMC3's own is cut to 32 bits
        self.units.append((_MOMENTUM[data.momentum_unit], _LENGTH[data.length_unit]))
        pos = data.event_pos
        self.origin.append((pos.t, pos.x, pos.y, pos.z))
        self.weights.append(data.weights[0] if len(data.weights) else None)
        self.unreadable_weight.append(passed.weight_line and not len(data.weights))
        self.attributes.append({name: value for i, name, value in
                                zip(data.attribute_id, data.attribute_name, data.attribute_string) if i == 0})

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
        bad = _any_per_event(dangling, event_of, n)
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
        if self.skims is None:  # those of most events of the first chunk, in their order of appearance
            seen = Counter(name for attrs in self.attributes for name in attrs if name.startswith(SKIM_PREFIX))
            self.skims = [name[len(SKIM_PREFIX):] for name, k in seen.items() if 2 * k > n]
        extra = [any(name.startswith(SKIM_PREFIX) and name[len(SKIM_PREFIX):] not in self.skims for name in attrs)
                 for attrs in self.attributes]
        if any(extra):
            self.report.notes["events with skim attributes not read (other skims than most events)"] += sum(extra)
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
        f.write(HEADER + f"A {DECLARED_ATTRIBUTE} {len(table)}\n")
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
