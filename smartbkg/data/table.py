"""The columnar event table: the one in-memory form of generated events.

One row per event; the particles of all events are stored back to back in flat numpy arrays
(one array per field) and ``offsets`` says where each event starts, like an Arrow list column.
Bulk code works on the flat arrays; no per-event Python objects are made on the hot paths.

Particle fields (units: GeV, cm, ns; Belle II conventions):

==========  ========  ===============================================================
field       dtype     meaning
==========  ========  ===============================================================
pdg         int32     PDG Monte Carlo particle id
mother      int32     index of the mother *within the event* (0-based), -1 for roots
initial     bool      initial-state particle (beam e+ / e-), dropped by preprocessing
prodTime    float32   production time [ns]
x, y, z     float32   production vertex [cm]
px, py, pz  float32   momentum [GeV]
energy      float32   energy [GeV]
==========  ========  ===============================================================

Event fields: ``labels`` (n_events, n_skims) bool with the skim names in ``skims``;
``event_type`` (n_events,) int16 codes into ``event_types`` (names); optional ``weight``
(n_events,) float32; ``event_id`` (n_events,) int64, an identifier carried through for
bookkeeping (defaults to 0..n-1).
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

#: The seven Belle II generic background types, in the order of their integer codes.
EVENT_TYPES = ("charged", "mixed", "uubar", "ddbar", "ssbar", "ccbar", "taupair")

#: Event-type codes of the data the readers give by default: the seven types above and
#: "unknown" (code 7), the type of events whose file names none (``default_event_type``).
NUM_EVENT_TYPES = len(EVENT_TYPES) + 1

#: Per-particle float fields, in storage order.
FLOAT_FIELDS = ("prodTime", "x", "y", "z", "px", "py", "pz", "energy")

#: All per-particle fields and their numpy dtypes.
PARTICLE_DTYPES = {
    "pdg": np.int32,
    "mother": np.int32,
    "initial": np.bool_,
    **{name: np.float32 for name in FLOAT_FIELDS},
}
PARTICLE_FIELDS = tuple(PARTICLE_DTYPES)

#: Node feature order of the Belle II ONNX model and of ``Data.x``: [prodTime, x, y, z, E, px, py, pz].
NODE_FEATURES = ("prodTime", "x", "y", "z", "energy", "px", "py", "pz")


@dataclass(eq=False)
class EventTable:
    """Events with ragged particle lists, stored column-wise.

    Args:
        offsets: (n_events + 1,) int64, particles of event i are ``offsets[i]:offsets[i+1]``.
        particles: field name -> (n_particles,) array, all fields of :data:`PARTICLE_DTYPES`.
        labels: (n_events, n_skims) bool skim decisions.
        skims: names of the label columns.
        event_type: (n_events,) int16 index into ``event_types``.
        event_types: names of the event types (default: the seven Belle II types).
        weight: optional (n_events,) float32 event weights.
        event_id: optional (n_events,) int64 identifiers (default 0..n-1).
    """

    offsets: np.ndarray
    particles: dict
    labels: np.ndarray
    skims: tuple
    event_type: np.ndarray
    event_types: tuple = EVENT_TYPES
    weight: np.ndarray | None = None
    event_id: np.ndarray | None = field(default=None)

    def __post_init__(self):
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        n = len(self.offsets) - 1
        missing = [f for f in PARTICLE_FIELDS if f not in self.particles and f != "initial"]
        if missing:
            raise DataError(f"missing particle fields {missing}")
        n_particles = int(self.offsets[-1])
        if "initial" not in self.particles:
            self.particles["initial"] = np.zeros(n_particles, dtype=np.bool_)
        for f in ("pdg", "mother"):
            self._check_int32(f)
        with np.errstate(over="ignore"):  # floats beyond float32 become inf, which the checks count as non-finite
            self.particles = {
                f: np.ascontiguousarray(self.particles[f], dtype=PARTICLE_DTYPES[f]) for f in PARTICLE_FIELDS
            }
        for f, values in self.particles.items():
            if values.shape != (n_particles,):
                raise DataError(f"has shape {values.shape}, expected ({n_particles},)", field=f)
        self.skims = tuple(self.skims)
        self.labels = np.asarray(self.labels, dtype=np.bool_).reshape(n, len(self.skims))
        self.event_types = tuple(self.event_types)
        codes = np.asarray(self.event_type).reshape(n)
        if n and (codes.min() < 0 or codes.max() >= len(self.event_types)):  # before the cast could wrap
            raise DataError("event type code outside the list of event types", field="event_type")
        self.event_type = codes.astype(np.int16)
        if self.weight is not None:
            with np.errstate(over="ignore"):
                self.weight = np.asarray(self.weight, dtype=np.float32).reshape(n)
        if self.event_id is None:
            self.event_id = np.arange(n, dtype=np.int64)
        self.event_id = np.asarray(self.event_id, dtype=np.int64).reshape(n)

    def _check_int32(self, name):
        """Raise a :class:`DataError` naming the field and event of the first value of integer particle
        field ``name`` that int32 cannot hold (it would wrap silently), or that is no integer."""
        values = np.asarray(self.particles[name])
        if values.dtype == np.int32 or values.dtype == np.bool_ or not values.size:
            return
        bad = outside_integer_range(values, np.iinfo(np.int32))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            event = int(np.searchsorted(self.offsets, i, side="right")) - 1
            if self.event_id is not None:
                event = int(np.asarray(self.event_id).reshape(-1)[event])
            raise DataError(f"{values[i]} is no 32-bit integer", event=event, field=name)

    # ------------------------------------------------------------------ sizes
    def __len__(self):
        return len(self.offsets) - 1

    @property
    def n_particles(self):
        """Total number of particles over all events."""
        return int(self.offsets[-1])

    @property
    def counts(self):
        """(n_events,) int64 number of particles per event."""
        return np.diff(self.offsets)

    def event_index(self):
        """(n_particles,) int64: the event each particle belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.counts)

    def global_mother(self):
        """(n_particles,) int64 mother as an index into the flat particle arrays, -1 for roots."""
        mother = self.particles["mother"].astype(np.int64)
        start = np.repeat(self.offsets[:-1], self.counts)
        return np.where(mother >= 0, mother + start, -1)

    # ------------------------------------------------------------ selection
    def take(self, events):
        """A new table with the given events, in the given order.

        Args:
            events: (k,) integer indices or (n_events,) boolean mask.
        """
        events = np.arange(len(self))[events] if np.asarray(events).dtype == np.bool_ else np.asarray(events)
        events = events.astype(np.int64, copy=False)
        counts = self.counts[events]
        offsets = np.zeros(len(events) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = ragged_arange(self.offsets[events], counts)
        return EventTable(
            offsets=offsets,
            particles={f: v[rows] for f, v in self.particles.items()},
            labels=self.labels[events],
            skims=self.skims,
            event_type=self.event_type[events],
            event_types=self.event_types,
            weight=None if self.weight is None else self.weight[events],
            event_id=self.event_id[events],
        )

    def __getitem__(self, events):
        if isinstance(events, slice):
            events = np.arange(len(self))[events]
        return self.take(events)

    def select_skims(self, skims):
        """A table with only the named label columns, in that order (views, no copies of particles).

        Args:
            skims: skim names, or one name as a string.
        """
        skims = skim_names(skims)
        unknown = [s for s in skims if s not in self.skims]
        if unknown:
            raise DataError(f"unknown skim(s) {unknown}; the data has {list(self.skims)}", field="labels")
        columns = [self.skims.index(s) for s in skims]
        return self.replace(labels=self.labels[:, columns], skims=skims)

    def replace(self, **changes):
        """A shallow copy with some attributes replaced."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["particles"] = dict(values["particles"])
        values.update(changes)
        return EventTable(**values)

    def event(self, i):
        """The particles of event ``i`` as a dict of arrays (for inspection and tests, not bulk work)."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {f: v[lo:hi] for f, v in self.particles.items()}

    @property
    def event_type_names(self):
        """(n_events,) array of event type names."""
        return np.asarray(self.event_types, dtype=object)[self.event_type]

    # ------------------------------------------------------------ building
    @classmethod
    def concat(cls, tables):
        """Concatenate tables with the same skims; event type lists are merged by name."""
        tables = list(tables)
        if not tables:
            raise DataError("no events to concatenate")
        skims = tables[0].skims
        for t in tables[1:]:
            if t.skims != skims:
                raise DataError(f"skims differ between inputs: {list(skims)} vs {list(t.skims)}", field="labels")
        event_types = list(tables[0].event_types)
        for t in tables[1:]:
            event_types += [name for name in t.event_types if name not in event_types]
        codes = []
        for t in tables:
            remap = np.array([event_types.index(name) for name in t.event_types], dtype=np.int16)
            codes.append(remap[t.event_type] if len(t) else t.event_type)
        offsets = np.zeros(sum(len(t) for t in tables) + 1, dtype=np.int64)
        np.cumsum(np.concatenate([t.counts for t in tables]), out=offsets[1:])
        weights = [t.weight for t in tables]
        if any(w is not None for w in weights):
            weights = [np.ones(len(t), np.float32) if w is None else w for t, w in zip(tables, weights)]
            weight = np.concatenate(weights)
        else:
            weight = None
        return cls(
            offsets=offsets,
            particles={f: np.concatenate([t.particles[f] for t in tables]) for f in PARTICLE_FIELDS},
            labels=np.concatenate([t.labels for t in tables]),
            skims=skims,
            event_type=np.concatenate(codes),
            event_types=tuple(event_types),
            weight=weight,
            event_id=np.concatenate([t.event_id for t in tables]),
        )

    @classmethod
    def from_events(cls, events, labels, skims, event_type, event_types=EVENT_TYPES, weight=None, event_id=None):
        """Build a table from a list of per-event dicts of particle arrays (small inputs, tests).

        Args:
            events: list of dicts, each field -> (n_i,) array; ``initial`` may be left out.
            labels: (n_events, n_skims) bools.
            event_type: (n_events,) codes, or names from ``event_types``.
        """
        counts = np.array([len(e["pdg"]) for e in events], dtype=np.int64)
        offsets = np.zeros(len(events) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        particles = {}
        for f, dtype in PARTICLE_DTYPES.items():
            parts = [np.asarray(e[f], dtype=dtype) if f in e else np.zeros(len(e["pdg"]), dtype) for e in events]
            particles[f] = np.concatenate(parts) if parts else np.zeros(0, dtype)
        event_type = [event_types.index(t) if isinstance(t, str) else t for t in np.atleast_1d(event_type)]
        if len(event_type) == 1 and len(events) != 1:
            event_type = event_type * len(events)
        return cls(offsets, particles, np.asarray(labels, bool).reshape(len(events), len(skims)), skims,
                   np.asarray(event_type, np.int16), event_types, weight, event_id)


def skim_names(skims):
    """Skim names as a tuple (None stays None); a single string is one name, not a list of letters.

    Raises:
        ConfigError: names that are not strings.
    """
    if skims is None:
        return None
    if isinstance(skims, str):
        return (skims,)
    try:
        names = tuple(skims)
    except TypeError:
        raise ConfigError(f"skims must be a skim name or a list of names, got {skims!r}") from None
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise ConfigError(f"skim names must be strings, got {bad[0]!r}")
    return names


def ragged_arange(starts, counts):
    """Concatenation of ``arange(s, s + c)`` for each (s, c), vectorised.

    Args:
        starts: (k,) int64 first index of each range.
        counts: (k,) int64 length of each range.

    Returns:
        (counts.sum(),) int64 indices.
    """
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # Each position's index is its range's start plus its position within the range.
    ends = np.cumsum(counts)
    shift = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + shift


def outside_integer_range(values, limits):
    """(n,) bool mask of the ``values`` that an integer type cannot hold exactly.

    Args:
        values: (n,) numeric array; limits: the type's :class:`numpy.iinfo`.

    Returns:
        True where a value lies outside [``limits.min``, ``limits.max``] or is no whole number
        (NaN included).
    """
    with np.errstate(invalid="ignore"):
        bad = (values < limits.min) | (values > limits.max)
        if values.dtype.kind == "f":
            bad |= values != np.round(values)  # NaN included
    return bad
