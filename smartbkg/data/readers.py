"""One entry point for every input format: :func:`read_events` and its streaming form :func:`iter_events`.

The format of each file is detected from its content (not its name), overridable with ``format=``:

=========  ======================================================================================
parquet    starts with ``PAR1``: smartbkg shards or Belle II smartBKG parquet
hdf5       the HDF5 signature: Belle II basf2 per-particle tables (:mod:`smartbkg.data.hdf5`)
hepmc      HepMC3 ASCII text, plain or gzip-compressed (:mod:`smartbkg.data.hepmc`)
=========  ======================================================================================

Every file's events are validated with :func:`~smartbkg.data.checks.drop_bad_events`: bad events
are skipped and counted in a :class:`~smartbkg.data.checks.ReadReport` (or, in strict mode, the
first one raises a :class:`~smartbkg.errors.DataError` naming file, event and field). Skips are
never silent: the report is returned with ``return_report=True``, otherwise a one-line warning
(:class:`SkippedEventsWarning`) says what was skipped. Particles with PDG ids outside the
vocabulary (:mod:`smartbkg.data.vocab`) are kept (token 0) and counted as notes.
"""

import gzip
import logging
import os
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, DataError
from .checks import ReadReport, SkippedEventsWarning, drop_bad_events
from .hdf5 import read_hdf5
from .hepmc import GZIP_MAGIC, is_hepmc3, iter_hepmc
from .parquet import iter_parquet
from .table import EventTable, skim_names
from .vocab import unknown_pdg_counts

FORMATS = ("parquet", "hdf5", "hepmc")
#: Options each format's reader takes besides skims, default_event_type, strict and report.
FORMAT_OPTIONS = {"parquet": (), "hdf5": ("key", "mother_index", "missing_mother"), "hepmc": ("labels",)}
#: File name endings taken from a directory given as input.
DIRECTORY_SUFFIXES = (".parquet", ".h5", ".hdf5", ".hdf", ".hepmc", ".hepmc3", ".hepmc.gz", ".hepmc3.gz")
PARQUET_MAGIC = b"PAR1"

logger = logging.getLogger(__name__)


def detect_format(path):
    """The format of a file from its first bytes: ``"parquet"``, ``"hdf5"`` or ``"hepmc"``.

    Raises:
        DataError: missing, empty or unreadable file, HepMC2, or an unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a regular file", path=path)
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
        if not head:
            raise DataError("empty file", path=path)
        if head.startswith(PARQUET_MAGIC):
            return "parquet"
        if h5py.is_hdf5(path):
            return "hdf5"
        if head.startswith(GZIP_MAGIC):
            with gzip.open(path, "rb") as f:
                head = f.read(1024)
    except OSError as exc:
        if exc.errno is None:  # from gzip: damaged data, not the file system
            raise DataError(f"corrupt gzip file ({exc})", path=path) from None
        raise DataError(f"cannot read file ({exc.strerror})", path=path) from None
    except (EOFError, zlib.error) as exc:
        raise DataError(f"corrupt gzip file ({exc})", path=path) from None
    try:
        if is_hepmc3(head):
            return "hepmc"
    except DataError as exc:
        raise DataError(exc.reason, path=path) from None
    raise DataError("unknown format (expected parquet, HDF5 or HepMC3)", path=path)


def expand_paths(paths):
    """Input files as a list of :class:`~pathlib.Path`; a directory stands for its data files.

    Args:
        paths: a path or an iterable of paths; directories contribute their files ending in
            :data:`DIRECTORY_SUFFIXES`, sorted by name.

    Raises:
        ConfigError: something that is not a path (e.g. an :class:`EventTable`), or no files.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, EventTable) or not isinstance(paths, Iterable):
        raise ConfigError(f"expected file or folder paths, got {type(paths).__name__}")
    paths = list(paths)
    bad = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise ConfigError(f"expected file or folder paths, got {type(bad[0]).__name__}")
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            try:
                out += sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DIRECTORY_SUFFIXES))
            except OSError as exc:
                raise DataError(f"cannot list folder ({exc.strerror})", path=path) from None
        else:
            out.append(path)
    if not out:
        raise ConfigError("no input files")
    return out


def iter_events(paths, *, format=None, skims=None, rename_skims=None, default_event_type="unknown",
                strict=False, chunk_events=100_000, report=None, **options):
    """Read files chunk by chunk, validated; see :func:`read_events` for the arguments.

    Args:
        chunk_events: events per chunk for formats read in chunks (HepMC; parquet in whole row
            groups of about that many events); HDF5 files come whole.
        report: :class:`ReadReport` that accumulates what was read, kept and skipped.

    Returns:
        an iterator of (path, :class:`EventTable` of the good events of one chunk). Chunks without
        good events are left out (their skips are in the report; their skims are not compared),
        unless no input has any: then one empty table comes, with the requested skims. Paths,
        formats and options are checked when this is called, the data as it is read.
    """
    files = expand_paths(paths)
    skims = skim_names(skims)
    if format is not None and format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; known: {list(FORMATS)}")
    formats = [format or detect_format(path) for path in files]
    accepted = {name for f in set(formats) for name in FORMAT_OPTIONS[f]}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"option(s) {unknown} do not apply to the input format(s) {sorted(set(formats))}")
    report = ReadReport() if report is None else report
    return _iterate(files, formats, skims, dict(rename_skims or {}), default_event_type, strict, chunk_events, report,
                    options)


def _iterate(files, formats, skims, rename, default_event_type, strict, chunk_events, report, options):
    renamed, first_skims, empty = set(), None, None
    for path, fmt in zip(files, formats):
        file_report = ReadReport(files=1)
        kwargs = {name: options[name] for name in FORMAT_OPTIONS[fmt] if name in options}
        for table in _read_chunks(path, fmt, default_event_type, strict, chunk_events, file_report, kwargs):
            clean, checked = drop_bad_events(table, strict=strict, source=path)
            file_report += checked
            for pdg, n in unknown_pdg_counts(clean.particles["pdg"]).items():
                file_report.notes[f"particles with unknown PDG id {pdg}"] += n
            renamed.update(name for name in rename if name in clean.skims)
            clean = clean.replace(skims=tuple(rename.get(s, s) for s in clean.skims))
            if not len(clean):
                # No events, no labels to check (a HepMC file without a readable event does not
                # even know its skims): the chunk is left out; its skips are in the report.
                empty = empty or (path, clean)
                continue
            clean = _select_skims(clean, skims, path)
            if first_skims is None:
                first_skims = clean.skims
            elif clean.skims != first_skims:
                raise DataError(f"skims {list(clean.skims)} differ from those of the inputs before "
                                f"{list(first_skims)}; choose with skims= or rename_skims=", path=path, field="labels")
            yield path, clean
        report += file_report
    if first_skims is None:  # no event at all: one empty table, with the requested skims if any
        path, clean = empty
        if skims is not None:
            clean = clean.replace(labels=np.zeros((0, len(skims)), dtype=bool), skims=tuple(skims))
        yield path, clean
        return
    never = [name for name in rename if name not in renamed]
    if never:
        raise ConfigError(f"cannot rename skim(s) {never}: no input has them")


def _select_skims(table, skims, path):
    if skims is None:
        return table
    missing = [s for s in skims if s not in table.skims]
    if missing:
        raise DataError(f"unknown skim(s) {missing}; the file has {list(table.skims)}", path=path, field="labels")
    return table.select_skims(skims)


def _read_chunks(path, fmt, default_event_type, strict, chunk_events, report, kwargs):
    common = {"skims": None, "default_event_type": default_event_type, "strict": strict, "report": report}
    if fmt == "parquet":
        yield from iter_parquet(path, **common, chunk_events=chunk_events)
    elif fmt == "hdf5":
        yield read_hdf5(path, **common, **kwargs)
    else:
        yield from iter_hepmc(path, **common, chunk_events=chunk_events, **kwargs)


def read_events(paths, *, format=None, skims=None, rename_skims=None, default_event_type="unknown",
                strict=False, return_report=False, **options):
    """Read events from files of any supported format into one :class:`EventTable`.

    Args:
        paths: a file, a directory (its data files, see :func:`expand_paths`) or a list of them.
        format: ``"parquet"``, ``"hdf5"`` or ``"hepmc"`` for every file; default: detected per file.
        skims: skims to keep (a list of names, or one name), named as after renaming (default:
            all the data has); every file
            with events must have them, and without ``skims`` all such files must have the same
            skims (a file without a good event, e.g. a HepMC file truncated in its first event,
            is not compared).
        rename_skims: dict old name -> new name, applied to every file that has the old name
            (e.g. ``{"label": "fei"}``); a name no file has is an error.
        default_event_type: event type of events whose file records none (a new name is added
            to the table's event types).
        strict: raise :class:`~smartbkg.errors.DataError` on the first bad event instead of skipping.
        return_report: also return the :class:`ReadReport`.
        **options: format options: ``key``, ``mother_index``, ``missing_mother`` (HDF5, see
            :func:`~smartbkg.data.hdf5.read_hdf5`), ``labels`` (HepMC CSV side file, see
            :mod:`smartbkg.data.hepmc`).

    Returns:
        the table (units GeV, cm, ns), or (table, report) with ``return_report=True``.
    """
    report = ReadReport()
    chunks = [table for _, table in iter_events(paths, format=format, skims=skims, rename_skims=rename_skims,
                                                default_event_type=default_event_type, strict=strict,
                                                report=report, **options)]
    table = chunks[0] if len(chunks) == 1 else EventTable.concat(chunks)
    if return_report:
        return table, report
    if report.skipped:
        warnings.warn(report.skip_summary(report.read), SkippedEventsWarning, stacklevel=2)
    if report.notes:
        logger.info("notes while reading: %s", "; ".join(f"{k}: {v}" for k, v in sorted(report.notes.items())))
    return table

