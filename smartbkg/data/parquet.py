"""smartbkg parquet shards: the canonical storage, in the layout of Belle II smartBKG parquet.

One row per event. Columns:

* ``particles``: list of structs {pdg, index, mother_index, prodTime, x, y, z, px, py, pz,
  energy, initial}; ``index`` is the particle's index within the event, ``mother_index`` the
  mother's ``index`` (-1 or the particle's own index for roots). ``initial`` is a smartbkg
  addition (Belle II files lack it and it is then taken as false). A ``mother_index`` naming no
  particle of the event (< -1 included) is a dangling link, reported by the checks; an event
  whose ``index`` repeats cannot be built and is skipped and counted (or fails in strict mode).
* one boolean column per skim (Belle II files have a single column ``label``);
* ``event_type`` (string), ``weight`` (float32, optional), ``event_id`` (int64).

The schema metadata key ``smartbkg`` holds JSON with the skim names and event types, so a
shard is self-describing. Units: GeV, cm, ns.

Integrity: every data page is written with its CRC-32 checksum (parquet's ``crc`` page header
field) and pages are verified as they are read (:func:`open_parquet`), so a damaged page is a
:class:`~smartbkg.errors.DataError`, not a changed value. The footer (schema, row-group offsets,
the ``smartbkg`` metadata) has no checksum in the parquet format; damage there is found only
where it makes the file inconsistent.

Speed: particle fields are written as required (non-nullable) columns, which saves decoding
definition levels, and shards are lz4-compressed by default (decoding about twice as fast as
zstd for files about 10 % larger). In smartbkg shards ``index`` always equals the position in
the event, so readers skip that column.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from .checks import label_values, located, metadata_json, parse_metadata, reject_events, reporting
from .table import EVENT_TYPES, FLOAT_FIELDS, EventTable, outside_integer_range, skim_names

FORMAT_VERSION = 1
METADATA_KEY = b"smartbkg"
PARTICLE_STRUCT = pa.struct(
    [pa.field("pdg", pa.int32(), nullable=False), pa.field("index", pa.int32(), nullable=False),
     pa.field("mother_index", pa.int32(), nullable=False)]
    + [pa.field(name, pa.float32(), nullable=False) for name in FLOAT_FIELDS]
    + [pa.field("initial", pa.bool_(), nullable=False)]
)
PARTICLES_TYPE = pa.list_(pa.field("element", PARTICLE_STRUCT, nullable=False))
EVENT_COLUMNS = ("event_type", "weight", "event_id")
#: Columns written with dictionary encoding: the few distinct integers of pdg and the indices
#: compress well; float columns would fall back to plain encoding page by page (larger, slower).
DICTIONARY_COLUMNS = [f"particles.list.element.{name}" for name in ("pdg", "index", "mother_index")] + ["event_type"]


def table_to_arrow(table):
    """Convert an :class:`EventTable` to an Arrow table in the smartbkg parquet layout."""
    p = table.particles
    local_index = np.arange(table.n_particles, dtype=np.int64) - np.repeat(table.offsets[:-1], table.counts)
    children = [
        pa.array(p["pdg"]),
        pa.array(local_index.astype(np.int32)),
        pa.array(p["mother"]),
        *[pa.array(p[name]) for name in FLOAT_FIELDS],
        pa.array(p["initial"]),
    ]
    structs = pa.StructArray.from_arrays(children, fields=list(PARTICLE_STRUCT))
    particles = pa.ListArray.from_arrays(pa.array(table.offsets.astype(np.int32)), structs, type=PARTICLES_TYPE)
    columns = {"particles": particles}
    for j, skim in enumerate(table.skims):
        columns[skim] = pa.array(table.labels[:, j])
    columns["event_type"] = pa.DictionaryArray.from_arrays(
        pa.array(table.event_type.astype(np.int32)), pa.array(list(table.event_types), pa.string()))
    if table.weight is not None:
        columns["weight"] = pa.array(table.weight)
    columns["event_id"] = pa.array(table.event_id)
    meta = metadata_json(FORMAT_VERSION, table.skims, table.event_types)
    schema = pa.schema([pa.field("particles", PARTICLES_TYPE, nullable=False)]
                       + [pa.field(name, column.type) for name, column in list(columns.items())[1:]],
                       metadata={METADATA_KEY: meta.encode()})
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def write_parquet(table, path, *, row_group_size=8192, compression="lz4", columns=None):
    """Write an event table as one parquet shard (atomically: temp file, then rename).

    Args:
        table: the events.
        path: output file.
        row_group_size: events per row group, the unit of streaming, sharding and shuffling
            (a streaming buffer mixes several row groups drawn at random from all shards).
        compression: parquet codec (lz4 reads fastest; zstd gives ~10 % smaller files).
        columns: extra per-event columns, {name: (n_events,) array} (e.g. the filter's
            ``p_<skim>`` and ``weight_<skim>``); the readers leave them out of the table.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    data = table_to_arrow(table)
    for name, values in (columns or {}).items():
        data = data.append_column(name, pa.array(np.asarray(values)))
    pq.write_table(data, tmp, row_group_size=row_group_size, compression=compression,
                   use_dictionary=DICTIONARY_COLUMNS, write_page_checksum=True)
    tmp.replace(path)


def read_parquet(path, *, skims=None, row_groups=None, default_event_type="unknown", strict=False,
                 report=None):
    """Read a smartbkg or Belle II smartBKG parquet file.

    Args:
        path: the file.
        skims: label columns to read (default: all skims recorded in the file's metadata, or
            ``label`` for Belle II files).
        row_groups: read only these row groups (default all).
        default_event_type: event type of every event when the file has no ``event_type`` column.
        strict: raise :class:`DataError` on events that cannot be built (a particle index that
            appears twice) instead of skipping them.
        report: optional :class:`ReadReport` that counts such skips (without one, skips end
            in a :class:`~smartbkg.data.checks.SkippedEventsWarning`).

    Returns:
        :class:`EventTable` (not yet validated: see :func:`smartbkg.data.checks.drop_bad_events`).
    """
    try:
        f = open_parquet(path)
        meta = parquet_metadata(f.schema_arrow, path)
        skims = resolve_skims(meta, f.schema_arrow.names, skims, path)
        columns = read_columns(f, meta, skims)
        data = f.read_row_groups(row_groups, columns=columns) if row_groups is not None else f.read(columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read parquet file ({_first_line(exc)})", path=path) from None
    table, _ = table_from_arrow(data, skims=skims, event_types=meta.get("event_types"), path=path,
                                default_event_type=default_event_type, strict=strict, report=report)
    return table


def open_parquet(path):
    """A :class:`pyarrow.parquet.ParquetFile` that verifies the page checksums of the pages it reads
    (a damaged page raises :class:`OSError`; pages written without a checksum are read unchecked)."""
    return pq.ParquetFile(path, memory_map=True, page_checksum_verification=True)


def iter_parquet(path, *, chunk_events=100_000, **options):
    """:func:`read_parquet` in chunks of whole row groups of about ``chunk_events`` events, so
    that a large file never has to be in memory at once; ``options`` as for :func:`read_parquet`."""
    try:
        metadata = open_parquet(path).metadata
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read parquet file ({_first_line(exc)})", path=path) from None
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    groups, n = [], 0
    for g, size in enumerate(sizes):
        groups.append(g)
        n += size
        if n >= chunk_events and g < len(sizes) - 1:
            yield read_parquet(path, row_groups=groups, **options)
            groups, n = [], 0
    yield read_parquet(path, row_groups=groups or None, **options)


def parquet_metadata(schema, path):
    """The smartbkg metadata dict of a parquet schema ({} for foreign files)."""
    if "particles" not in schema.names:
        raise DataError("no 'particles' column: not a smartbkg or Belle II smartBKG parquet file",
                        path=path, field="particles")
    _check_particles_type(schema.field("particles").type, path)
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return parse_metadata(raw, path) if raw else {}


def _check_particles_type(arrow_type, path):
    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) or not pa.types.is_struct(
            arrow_type.value_type):
        raise DataError(f"has type {arrow_type}, expected a list of particle structs", path=path, field="particles")


def read_columns(parquet_file, meta, skims):
    """Column paths to read: particle fields (without ``index`` in smartbkg shards), skims, event columns."""
    names = parquet_file.schema_arrow.names
    particles = ["particles"]
    if meta.get("version"):  # smartbkg shard: index == position in the event
        particles = [c.path for c in parquet_file.schema if c.path.startswith("particles.")
                     and not c.path.endswith(".index")]
    return [*particles, *skims, *[c for c in EVENT_COLUMNS if c in names]]


def resolve_skims(meta, names, skims, path):
    """Check the requested skims (a list of names, or one) against a file's columns; default to all recorded skims."""
    skims = skim_names(skims)
    if skims is None:
        skims = meta.get("skims", ["label"] if "label" in names else [])
    missing = [s for s in skims if s not in names]
    if missing:
        known = meta.get("skims", [n for n in names if n not in ("particles", *EVENT_COLUMNS)])
        raise DataError(f"unknown skim(s) {missing}; the file has {known}", path=path, field="labels")
    return list(skims)


def table_from_arrow(data, *, skims, event_types=None, path=None, default_event_type="unknown",
                     strict=False, report=None):
    """Convert an Arrow table in the parquet layout to an :class:`EventTable` (vectorised).

    Roots may be marked with mother_index -1 or with their own index; ``index`` need not equal
    the position in the event. A mother_index that names no particle of the event (including
    values below -1) is kept as -2 (a dangling link) for
    :func:`~smartbkg.data.checks.find_bad_events` to report. Events in which a particle index
    appears twice cannot be built: they are left out and counted in ``report`` as
    ``duplicate particle index`` (in strict mode the first raises a :class:`DataError`).

    Args:
        data: Arrow table with a ``particles`` column and the ``skims`` columns.
        skims: label columns.
        event_types: event type names recorded in the file's metadata, if any.
        path: file name for messages.
        default_event_type: event type of every event when there is no ``event_type`` column.
        strict: raise instead of skipping events that cannot be built.
        report: optional :class:`ReadReport` that counts the skipped events (without one, skips
            end in a :class:`~smartbkg.data.checks.SkippedEventsWarning`).

    Returns:
        (:class:`EventTable` of the events that could be built, (n_rows,) bool mask of those rows).
    """
    col = data.column("particles").combine_chunks()
    _check_particles_type(col.type, path)
    if col.null_count:
        raise DataError(f"{col.null_count} events have a null particle list", path=path, field="particles")
    offsets = np.asarray(col.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    structs = col.flatten()
    present = {structs.type.field(i).name for i in range(structs.type.num_fields)}
    missing = [name for name in ("pdg", "mother_index", *FLOAT_FIELDS) if name not in present]
    if missing:
        raise DataError(f"particle structs lack fields {missing}", path=path, field="particles")
    names = data.column_names
    event_id = _values(data.column("event_id"), "int64", path, "event_id") if "event_id" in names else None
    particles = {}
    for name in ("pdg", "mother_index", "index", *FLOAT_FIELDS, "initial"):
        if name in present:
            kind = "bool" if name == "initial" else ("float" if name in FLOAT_FIELDS else "int32")
            particles[name] = _values(structs.field(name), kind, path, name, offsets=offsets, event_id=event_id)
    n_events = len(offsets) - 1
    counts = np.diff(offsets)
    particles["mother"], duplicate = _local_mothers(particles.pop("index", None), particles.pop("mother_index"),
                                                    offsets)

    labels = np.zeros((n_events, len(skims)), dtype=bool)
    not_label = np.zeros(n_events, dtype=bool)
    for j, skim in enumerate(skims):
        column = data.column(skim)
        if column.null_count:
            raise DataError(f"{column.null_count} null labels", path=path, field=skim)
        labels[:, j], invalid = label_values(column.to_numpy(zero_copy_only=False), path, skim)
        not_label |= invalid

    if "event_type" in names:
        types = data.column("event_type").combine_chunks()
        value_type = types.type.value_type if pa.types.is_dictionary(types.type) else types.type
        if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
            raise DataError(f"has type {types.type}, expected event type names (strings)", path=path,
                            field="event_type")
        if types.null_count:
            raise DataError(f"{types.null_count} null event types", path=path, field="event_type")
        if not pa.types.is_dictionary(types.type):
            types = types.dictionary_encode()
        dictionary = [str(v) for v in types.dictionary.to_pylist()]
        order = list(event_types or EVENT_TYPES)
        order += [t for t in dictionary if t not in order]
        remap = np.array([order.index(t) for t in dictionary], dtype=np.int16)
        event_type = remap[types.indices.to_numpy(zero_copy_only=False)]
    else:
        order = [*EVENT_TYPES, default_event_type] if default_event_type not in EVENT_TYPES else list(EVENT_TYPES)
        event_type = np.full(n_events, order.index(default_event_type), dtype=np.int16)
    weight = _values(data.column("weight"), "float", path, "weight", nulls=True) if "weight" in names else None
    with located(path):
        table = EventTable(offsets, particles, labels, tuple(skims), event_type, tuple(order), weight, event_id)
    if not duplicate.any() and not not_label.any():
        return table, np.ones(n_events, dtype=bool)
    with reporting(report) as report:
        keep = reject_events([(duplicate, "duplicate particle index", "index"),
                              (not_label, "label is not 0/1", "labels")], event_id=table.event_id,
                             report=report, strict=strict, source=path, table=table)
    return table.take(keep), keep


def _local_mothers(index, mother_index, offsets):
    """Map mother ``index`` values to positions within each event; roots -> -1, dangling -> -2.

    Args:
        index: (n,) ``index`` of each particle, or None when it equals the position in the event.
        mother_index: (n,) ``mother_index`` of each particle: -1 or the particle's own index for
            roots; any other negative value, or one that is no ``index`` of the event, is a
            dangling link.
        offsets: (n_events + 1,) event offsets.

    Returns:
        (n,) int32 mother positions, and (n_events,) bool: events in which an ``index`` appears
        twice (their mothers are meaningless).
    """
    counts = np.diff(offsets)
    dtype = np.int32 if offsets[-1] < 2**31 else np.int64
    position = np.arange(offsets[-1], dtype=dtype)
    position -= np.repeat(offsets[:-1].astype(dtype), counts)
    mother_index = mother_index.astype(dtype, copy=False)
    if index is None or np.array_equal(index, position):
        # Valid links are -1 .. count - 1: shifted by one and read as unsigned, everything
        # below -1 wraps to a huge number, so one comparison finds every dangling link.
        unsigned = np.uint32 if dtype == np.int32 else np.uint64
        shifted = mother_index + dtype(1)
        dangling = shifted.view(unsigned) > np.repeat(counts.astype(unsigned), counts)
        mother = np.where(dangling, dtype(-2), mother_index)
        mother[mother_index == position] = -1
        return mother.astype(np.int32, copy=False), np.zeros(len(counts), dtype=bool)
    index = index.astype(np.int64)
    mother_index = mother_index.astype(np.int64)
    position = position.astype(np.int64)
    is_root = (mother_index == -1) | (mother_index == index)
    # General case: look the mother's index up among the indices of its own event (keys are
    # event * span + index - low, so negative indices cannot reach into another event).
    event_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    low = int(index.min(initial=0))
    span = int(max(index.max(initial=0), mother_index.max(initial=0))) - low + 1
    key = event_of * span + (index - low)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    repeated = order[np.flatnonzero(sorted_key[1:] == sorted_key[:-1])]
    duplicate = np.zeros(len(counts), dtype=bool)
    duplicate[event_of[repeated]] = True
    wanted = event_of * span + (np.maximum(mother_index, 0) - low)
    at = np.minimum(np.searchsorted(sorted_key, wanted), len(key) - 1)
    found = (sorted_key[at] == wanted) & (mother_index >= 0)
    mother = np.where(found, position[order[at]], -2)
    return np.where(is_root, -1, mother).astype(np.int32), duplicate


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_INTEGER_RANGE = {"int32": np.iinfo(np.int32), "int64": np.iinfo(np.int64)}


def _values(column, kind, path, name, nulls=False, offsets=None, event_id=None):
    """A numeric Arrow column as numpy, checked against what the field holds.

    Args:
        kind: ``"int32"`` / ``"int64"`` (integers, or floats with integral values, in that range),
            ``"float"`` (numbers, not booleans) or ``"bool"``.
        nulls: nulls allowed (as NaN; floats only).
        offsets, event_id: for a particle field, the event offsets and identifiers (to name the
            event of a bad value).

    Raises:
        DataError: nulls, another type (strings, booleans as numbers), or an integer that the
            field cannot hold (never wrapped or rounded).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count and not (nulls and kind == "float"):
        raise DataError(f"{column.null_count} null values", path=path, field=name)
    expected = {"bool": pa.types.is_boolean, "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t)}
    if not expected.get(kind, expected["float"])(column.type):
        what = {"bool": "booleans", "float": "numbers"}.get(kind, "integers")
        raise DataError(f"has type {column.type}, expected {what}", path=path, field=name)
    values = column.to_numpy(zero_copy_only=False)
    if kind in _INTEGER_RANGE and (values.dtype.kind == "f" or values.dtype.itemsize * 8 > int(kind[3:])
                                   or values.dtype == np.uint64):
        bad = outside_integer_range(values, _INTEGER_RANGE[kind])
        if bad.any():
            i = int(np.argmax(bad))
            event = None
            if offsets is not None:
                event = int(np.searchsorted(offsets, i, side="right")) - 1
                event = int(event_id[event]) if event_id is not None else event
            raise DataError(f"{values[i]} is no {kind[3:]}-bit integer", path=path, event=event, field=name)
        values = values.astype(np.int64)
    return values.astype(np.float32) if name == "weight" else values
