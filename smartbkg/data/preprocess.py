"""Particle selection with Belle II parity, vectorised over whole event tables.

The steps, each switchable in :class:`PreprocessConfig`:

1. drop initial-state particles (the ``initial`` flag: beam e+ and e-);
2. drop particles produced outside the box abs(x), abs(y), abs(z) < ``vertex_cut`` cm;
3. drop quarks and gluons (abs(pdg) in ``drop_abs_pdg``, by default 1-5 and 21);
4. re-link every kept particle to its nearest kept ancestor (a root if it has none);
5. make production times relative to the first kept particle of the event (in index order).

Events left without particles are removed and counted in :class:`PreprocessStats` (with how many
of them passed each skim), never lost silently. Preprocessing is idempotent. The input should
have passed :func:`~smartbkg.data.checks.drop_bad_events` (no dangling or cyclic links).
"""

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..errors import ConfigError, DataError
from .table import FLOAT_FIELDS, EventTable

#: Reasons a particle is dropped, in the order they are tested (a particle counts under the first).
DROP_REASONS = ("initial state", "outside vertex box", "quark or gluon")


@dataclass(frozen=True)
class PreprocessConfig:
    """Which preprocessing steps run (defaults: Belle II smartBKG).

    Args:
        drop_initial: drop particles flagged ``initial`` (beam particles).
        vertex_cut: half-width [cm] of the production-vertex box abs(x), abs(y), abs(z) < cut; None keeps all.
        drop_abs_pdg: absolute PDG ids of the particles to drop (default quarks d u s c b and the gluon);
            their daughters are re-linked to the nearest kept ancestor. Empty to keep all.
        relative_time: subtract the production time of the event's first kept particle.
    """

    drop_initial: bool = True
    vertex_cut: float | None = 10.0
    drop_abs_pdg: tuple = (1, 2, 3, 4, 5, 21)
    relative_time: bool = True

    def __post_init__(self):
        for name in ("drop_initial", "relative_time"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"preprocessing option {name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        cut = self.vertex_cut
        if cut is not None and (not _is_number(cut) or not cut > 0):
            raise ConfigError(f"preprocessing option vertex_cut must be a positive number (cm) or null, got {cut!r}")
        ids = self.drop_abs_pdg
        if not isinstance(ids, (list, tuple, set, frozenset, np.ndarray)) or not all(map(_is_integer, ids)):
            raise ConfigError(f"preprocessing option drop_abs_pdg must be a list of absolute PDG ids (integers), "
                              f"got {ids!r}")
        object.__setattr__(self, "drop_abs_pdg", tuple(sorted({int(p) for p in ids})))
        if any(p < 0 for p in self.drop_abs_pdg):
            raise ConfigError(f"drop_abs_pdg takes absolute PDG ids, got {list(self.drop_abs_pdg)}")

    def to_dict(self):
        return {**asdict(self), "drop_abs_pdg": list(self.drop_abs_pdg)}

    @classmethod
    def from_dict(cls, values):
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown preprocessing option(s) {sorted(unknown)}")
        return cls(**values)


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass
class PreprocessStats:
    """What preprocessing removed; adds up over chunks with ``+=``.

    ``dropped_particles`` counts particles by the first reason of :data:`DROP_REASONS` they meet;
    ``empty_events`` counts events left without particles (removed), and ``empty_passing`` how
    many of those passed each skim (skim name -> count), so retention rates can be corrected.
    """

    events_in: int = 0
    events_out: int = 0
    particles_in: int = 0
    particles_out: int = 0
    dropped_particles: dict = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    empty_events: int = 0
    empty_passing: dict = field(default_factory=dict)

    def __iadd__(self, other):
        self.events_in += other.events_in
        self.events_out += other.events_out
        self.particles_in += other.particles_in
        self.particles_out += other.particles_out
        for reason, n in other.dropped_particles.items():
            self.dropped_particles[reason] = self.dropped_particles.get(reason, 0) + n
        self.empty_events += other.empty_events
        for skim, n in other.empty_passing.items():
            self.empty_passing[skim] = self.empty_passing.get(skim, 0) + n
        return self

    def add_to_report(self, report):
        """Record the removed events and particles in a :class:`~smartbkg.data.checks.ReadReport`."""
        if self.empty_events:
            report.skipped["empty after preprocessing"] += self.empty_events
            report.kept -= self.empty_events
        for reason, n in self.dropped_particles.items():
            if n:
                report.notes[f"particles dropped by preprocessing ({reason})"] += n

    def to_dict(self):
        return asdict(self)


def preprocess(table, config=PreprocessConfig()):
    """Apply the preprocessing steps to every event of a table.

    Args:
        table: :class:`~smartbkg.data.table.EventTable` (units GeV, cm, ns).
        config: :class:`PreprocessConfig`.

    Returns:
        (preprocessed table without empty events, :class:`PreprocessStats`).
    """
    out, stats, _ = preprocess_with_mask(table, config)
    return out, stats


def preprocess_with_mask(table, config=PreprocessConfig()):
    """:func:`preprocess`, also returning the (n_events,) bool mask of the events that remain."""
    p = table.particles
    n = table.n_particles
    keep = np.ones(n, dtype=bool)
    dropped = {}
    for reason, mask in _drop_masks(p, config):
        dropped[reason] = int(np.count_nonzero(keep)) - int(np.count_nonzero(np.logical_and(keep, ~mask, out=keep)))
    n_kept = n - sum(dropped.values())
    index = index_dtype(n)

    kept_before = np.zeros(n + 1, dtype=index)  # kept_before[i]: kept particles before i
    np.cumsum(keep, out=kept_before[1:])
    offsets = kept_before[table.offsets].astype(np.int64)
    counts = np.diff(offsets)
    nonempty = counts > 0
    if n_kept < n:
        rows = np.flatnonzero(keep)
        particles = {f: p[f].take(rows) for f in ("pdg", *FLOAT_FIELDS)}
        particles["initial"] = np.zeros(n_kept, bool) if config.drop_initial else p["initial"].take(rows)
        particles["mother"] = _relinked_mothers(table, keep, kept_before, counts, rows)
    else:
        particles = dict(p)
    if config.relative_time and n_kept:
        first_time = particles["prodTime"][offsets[:-1][nonempty]]
        particles["prodTime"] = particles["prodTime"] - np.repeat(first_time, counts[nonempty])

    stats = PreprocessStats(events_in=len(table), particles_in=n, particles_out=n_kept,
                            dropped_particles={r: dropped.get(r, 0) for r in DROP_REASONS})
    stats.empty_events = int(len(table) - np.count_nonzero(nonempty))
    stats.events_out = stats.events_in - stats.empty_events
    stats.empty_passing = dict(zip(table.skims, table.labels[~nonempty].sum(axis=0).tolist()))
    if stats.empty_events:
        offsets = np.append(offsets[:-1][nonempty], n_kept)
        events = dict(labels=table.labels[nonempty], event_type=table.event_type[nonempty],
                      weight=None if table.weight is None else table.weight[nonempty],
                      event_id=table.event_id[nonempty])
    else:
        events = {}
    return table.replace(offsets=offsets, particles=particles, **events), stats, nonempty


def index_dtype(n):
    """int32 for flat particle indices when they fit (half the memory traffic), else int64."""
    return np.int32 if n < 2**31 - 1 else np.int64


def _drop_masks(p, config):
    """(reason, (n_particles,) bool mask of particles to drop) for each enabled step."""
    if config.drop_initial:
        yield DROP_REASONS[0], p["initial"]
    if config.vertex_cut is not None:
        outside = np.zeros(len(p["x"]), dtype=bool)
        scratch = np.empty(len(p["x"]), dtype=np.float32)
        for axis in ("x", "y", "z"):
            np.abs(p[axis], out=scratch)
            outside |= scratch >= config.vertex_cut
        yield DROP_REASONS[1], outside
    if config.drop_abs_pdg:
        # Small boolean lookup table over |pdg|; its last cell (False) catches larger ids.
        lookup = np.zeros(config.drop_abs_pdg[-1] + 2, dtype=bool)
        lookup[list(config.drop_abs_pdg)] = True
        apdg = np.abs(p["pdg"])
        np.minimum(apdg, len(lookup) - 1, out=apdg)
        yield DROP_REASONS[2], lookup.take(apdg)


def _relinked_mothers(table, keep, kept_before, counts, rows):
    """Local mother index of each kept particle after re-linking to the nearest kept ancestor.

    Most kept particles have a kept mother. The others ("orphans") share few distinct dropped
    mothers; those climb their chain of dropped ancestors together (``_nearest_kept``), and
    every orphan takes its mother's result.

    Args:
        keep: (n,) bool kept particles; kept_before: (n + 1,) exclusive cumulative sum of keep;
        counts: (n_events,) kept particles per event; rows: (n_kept,) flat indices of kept particles.

    Returns:
        (n_kept,) int32 mother positions within the preprocessed events, -1 for roots.
    """
    n = len(keep)
    index = kept_before.dtype
    mother = table.particles["mother"]
    kept_mother = mother.take(rows)
    flat = kept_mother + np.repeat(table.offsets[:-1].astype(index), counts)  # the mother's flat index
    flat[kept_mother < 0] = n  # sentinel: no mother
    keep_ext = np.append(keep, True)
    orphans = np.flatnonzero(~keep_ext.take(flat))
    if len(orphans):
        is_head = np.zeros(n + 1, dtype=bool)
        is_head[flat[orphans]] = True
        heads = np.flatnonzero(is_head)
        ancestor = np.empty(n + 1, dtype=index)
        ancestor[heads] = _nearest_kept(table, keep_ext, heads)
        flat[orphans] = ancestor[flat[orphans]]
    # Nearest kept ancestor's flat index -> its position in the preprocessed event.
    local = kept_before.take(flat)
    local -= np.repeat(kept_before[table.offsets[:-1]], counts)
    local[flat == n] = -1
    return local.astype(np.int32, copy=False)


#: Levels climbed one at a time before ``_nearest_kept`` switches to pointer jumping.
CLIMB_STEPS = 8


def _nearest_kept(table, keep_ext, dropped):
    """Flat index of the nearest kept ancestor of each given dropped particle (n: none).

    Dropped chains are short in generator records: the particles climb one level per round
    (vectorised over all of them) for up to :data:`CLIMB_STEPS` levels. What is still climbing
    then finishes by pointer jumping over all dropped particles: ``up[i]`` starts as the mother
    of dropped particle i, and ``up = up[up]`` doubles the distance climbed each round, so
    log2(depth) rounds suffice.

    Args:
        keep_ext: (n + 1,) bool kept particles, with True for the sentinel n.
        dropped: (k,) flat indices of dropped particles.

    Returns:
        (k,) flat indices of their nearest kept ancestors, n for none.
    """
    n = len(keep_ext) - 1
    index = dropped.dtype
    mother = table.particles["mother"]
    start = np.repeat(table.offsets[:-1].astype(index), table.counts)  # event start of each particle

    def mothers(i):
        m = mother.take(i)
        return np.where(m >= 0, m + start.take(i), n).astype(index, copy=False)

    result = mothers(dropped)
    climbing = np.flatnonzero(~keep_ext.take(result))
    for _ in range(CLIMB_STEPS):
        if not len(climbing):
            return result
        result[climbing] = mothers(result[climbing])
        climbing = climbing[~keep_ext.take(result[climbing])]
    up = np.arange(n + 1, dtype=index)
    all_dropped = np.flatnonzero(~keep_ext)
    up[all_dropped] = mothers(all_dropped)
    active = all_dropped[~keep_ext.take(up[all_dropped])]
    for _ in range(int(np.log2(max(n, 2))) + 2):
        if not len(active):
            result[climbing] = up[result[climbing]]
            return result
        up[active] = up[up[active]]
        active = active[~keep_ext[up[active]]]
    event = int(table.event_id[np.searchsorted(table.offsets, active[0], side="right") - 1])
    raise DataError("cyclic mother links", event=event, field="mother")
