"""``smartbkg-generate``: the embedded Pythia 8 sample with fast detector response and skims.

    smartbkg-generate --events N --output DIR --seed S [--types T ...] [--mix cross-section|equal]
                      [--workers K] [--preprocess | --no-preprocess] [--events-per-shard M] [--quiet]
                      [--shard K/N] [--filter RUN_DIR [--filter-skims A,B] [--filter-seed S]]

Writes ``DIR/events-NNNNN.parquet`` shards and ``DIR/metadata.json`` and prints the retention
of every skim per event type. With ``--filter`` (production mode) the trained run decides after
generation which events go on to the detector and skims; only those are written, with the
columns ``p_<skim>`` and ``weight_<skim>`` (:mod:`smartbkg.filter.stage`).
"""

import argparse
import sys

from ..cli_args import SEED_MAX, ArgumentParser, add_list_argument, integer
from ..data.table import EVENT_TYPES
from ..errors import ConfigError
from .event_types import MIXES
from .production import produce


def build_parser():
    parser = ArgumentParser(prog="smartbkg-generate", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=integer(1), required=True, help="total number of events")
    parser.add_argument("--output", required=True, help="output directory (a new or an empty one)")
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="production seed (default 0)")
    add_list_argument(parser, "--types", metavar="TYPE",
                      help=f"event types, space- or comma-separated (default all: {','.join(EVENT_TYPES)})")
    parser.add_argument("--mix", choices=MIXES, default="cross-section",
                        help="share of the types: in proportion to cross sections (default) or equal")
    parser.add_argument("--workers", type=integer(1), default=1, help="worker processes (default 1)")
    parser.add_argument("--preprocess", action=argparse.BooleanOptionalAction, default=False,
                        help="apply the Belle II preprocessing before writing (default: write full records)")
    parser.add_argument("--events-per-shard", type=integer(1), default=100_000, help="events per parquet file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("--shard", metavar="K/N", help="produce only shard K of N of the tasks (1 <= K <= N)")
    parser.add_argument("--filter", metavar="RUN_DIR", help="production mode: filter with this trained run "
                        "between generation and the detector")
    add_list_argument(parser, "--filter-skims", metavar="SKIM", help="skims to filter on (default: every skim of the run)")
    parser.add_argument("--filter-seed", type=integer(0, SEED_MAX), help="seed of the keep decisions (default: --seed)")
    return parser


def format_retention(metadata):
    """The retention table of a production, one line per skim, columns event types, in percent."""
    types = [*metadata["config"]["types"], "all"]
    lines = ["skim".ljust(20) + "".join(t.rjust(10) for t in types)]
    for skim, values in metadata["retention"].items():
        lines.append(skim.ljust(20) + "".join("-".rjust(10) if values[t] is None else f"{100 * values[t]:9.3f}%"
                                              for t in types))
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.filter is None and (args.filter_skims is not None or args.filter_seed is not None):
        raise ConfigError("smartbkg-generate: --filter-skims and --filter-seed need --filter RUN_DIR")
    stage = None
    if args.filter is not None:
        from ..filter.stage import FilterStage

        stage = FilterStage(args.filter, skims=args.filter_skims,
                            seed=args.seed if args.filter_seed is None else args.filter_seed)
    metadata = produce(args.output, args.events, seed=args.seed, types=args.types, mix=args.mix,
                       workers=args.workers, preprocess=args.preprocess,
                       events_per_shard=args.events_per_shard, progress=not args.quiet,
                       event_filter=stage, shard=args.shard)
    if not args.quiet:
        timing = metadata["seconds_per_event"]
        written = metadata["kept"]["all"] if stage is not None else metadata["events"]["all"]
        print(f"wrote {written} events in {len(metadata['shards'])} shard(s) to {args.output}"
              + (f" (kept of {metadata['events']['all']} generated)" if stage is not None else ""))
        stages = ", ".join(f"{name.replace('_', ' + ')} {1e3 * value['all']:.3f} ms" for name, value in timing.items())
        print(f"time per generated event: {stages} (per worker; Pythia initialisation, "
              f"{metadata['initialisation_s']['all']:.2f} s in all, not included)")
        print(format_retention(metadata), file=sys.stdout)
    return 0
