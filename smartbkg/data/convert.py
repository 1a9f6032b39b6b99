"""``smartbkg-convert INPUTS --out DIR``: any supported input -> smartbkg parquet shards.

Reads every input (format detected per file, see :mod:`smartbkg.data.readers`), drops and counts
bad events, optionally applies the Belle II preprocessing, and writes ``DIR/part-00000.parquet``,
``part-00001.parquet`` ... with ``--events-per-shard`` events each, plus ``DIR/summary.json``
(inputs, options, what was read, kept and skipped and why, the shards). The same summary is
printed at the end. User errors (missing input, bad option, existing output) end with one line
on stderr and exit status 2.
"""

import json
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from ..cli_args import ArgumentParser, add_list_argument, integer
from ..errors import ConfigError, DataError
from .checks import ReadReport
from .parquet import write_parquet
from .readers import FORMATS, expand_paths, iter_events
from .table import EventTable

SHARD_PATTERN = "part-{:05d}.parquet"
SUMMARY = "summary.json"


def build_parser():
    parser = ArgumentParser(
        prog="smartbkg-convert",
        description="Convert parquet, Belle II HDF5 or HepMC3 events to smartbkg parquet shards.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                        help="input files or directories (format detected from the content)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--format", choices=FORMATS, help="input format of every file (default: detect)")
    add_list_argument(parser, "--skims", metavar="SKIM", help="label columns to keep (default: all)")
    add_list_argument(parser, "--rename-skim", default=[], metavar="OLD=NEW",
                      help="rename skims, e.g. label=feiHadronic")
    parser.add_argument("--event-type", default="unknown", metavar="NAME",
                        help="event type of events whose input records none (default: unknown)")
    parser.add_argument("--events-per-shard", type=integer(1), default=100_000, metavar="N")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad event instead of skipping")
    parser.add_argument("--preprocess", nargs="?", const="", default=None, metavar="CONFIG",
                        help="apply the Belle II preprocessing; optional YAML/JSON file of PreprocessConfig fields")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no printed summary")
    parser.add_argument("--shard", metavar="K/N", help="convert only shard K of N: event j of the input (after "
                        "validation) when j mod N = K - 1")
    hdf5 = parser.add_argument_group("Belle II HDF5 inputs")
    hdf5.add_argument("--key", help="table key in the file (default: the only table)")
    hdf5.add_argument("--mother-index", choices=("auto", "array", "one-based"), help="motherIndex convention")
    hdf5.add_argument("--missing-mother", choices=("root", "error"), help="mother not in the table")
    hepmc = parser.add_argument_group("HepMC3 inputs")
    hepmc.add_argument("--labels", type=Path, help="CSV side file: event_number,<skim>,...[,event_type]")
    return parser


def _rename(pairs):
    rename = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ConfigError(f"--rename-skim takes OLD=NEW, got {pair!r}")
        rename[old] = new
    return rename


def _preprocess_config(value):
    from .preprocess import PreprocessConfig

    if not value:
        return PreprocessConfig()
    try:
        values = yaml.safe_load(Path(value).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read preprocessing config {value} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"preprocessing config {value} is not YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"preprocessing config {value} must be a mapping of PreprocessConfig fields")
    return PreprocessConfig.from_dict(values)


def prepare_output(out, overwrite):
    """Create the output directory; refuse to mix with an earlier conversion unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    try:
        old = sorted(out.glob("part-*.parquet")) + ([out / SUMMARY] if (out / SUMMARY).exists() else [])
        if old and not overwrite:
            raise ConfigError(f"--out {out} already holds {len(old)} converted file(s); pass --overwrite to replace "
                              "them")
        for path in old:
            path.unlink()
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {out} ({exc.strerror or exc})") from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    rename = _rename(args.rename_skim)
    from ..filter.shard import parse_shard, shard_chunks  # the filter package imports this module

    shard = parse_shard(args.shard)
    config = _preprocess_config(args.preprocess) if args.preprocess is not None else None
    options = {name: getattr(args, name) for name in ("key", "mother_index", "missing_mother", "labels")
               if getattr(args, name) is not None}
    files = expand_paths(args.inputs)
    report, shards = ReadReport(), []
    chunks = iter_events(files, format=args.format, skims=args.skims, rename_skims=rename,
                         default_event_type=args.event_type, strict=args.strict, report=report, **options)
    chunks = ((path, table) for path, table, _ in shard_chunks(chunks, shard))
    prepare_output(args.out, args.overwrite)
    try:
        stats = _convert(chunks, config, args, shards)
        if not shards:
            raise DataError(f"no events to write: {report.skip_summary(report.read) if report.skipped else 'the inputs hold none'}")
    except OSError as exc:
        _remove(args.out, shards)
        raise ConfigError(f"cannot write to --out {args.out} ({exc.strerror or exc})") from None
    except BaseException:
        _remove(args.out, shards)
        raise
    if stats is not None:
        stats.add_to_report(report)

    summary = {
        "inputs": [str(f) for f in files],
        "options": {"format": args.format, "skims": args.skims, "rename_skims": rename,
                    "default_event_type": args.event_type, "events_per_shard": args.events_per_shard,
                    "strict": args.strict, "preprocess": None if config is None else config.to_dict(),
                    "shard": args.shard,
                    **{k: str(v) for k, v in options.items()}},
        "report": report.to_dict(),
        "preprocess": None if stats is None else stats.to_dict(),
        "shards": shards,
        "events_written": sum(s["events"] for s in shards),
    }
    (args.out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    if not args.quiet:
        print(report.format())
        print(f"events written: {summary['events_written']} in {len(shards)} shard(s) to {args.out}")
    return 0


def _remove(out, shards):
    """Leave no partial conversion behind."""
    for shard in shards:
        (out / shard["file"]).unlink(missing_ok=True)


def _convert(chunks, config, args, shards):
    """Write the shards; return the summed preprocessing statistics (None without preprocessing)."""
    stats, buffered = None, []
    # No bar without a terminal (batch logs, pipes): the summary says it all.
    with tqdm(disable=True if args.quiet else None, file=sys.stderr, unit="ev",
              bar_format="{desc} {n_fmt} events [{elapsed}, {rate_fmt}]") as bar:
        for path, table in chunks:
            bar.set_description(path.name)
            bar.update(len(table))
            if config is not None:
                from .preprocess import preprocess

                table, chunk_stats = preprocess(table, config)
                if stats is None:
                    stats = chunk_stats
                else:
                    stats += chunk_stats
            buffered.append(table)
            if sum(len(t) for t in buffered) >= args.events_per_shard:
                buffered = _write_shards(buffered, args.out, args.events_per_shard, shards, final=False)
        _write_shards(buffered, args.out, args.events_per_shard, shards, final=True)
    return stats


def _write_shards(tables, out, per_shard, shards, *, final):
    """Write full shards from the buffered tables; return the remainder (written too if ``final``)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return []
    table = EventTable.concat(tables)
    start = 0
    while len(table) - start >= per_shard or (final and start < len(table)):
        part = table[start:start + per_shard]
        name = SHARD_PATTERN.format(len(shards))
        write_parquet(part, out / name)
        shards.append({"file": name, "events": len(part), "skims": list(part.skims),
                       "event_types": list(part.event_types)})
        start += len(part)
    return [table[start:]] if start < len(table) else []
