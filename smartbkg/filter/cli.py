"""``smartbkg-filter RUN_DIR --data PATHS --out DIR``: apply a trained run to new events.

    smartbkg-filter RUN_DIR --data PATH [PATH ...] --out DIR [--skims A,B] [--seed N] [--device DEV]
                    [--backend torch|onnx --onnx MODEL.onnx]
                    [--shard K/N] [--batch-size N] [--events-per-shard N] [--event-type NAME]
                    [--format F] [--strict] [--quiet]

Writes the kept events as parquet shards with ``p_<skim>`` and ``weight_<skim>`` columns and
``summary.json`` (see :mod:`smartbkg.filter.apply`), and prints the main figures.
"""

import torch

from ..cli_args import SEED_MAX, ArgumentParser, add_list_argument, integer
from ..data.readers import FORMATS
from ..errors import ConfigError
from .apply import apply_filter
from ..train.run_folder import load_run
from .filter import Filter


def build_parser():
    parser = ArgumentParser(prog="smartbkg-filter", description=__doc__.splitlines()[0])
    parser.add_argument("run", metavar="RUN_DIR", help="run folder written by smartbkg-train")
    add_list_argument(parser, "--data", commas=False, required=True, metavar="PATH",
                      help="input files or folders (parquet, Belle II HDF5, HepMC3; format detected)")
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    add_list_argument(parser, "--skims", metavar="SKIM", help="skims to filter on (default: every skim of the run)")
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="seed of the keep decisions (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device of the network (default cpu)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="run the network in PyTorch (default) or the run's ONNX export in onnxruntime")
    parser.add_argument("--onnx", metavar="MODEL.onnx", help="with --backend onnx: the graph that smartbkg-export "
                        "wrote from this run")
    parser.add_argument("--shard", metavar="K/N", help="process only shard K of N (1 <= K <= N)")
    parser.add_argument("--batch-size", type=integer(1), default=1024, help="events per network call")
    parser.add_argument("--events-per-shard", type=integer(1), default=100_000, help="kept events per output file")
    parser.add_argument("--event-type", default="unknown", metavar="NAME",
                        help="event type of events whose input records none (default: unknown)")
    parser.add_argument("--format", choices=FORMATS, help="input format of every file (default: detect)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad event instead of skipping")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no printed summary")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    skims = args.skims
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {args.device!r}: {exc}") from None
    run = load_run(args.run)
    flt = Filter.of_run(run, skims=skims, device=device, batch_size=args.batch_size)
    if args.backend == "onnx":
        flt.backend = onnx_backend(args.onnx, run)
    elif args.onnx is not None:
        raise ConfigError("--onnx is for --backend onnx")
    summary = apply_filter(flt, args.data, args.out, seed=args.seed, shard=args.shard,
                           events_per_shard=args.events_per_shard, format=args.format,
                           default_event_type=args.event_type, strict=args.strict, progress=not args.quiet)
    if not args.quiet:
        print(format_summary(summary))
    return 0


def onnx_backend(model_path, run):
    """The filter's model call on onnxruntime (:class:`smartbkg.export.OnnxBackend`) for the export
    ``model_path`` of the loaded :class:`~smartbkg.train.run_folder.Run` ``run``: (B, S) float32
    numpy logits of the run's skims.

    Raises:
        ConfigError: no ``model_path``, or an export of another run (its configuration hash or
            skims differ from the run's).
    """
    from ..export import OnnxBackend, config_hash

    if model_path is None:
        raise ConfigError("--backend onnx needs --onnx MODEL.onnx, the graph smartbkg-export wrote from the run")
    backend = OnnxBackend(model_path, threads=1)
    metadata = backend.model.metadata
    if metadata.get("config_hash") != config_hash(run.config.to_dict()) or list(backend.skims) != list(run.skims):
        raise ConfigError(f"--onnx {model_path} is the export of another run (configuration hash or skims "
                          f"{list(backend.skims)} differ from {run.path}'s {list(run.skims)})")
    return lambda batch: backend(batch).numpy()


def format_summary(summary):
    """The main figures of a filter summary, a few lines."""
    fraction = summary["kept_fraction"]
    timing = summary["timing"]
    lines = [f"events read: {summary['read']['read']}, in this shard: {summary['events']}, "
             f"kept: {summary['kept']} ({100 * (fraction['observed'] or 0):.2f} %, expected "
             f"{100 * (fraction['expected'] or 0):.2f} %; independent draws per skim would keep "
             f"{100 * (fraction['independent_draws'] or 0):.2f} %)"]
    for reason, n in sorted(summary["read"]["skipped"].items()):
        lines.append(f"events skipped ({reason}): {n}")
    for skim, s in summary["skims"].items():
        line = f"{skim}: counted {s['counted']}, expected N_eff {s['expected_n_eff']:.1f}"
        if "passing" in s:
            line += (f", weighted yield {s['weighted_yield']:.1f} +- {s['weighted_yield_error']:.1f} "
                     f"(true {s['passing']}), speedup {s['speedup']:.3g}")
        lines.append(line)
    cpu = timing["network_cpu_ms_per_event"] or 0
    lines.append(f"network {timing['network_ms_per_event']:.3f} ms/event ({cpu:.3f} CPU), end to end "
                 f"{timing['ms_per_event'] or 0:.3f} ms/event (wall); wrote {len(summary['shards'])} shard(s)")
    return "\n".join(lines)
