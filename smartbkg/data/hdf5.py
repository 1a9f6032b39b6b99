"""Belle II basf2 HDF5 per-particle tables (read and write), with h5py only.

One row per particle, columns ``label, evtNum, arrayIndex, PDG, mass, charge, energy, prodTime,
x, y, z, px, py, pz, nDaughters, status, motherPDG, motherIndex`` (units GeV, cm, ns). Such
files were written by basf2 modules with pandas ``DataFrame.to_hdf``, i.e. in the PyTables layout:

* ``format='fixed'`` (James Kahn's smartBKG ``TrainDataSaver``, key ``train_events``): the group
  ``/<key>`` holds ``block<k>_items`` (column names) and ``block<k>_values`` (rows x columns, one
  block per dtype), and the index, here a MultiIndex (label, evtNum, arrayIndex), as
  ``axis1_level<k>`` (values) and ``axis1_label<k>`` (codes);
* ``format='table'`` (basf2 smartBKG ``TrainDataSaver``, key ``mc_information``): the compound
  dataset ``/<key>/table`` with fields ``index``, ``values_block_<k>`` (one sub-array per dtype,
  its column names pickled in the attribute ``values_block_<k>_kind``) and data columns;
* a plain compound dataset whose fields are the columns (e.g. written with h5py).

Neither pandas nor PyTables is needed; pickled attributes are decoded with an unpickler that
refuses every global, so a file cannot run code.

``motherIndex`` conventions (the ``mother_index`` option):

* ``"array"``: the mother's 0-based ``arrayIndex`` (basf2 ``MCParticle::getArrayIndex``), as both
  known smartBKG writers store it;
* ``"one-based"``: the mother's 1-based ``MCParticle::getIndex`` (0 = no mother);
* ``"auto"`` (default): decided from the data. With a ``motherPDG`` column, the convention whose
  mothers carry that PDG id wins; otherwise the one that leaves fewer links unresolved. When the
  data cannot tell, ``"array"`` is assumed and a note says so.

A particle is a root when ``motherIndex < 0``; when ``motherIndex == 0`` and ``motherPDG == 0``
(the original smartBKG writer); when ``motherIndex`` equals its own ``arrayIndex`` (``"array"``;
basf2 smartBKG marks roots so); or when ``motherIndex == 0`` (``"one-based"``). A mother that is
not in the table (the writers dropped virtual, initial-state and ISR/FSR particles) makes the
particle a root, as the basf2 smartBKG preprocessing does, counted as a note;
``missing_mother="error"`` reports such events as dangling mother links instead. Particles whose
``status`` has the bit ``c_Initial`` (32) are flagged ``initial``. Events are the groups of equal
``evtNum`` (in order of first appearance), particles ordered by ``arrayIndex``.

smartbkg additions (ignored by other readers): one boolean column per skim (Belle II files have
``label``), ``event_type`` (int codes) and ``weight`` columns, and a JSON attribute
``smartbkg:<key>`` of the root group (files of earlier versions: ``smartbkg`` of the table) with
the skim and event-type names. These are per-event values repeated on every row: an event
whose rows disagree on a label, the event type or the weight is skipped (or fails in strict
mode); an event-type code that names none of the file's event types is a :class:`DataError`.

Integrity: files are written in the HDF5 1.10 format, whose superblock, object headers and chunk
indices carry checksums, and the ``table`` and ``compound`` layouts' data with Fletcher-32
checksums per chunk: damage there is a :class:`DataError`. The ``fixed`` layout stores its data
contiguously, as pandas does, without a checksum.
"""

import io
import pickle
from pathlib import Path

import h5py
import numpy as np
from particle.pdgid import charge as pdg_charge

from ..errors import ConfigError, DataError
from .checks import _any_per_event, label_values, located, metadata_json, parse_metadata, reject_events, reporting
from .table import EVENT_TYPES, FLOAT_FIELDS, EventTable, skim_names

#: Columns of the Belle II table, in the order the original writer used.
BELLE2_COLUMNS = ("label", "evtNum", "arrayIndex", "PDG", "mass", "charge", "energy", "prodTime", "x", "y", "z",
                  "px", "py", "pz", "nDaughters", "status", "motherPDG", "motherIndex")
#: Columns a file must have.
REQUIRED_COLUMNS = ("evtNum", "arrayIndex", "PDG", *FLOAT_FIELDS, "motherIndex")
#: Integer-valued columns (pandas may have stored them as floats).
INTEGER_COLUMNS = ("evtNum", "arrayIndex", "PDG", "motherIndex", "motherPDG", "status", "nDaughters")
MOTHER_CONVENTIONS = ("auto", "array", "one-based")
MISSING_MOTHER = ("root", "error")
#: MCParticle status bits (basf2 mdst/dataobjects/include/MCParticle.h).
STATUS_PRIMARY, STATUS_STABLE, STATUS_INITIAL = 1, 2, 32
ATTRIBUTE = "smartbkg"
LAYOUTS = ("table", "fixed", "compound")
#: HDF5 file format of written files: the 1.10 format has checksums on the file's own structures
#: (superblock, object headers, chunk indices); readable by HDF5 1.10 and later.
LIBVER = ("v110", "latest")


# ---------------------------------------------------------------------------------------- reading
def read_hdf5(path, *, key=None, skims=None, mother_index="auto", missing_mother="root",
              default_event_type="unknown", strict=False, report=None):
    """Read a Belle II per-particle HDF5 table.

    Args:
        path: the file.
        key: the table's key (group or dataset name); default: the only table in the file.
        skims: label columns to read (default: the skims recorded by smartbkg, else ``label``
            when present, else none).
        mother_index: ``"auto"``, ``"array"`` or ``"one-based"`` (see the module docstring).
        missing_mother: ``"root"`` (a mother not in the table makes a root, counted as a note) or
            ``"error"`` (a dangling link: the event is skipped, or fails in strict mode).
        default_event_type: event type of every event when the file has no ``event_type`` column.
        strict: raise :class:`DataError` on events that cannot be built instead of skipping them.
        report: optional :class:`ReadReport` that receives notes and such skips.

    Returns:
        :class:`EventTable` (not yet validated: see :func:`~smartbkg.data.checks.drop_bad_events`).
    """
    if mother_index not in MOTHER_CONVENTIONS:
        raise ConfigError(f"mother_index must be one of {list(MOTHER_CONVENTIONS)}, got {mother_index!r}")
    if missing_mother not in MISSING_MOTHER:
        raise ConfigError(f"missing_mother must be one of {list(MISSING_MOTHER)}, got {missing_mother!r}")
    columns, meta = read_columns(path, key)
    with reporting(report) as report, located(path):
        return _table_from_columns(columns, meta, path=path, skims=skims, mother_index=mother_index,
                                   missing_mother=missing_mother, default_event_type=default_event_type,
                                   strict=strict, report=report)


def read_columns(path, key=None):
    """The columns of a per-particle table in any of the three layouts.

    Returns:
        (dict column name -> (n_rows,) array, dict of smartbkg metadata or {}).
    """
    try:
        with h5py.File(path, "r") as f:
            node = _find_table(f, key, path)
            if isinstance(node, h5py.Group) and "table" in node:
                columns = _table_columns(node["table"], path)
            elif isinstance(node, h5py.Group):
                columns = _fixed_columns(node, path)
            else:
                columns = {name: node[name] for name in node.dtype.names}
            raw = f.attrs.get(f"{ATTRIBUTE}:{node.name.strip('/')}", node.attrs.get(ATTRIBUTE))
    except OSError as exc:  # damaged data (a failed checksum included) or file system errors
        raise DataError(f"cannot read HDF5 file ({str(exc).strip().splitlines()[0]})", path=path) from None
    except (KeyError, IndexError, ValueError, TypeError, UnicodeDecodeError, AttributeError, RuntimeError) as exc:
        # h5py and the layouts' parsing on damaged structure (a missing block, a bad attribute)
        raise DataError(f"damaged HDF5 table ({type(exc).__name__}: {str(exc).strip()[:120]})", path=path) from None
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise DataError(f"columns have different lengths {sorted(lengths)}", path=path)
    return columns, (parse_metadata(raw if isinstance(raw, (bytes, str)) else str(raw), path) if raw is not None
                     else {})


def _find_table(f, key, path):
    if key is not None:
        if key.strip("/") not in f:
            raise DataError(f"no table {key!r} in the file; it has {_candidates(f)}", path=path)
        return f[key.strip("/")]
    candidates = _candidates(f)
    if len(candidates) != 1:
        found = "no per-particle table" if not candidates else f"several tables {candidates}"
        raise DataError(f"{found}; name one with key=", path=path)
    return f[candidates[0]]


def _candidates(f):
    """Names of the pandas frames and plain compound datasets of a file."""
    found = []

    def visit(name, node):
        if isinstance(node, h5py.Group) and _text(node.attrs.get("pandas_type", b"")) in ("frame", "frame_table"):
            found.append(name)
        elif (isinstance(node, h5py.Dataset) and node.dtype.names and "evtNum" in node.dtype.names
              and not any(name.startswith(g + "/") for g in found)):
            found.append(name)

    f.visititems(visit)
    return found


def _table_columns(table, path):
    """Columns of a pandas ``format='table'`` frame (``/<key>/table``)."""
    data = table[()]
    columns = {}
    for name in data.dtype.names:
        if name == "index":
            continue
        values = data[name]
        if values.ndim == 1:
            columns[name] = values
            continue
        kind = table.attrs.get(f"{name}_kind")
        if kind is None:
            raise DataError(f"table field {name!r} has no column names ({name}_kind)", path=path)
        names = _safe_unpickle(kind, path)
        if len(names) != values.shape[1]:
            raise DataError(f"table field {name!r} has {values.shape[1]} columns but {len(names)} names", path=path)
        for j, column in enumerate(names):
            columns[str(column)] = values[:, j]
    return columns


def _fixed_columns(group, path):
    """Columns (index levels included) of a pandas ``format='fixed'`` frame."""
    columns = {}
    for k in range(int(group.attrs.get("nblocks", 0))):
        items = [_text(v) for v in group[f"block{k}_items"][()]]
        values = group[f"block{k}_values"][()]
        if values.dtype.kind == "O" or values.ndim != 2:
            raise DataError(f"columns {items} are stored as Python objects, which smartbkg cannot read", path=path)
        if values.shape[1] != len(items):
            values = values.T
        for j, column in enumerate(items):
            columns[column] = values[:, j]
    nlevels = int(group.attrs.get("axis1_nlevels", 0))
    levels = ([(f"axis1_level{k}", f"axis1_label{k}") for k in range(nlevels)] if nlevels else [("axis1", None)])
    for level, codes in levels:
        dataset = group[level]
        name = _text(dataset.attrs.get("name", b""))
        if name in ("", "N."):
            continue  # an unnamed index: the row number
        values = dataset[()]
        if _text(dataset.attrs.get("kind", b"")) == "bool":
            values = values.astype(bool)
        columns[name] = _level_values(values, group[codes][()], path) if codes else values
    return columns


def _level_values(levels, codes, path):
    """A MultiIndex level's values per row; code -1 (pandas' missing value) becomes NaN."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu" or len(codes) and (codes.min() < -1 or codes.max() >= len(levels)):
        raise DataError(f"damaged index: codes outside the {len(levels)} level values", path=path)
    if not (codes == -1).any():
        return levels[codes]
    values = levels[np.maximum(codes, 0)].astype(np.float64)
    values[codes == -1] = np.nan
    return values


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _safe_unpickle(raw, path):
    """Decode a PyTables pickled attribute (lists, tuples, strings, numbers only)."""
    try:
        return _NoGlobalsUnpickler(io.BytesIO(bytes(raw)), encoding="latin1").load()
    except Exception as exc:  # any malformed pickle is a data error
        raise DataError(f"cannot decode a pandas attribute ({exc})", path=path) from None


def _text(value):
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return str(value)


def _table_from_columns(columns, meta, *, path, skims, mother_index, missing_mother, default_event_type,
                        strict, report):
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"missing columns {missing}", path=path, field=missing[0])
    n_rows = len(columns["evtNum"])
    bad_rows = np.zeros(n_rows, dtype=bool)  # rows with null or non-integer ids
    ints = {}
    for name in INTEGER_COLUMNS:
        if name in columns:
            ints[name], bad = _as_int(np.asarray(columns[name]), path, name)
            if name == "evtNum" and bad.any():
                raise DataError("null or non-integer event number", path=path, field=name)
            bad_rows |= bad

    order, event_of, offsets, event_id = _group_rows(ints["evtNum"], ints["arrayIndex"])
    counts = np.diff(offsets)

    def arranged(values):
        values = np.asarray(values)
        return values if order is None else values[order]

    ints = {name: arranged(values) for name, values in ints.items()}
    bad_rows = arranged(bad_rows)

    def per_event(values):
        """(value of each event's first row, (n_events,) bool: the event's rows disagree); NaN equals NaN."""
        first = values[offsets[:-1]] if len(values) else values
        each = np.repeat(first, counts)
        differ = (values != each) & ~(_isnan(values) & _isnan(each))
        return first, _any_per_event(differ, event_of, len(counts))

    skims = _resolve_skims(columns, meta, skims, path)
    labels = np.zeros((len(counts), len(skims)), dtype=bool)
    inconsistent = np.zeros(len(counts), dtype=bool)
    not_label = np.zeros(n_rows, dtype=bool)
    for j, skim in enumerate(skims):
        values = arranged(columns[skim])
        decisions, invalid = label_values(values, path, skim)
        not_label |= invalid
        first, differ = per_event(decisions)
        inconsistent |= differ
        labels[:, j] = first

    index = ints["arrayIndex"]
    mother, missing_links = _mothers(ints, event_of, offsets, mother_index, report)
    if missing_links.any():
        if missing_mother == "error":
            mother[missing_links] = -2
        else:
            report.notes["particles whose mother is not in the table (made roots)"] += int(missing_links.sum())
    duplicate = np.zeros(len(index), dtype=bool)
    duplicate[1:] = (index[1:] == index[:-1]) & (event_of[1:] == event_of[:-1])

    particles = {"pdg": ints["PDG"], "mother": mother}
    for name in FLOAT_FIELDS:
        particles[name] = arranged(columns[name])
    if "status" in ints:
        particles["initial"] = (ints["status"] & STATUS_INITIAL) != 0
    event_type, event_types, type_differs = _event_types(columns, meta, arranged, per_event, event_id,
                                                         default_event_type, path)
    weight, weight_differs = (per_event(arranged(columns["weight"])) if "weight" in columns
                              else (None, np.zeros(len(counts), dtype=bool)))
    table = EventTable(offsets, particles, labels, tuple(skims), event_type, event_types, weight, event_id)

    keep = reject_events([
        (_any_per_event(bad_rows, event_of, len(counts)), "null or non-integer value", "particles"),
        (_any_per_event(duplicate, event_of, len(counts)), "duplicate particle index", "arrayIndex"),
        (_any_per_event(not_label, event_of, len(counts)), "label is not 0/1", "labels"),
        (inconsistent, "label differs between particles of one event", "labels"),
        (type_differs, "event type differs between particles of one event", "event_type"),
        (weight_differs, "weight differs between particles of one event", "weight"),
    ], event_id=event_id, report=report, strict=strict, source=path, table=table)
    return table if keep.all() else table.take(keep)


def _group_rows(evt, index):
    """Rows into events: equal ``evt`` (in order of first appearance), particles by ``index``.

    Returns:
        (row order or None when the rows are in order already, (n,) event of each arranged row,
        (n_events + 1,) offsets, (n_events,) event numbers).
    """
    n = len(evt)
    new_event = np.ones(n, dtype=bool)
    new_event[1:] = evt[1:] != evt[:-1]
    starts = np.flatnonzero(new_event)
    same = ~new_event[1:]
    if len(np.unique(evt[starts])) == len(starts) and np.all(index[1:][same] > index[:-1][same]):
        return None, np.cumsum(new_event) - 1, np.append(starts, n).astype(np.int64), evt[starts]
    event_ids, first_row, inverse = np.unique(evt, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first_row, kind="stable")
    rank = np.empty(len(event_ids), dtype=np.int64)
    rank[by_appearance] = np.arange(len(event_ids))
    event_of = rank[inverse]
    order = np.lexsort((index, event_of))
    counts = np.bincount(event_of, minlength=len(event_ids))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return order, event_of[order], offsets, event_ids[by_appearance]


def _as_int(values, path, name):
    """(int64 values, bool mask of null or non-integer entries)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64), np.zeros(len(values), dtype=bool)
    if values.dtype.kind != "f":
        raise DataError(f"integer column has dtype {values.dtype}", path=path, field=name)
    bad = ~np.isfinite(values) | (values != np.round(values))
    return np.where(bad, 0, values).astype(np.int64), bad


def _resolve_skims(columns, meta, skims, path):
    skims = skim_names(skims)
    if skims is None:
        skims = meta.get("skims", ["label"] if "label" in columns else [])
    missing = [s for s in skims if s not in columns]
    if missing:
        known = meta.get("skims", [c for c in columns if np.asarray(columns[c]).dtype.kind == "b"])
        raise DataError(f"unknown skim(s) {missing}; the file has {known}", path=path, field="labels")
    return list(skims)


def _mothers(ints, event_of, offsets, convention, report):
    """Local mother positions (-1 roots) and the mask of links whose mother is not in the table."""
    index, raw = ints["arrayIndex"], ints["motherIndex"]
    candidates = ("array", "one-based") if convention == "auto" else (convention,)
    resolved = {c: _resolve_links(c, index, raw, ints, event_of, offsets) for c in candidates}
    if convention == "auto":
        convention = _pick_convention(resolved, ints, report)
    return resolved[convention][:2]


def _resolve_links(convention, index, raw, ints, event_of, offsets):
    """(mother, missing, n_pdg_mismatch) for one motherIndex convention; rows sorted by (event, index)."""
    if convention == "array":
        target, root = raw, (raw < 0) | (raw == index)
    else:
        target, root = raw - 1, raw <= 0
    if "motherPDG" in ints:  # the original smartBKG writer: motherIndex 0 and motherPDG 0 for roots
        root |= (ints["motherPDG"] == 0) & (raw == 0)
    # Rows are sorted by (event, arrayIndex): look the target up among the keys of its event.
    span = int(max(index.max(initial=0), target.max(initial=0))) + 1
    key = event_of * span + index
    wanted = event_of * span + np.clip(target, 0, span - 1)
    at = np.minimum(np.searchsorted(key, wanted), max(len(key) - 1, 0))
    found = ~root & (target >= 0) & (key[at] == wanted) if len(key) else np.zeros(0, dtype=bool)
    mother = np.where(found, at - offsets[event_of], -1)
    missing = ~root & ~found
    mismatch = int(np.count_nonzero(found & (ints["PDG"][at] != ints["motherPDG"]))) if "motherPDG" in ints else 0
    return mother, missing, mismatch


def _pick_convention(resolved, ints, report):
    array, one = resolved["array"], resolved["one-based"]
    if "motherPDG" in ints:
        score = {c: r[2] + int(r[1].sum()) for c, r in resolved.items()}
    else:
        score = {c: int(r[1].sum()) for c, r in resolved.items()}
    if score["array"] < score["one-based"]:
        return "array"
    if score["one-based"] < score["array"]:
        return "one-based"
    if not np.array_equal(array[0], one[0]):
        report.notes["motherIndex convention undecidable from the data (0-based arrayIndex assumed)"] += 1
    return "array"


def _event_types(columns, meta, arranged, per_event, event_id, default_event_type, path):
    """(n_events,) codes, their names and (n_events,) bool: the event's rows disagree.

    Raises:
        DataError: a code that is no integer or names no event type of the file.
    """
    n = len(event_id)
    if "event_type" not in columns:
        names = EVENT_TYPES if default_event_type in EVENT_TYPES else (*EVENT_TYPES, default_event_type)
        return np.full(n, names.index(default_event_type), dtype=np.int16), names, np.zeros(n, dtype=bool)
    names = tuple(meta.get("event_types", EVENT_TYPES))
    codes, differ = per_event(arranged(columns["event_type"]))
    codes, not_integer = _as_int(codes, path, "event_type")
    outside = not_integer | (codes < 0) | (codes >= len(names))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        code = "a null or non-integer code" if not_integer[i] else f"code {codes[i]}"
        raise DataError(f"{code} names none of the {len(names)} event types {list(names)}", path=path,
                        event=int(event_id[i]), field="event_type")
    return codes.astype(np.int16), names, differ


def _isnan(values):
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)


# ---------------------------------------------------------------------------------------- writing
def write_hdf5(table, path, *, key="mc_information", layout="table", mother_index="array"):
    """Write events as a Belle II per-particle HDF5 table (pandas-readable for ``table``/``fixed``).

    Args:
        table: the events (:class:`EventTable`).
        path: output file (replaced).
        key: group (``table``, ``fixed``) or dataset (``compound``) name.
        layout: ``"table"`` (pandas ``format='table'``, as basf2 smartBKG), ``"fixed"`` (pandas
            ``format='fixed'`` with the MultiIndex (skims..., evtNum, arrayIndex), as the original
            smartBKG) or ``"compound"`` (one plain compound dataset).
        mother_index: ``"array"`` (0-based; roots point to themselves) or ``"one-based"`` (roots 0).

    Roots also get ``motherPDG = 0``; a dangling link (a mother that is no particle of the event)
    is written as the index just past the event's last particle. ``status`` has ``c_Initial`` for
    initial-state particles, ``c_PrimaryParticle`` for all and ``c_StableInGenerator`` for
    particles without daughters;
    ``mass`` is computed from the four-momentum, ``charge`` from the PDG id (0 when unknown).
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if mother_index not in ("array", "one-based"):
        raise ConfigError(f"mother_index must be 'array' or 'one-based', got {mother_index!r}")
    columns = belle2_columns(table, mother_index=mother_index)
    meta = metadata_json(1, table.skims, table.event_types)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", libver=LIBVER) as f:
        for name, value in _PYTABLES_FILE_ATTRS.items():
            f.attrs[name] = value
        if layout == "compound":
            node = f.create_dataset(key, data=_structured(columns), chunks=True, maxshape=(None,), fletcher32=True)
        elif layout == "table":
            node = _write_pandas_table(f, key, columns)
        else:
            node = _write_pandas_fixed(f, key, columns, index=[*table.skims, "evtNum", "arrayIndex"])
        # On the root group, whose few attributes HDF5 keeps in its checksummed object header (a
        # pandas group's many attributes go to an unchecked heap, where a damaged name hides them).
        f.attrs[f"{ATTRIBUTE}:{node.name.strip('/')}"] = _str(meta)
    tmp.replace(path)


def belle2_columns(table, *, mother_index="array"):
    """The per-particle columns of a table, Belle II names, skims first; dict name -> (n,) array."""
    p = table.particles
    n = table.n_particles
    start = np.repeat(table.offsets[:-1], table.counts)
    array_index = np.arange(n, dtype=np.int64) - start
    mother = p["mother"].astype(np.int64)
    count = np.repeat(table.counts, table.counts)
    dangling = (mother < -1) | (mother >= count)
    has_mother = (mother >= 0) & ~dangling
    mother_global = np.where(has_mother, mother + start, 0)
    mother = np.where(dangling, count, mother)  # a link to no particle stays one: past the end
    if mother_index == "array":
        mother_column = np.where(has_mother | dangling, mother, array_index)
    else:
        mother_column = np.where(has_mother | dangling, mother + 1, 0)
    n_daughters = np.bincount(mother_global[has_mother], minlength=n)
    status = (STATUS_PRIMARY + STATUS_STABLE * (n_daughters == 0) + STATUS_INITIAL * p["initial"]).astype(np.int64)
    energy, px, py, pz = (p[f].astype(np.float64) for f in ("energy", "px", "py", "pz"))
    unique_pdg, pdg_code = np.unique(p["pdg"], return_inverse=True)
    charges = np.array([pdg_charge(int(i)) or 0 for i in unique_pdg], dtype=np.float64)
    columns = {skim: np.repeat(table.labels[:, j], table.counts) for j, skim in enumerate(table.skims)}
    columns.update({
        "evtNum": np.repeat(table.event_id, table.counts),
        "arrayIndex": array_index,
        "PDG": p["pdg"].astype(np.int64),
        "mass": np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0)),
        "charge": charges[pdg_code].reshape(-1) if n else np.zeros(0),
    })
    columns.update({name: p[name].astype(np.float64) for name in BELLE2_COLUMNS[6:14]})  # energy ... pz
    columns.update({
        "nDaughters": n_daughters.astype(np.int64),
        "status": status,
        "motherPDG": np.where(has_mother, p["pdg"][mother_global], 0).astype(np.int64),
        "motherIndex": mother_column,
        "event_type": np.repeat(table.event_type.astype(np.int64), table.counts),
    })
    if table.weight is not None:
        columns["weight"] = np.repeat(table.weight.astype(np.float64), table.counts)
    return columns


def _structured(columns):
    data = np.empty(len(next(iter(columns.values()))), dtype=[(k, v.dtype) for k, v in columns.items()])
    for name, values in columns.items():
        data[name] = values
    return data


def _str(text):
    """A text attribute as PyTables writes Python strings (UTF-8; read back as ``str``)."""
    if not text:
        return h5py.Empty(h5py.string_dtype("utf-8", 1))
    encoded = text.encode()
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", len(encoded)))


def _pickled(value):
    return np.bytes_(pickle.dumps(value, protocol=0))


_PYTABLES_FILE_ATTRS = {"CLASS": _str("GROUP"), "PYTABLES_FORMAT_VERSION": _str("2.1"),
                        "TITLE": _str(""), "VERSION": _str("1.0")}
_PANDAS_GROUP_ATTRS = {"CLASS": _str("GROUP"), "TITLE": _str(""), "VERSION": _str("1.0"),
                       "encoding": _str("UTF-8"), "errors": _str("strict"),
                       "pandas_version": _str("0.15.2")}


def _blocks(columns):
    """Columns grouped by dtype as pandas does: list of (dtype name, [column names])."""
    groups = {}
    for name, values in columns.items():
        groups.setdefault(values.dtype.name, []).append(name)
    return list(groups.items())


def _write_pandas_table(f, key, columns):
    """The PyTables layout of ``DataFrame.to_hdf(format='table')`` with a default integer index."""
    n = len(next(iter(columns.values())))
    blocks = _blocks(columns)
    fields = [("index", np.int64)]
    for k, (dtype, names) in enumerate(blocks):
        fields.append((f"values_block_{k}", np.uint8 if dtype == "bool" else np.dtype(dtype), (len(names),)))
    data = np.zeros(n, dtype=fields)
    data["index"] = np.arange(n)
    for k, (dtype, names) in enumerate(blocks):
        data[f"values_block_{k}"] = np.stack([columns[c] for c in names], axis=1) if n else 0
    group = f.create_group(key)
    table = group.create_dataset("table", data=data, maxshape=(None,), chunks=True, fletcher32=True)
    for name, value in _PANDAS_GROUP_ATTRS.items():
        group.attrs[name] = value
    value_names = [f"values_block_{k}" for k in range(len(blocks))]
    group.attrs.update({
        "pandas_type": _str("frame_table"), "table_type": _str("appendable_frame"),
        "levels": np.int64(1), "nan_rep": _str("nan"), "data_columns": _pickled([]),
        "index_cols": _pickled([(0, "index")]), "values_cols": _pickled(value_names),
        "non_index_axes": _pickled([(1, list(columns))]),
        "info": _pickled({1: {"names": [None], "type": "Index"}, "index": {}, **{v: {} for v in value_names}}),
    })
    table.attrs.update({"CLASS": _str("TABLE"), "VERSION": _str("2.7"), "TITLE": _str(""),
                        "NROWS": np.int64(n), "index_kind": _str("integer")})
    for i, name in enumerate(data.dtype.names):
        table.attrs[f"FIELD_{i}_NAME"] = _str(name)
        table.attrs[f"FIELD_{i}_FILL"] = np.zeros(1, dtype=data.dtype[name].base)[0]
    for k, (dtype, names) in enumerate(blocks):
        table.attrs[f"values_block_{k}_kind"] = _pickled(names)
        table.attrs[f"values_block_{k}_dtype"] = _str(dtype)
        table.attrs[f"values_block_{k}_meta"] = _pickled(None)
    return group


def _write_pandas_fixed(f, key, columns, index):
    """The PyTables layout of ``DataFrame.to_hdf(format='fixed')`` with a MultiIndex ``index``."""
    group = f.create_group(key)
    for name, value in _PANDAS_GROUP_ATTRS.items():
        group.attrs[name] = value
    values = {c: v for c, v in columns.items() if c not in index}
    blocks = _blocks(values)
    group.attrs.update({"pandas_type": _str("frame"), "ndim": np.int64(2), "nblocks": np.int64(len(blocks)),
                        "axis0_variety": _str("regular"), "axis1_variety": _str("multi"),
                        "axis1_nlevels": np.int64(len(index))})
    _array(group, "axis0", np.array([c.encode() for c in values]), kind="string", name=None)
    for k, name in enumerate(index):
        level, codes = np.unique(columns[name], return_inverse=True)
        kind = "bool" if level.dtype == bool else "integer"
        _array(group, f"axis1_level{k}", level.astype(np.uint8) if kind == "bool" else level, kind=kind,
               name=name, **{f"axis1_name{name}": name})
        _array(group, f"axis1_label{k}", codes.astype(np.int64))
    for k, (dtype, names) in enumerate(blocks):
        group.attrs[f"block{k}_items_variety"] = _str("regular")
        _array(group, f"block{k}_items", np.array([c.encode() for c in names]), kind="string", name=None)
        _array(group, f"block{k}_values", np.stack([values[c] for c in names], axis=1))
    return group


def _array(group, dataset_name, data, **attrs):
    dataset = group.create_dataset(dataset_name, data=data)
    dataset.attrs.update({"CLASS": _str("ARRAY"), "FLAVOR": _str("numpy"), "TITLE": _str(""),
                          "VERSION": _str("2.4"), "transposed": np.uint8(1)})
    dataset.attrs.update({k: _pickled(None) if v is None else _str(v) for k, v in attrs.items()})
    return dataset
