"""``smartbkg-reweight``: weights that turn sample B into sample A, with a report.

Two ways to call it::

    smartbkg-reweight --a A_FILES --b B_FILES --out REPORT_DIR [--classifier gbdt|mlp]
        [--ensemble K] [--clip W] [--seed N] [--test-fraction F] [--events-cm-energy GEV]
    smartbkg-reweight --example --out REPORT_DIR [--events N] [--fit] [--fit-events N]

The inputs are event files of any format the package reads (their event-level features are
computed with :func:`smartbkg.data.event_variables.event_variables`) or feature tables (CSV, or
parquet without a ``particles`` column: every numeric column is a feature; both samples must
have the same columns).
"""

import sys
from pathlib import Path

import numpy as np

from ..cli_args import SEED32_MAX, ArgumentParser, add_list_argument, integer
from ..data.event_variables import DISCRETE
from ..errors import ConfigError, DataError
from ..models import list_models
from .classifier import CLASSIFIERS


def build_parser():
    parser = ArgumentParser(prog="smartbkg-reweight", description=__doc__.splitlines()[0])
    add_list_argument(parser, "--a", commas=False, metavar="PATH", help="sample A (the target) files")
    add_list_argument(parser, "--b", commas=False, metavar="PATH", help="sample B (reweighted into A) files")
    parser.add_argument("--example", action="store_true",
                        help="the embedded example: Pythia 8 Z -> hadrons, Monash into an alternative tune")
    parser.add_argument("--out", required=True, type=Path, help="report folder (new or empty)")
    parser.add_argument("--classifier", default="gbdt", metavar="NAME",
                        help=f"{', '.join(CLASSIFIERS)} on event-level features (default gbdt), or a smartbkg "
                             "model (deepsets, gatgap, transformer, lorentz) on the decay trees of event files")
    parser.add_argument("--ensemble", type=integer(1), default=1, help="classifiers averaged (default 1)")
    parser.add_argument("--clip", type=float, default=None, help="largest weight (default: no clipping)")
    parser.add_argument("--seed", type=integer(0, SEED32_MAX - 1000), default=1)
    parser.add_argument("--test-fraction", type=float, default=0.5, help="share held out to evaluate (0.5)")
    parser.add_argument("--events-cm-energy", type=float, default=None, metavar="GEV",
                        help="sqrt(s) of event-file inputs with symmetric beams (default: the Belle II beams)")
    parser.add_argument("--events", type=integer(4), default=20000, help="example: events per sample")
    parser.add_argument("--fit", action="store_true", help="example: also fit the shower alpha_s of pseudo-data")
    parser.add_argument("--fit-events", type=integer(4), default=None, help="example: events per fit sample")
    return parser


def _is_feature_table(path):
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix.lower() != ".parquet":
        return False
    import pyarrow.parquet as pq

    try:
        return "particles" not in pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: cannot read parquet file ({exc})") from None


def _feature_table(paths):
    import pyarrow.csv
    import pyarrow.parquet as pq

    tables = []
    for path in paths:
        try:
            tables.append(pyarrow.csv.read_csv(path) if path.suffix.lower() == ".csv" else pq.read_table(path))
        except Exception as exc:  # pyarrow's errors for malformed files
            raise DataError(f"{path}: cannot read feature table ({str(exc).splitlines()[0]})") from None
    names = tables[0].column_names
    if any(t.column_names != names for t in tables[1:]):
        raise DataError(f"feature tables {', '.join(map(str, paths))} have different columns")
    features = {}
    for name in names:
        column = np.concatenate([t.column(name).to_numpy(zero_copy_only=False) for t in tables])
        if len(column) and not np.issubdtype(column.dtype, np.number) and column.dtype != bool:
            raise DataError(f"{paths[0]}: feature column {name!r} is not numeric")
        features[name] = column.astype(np.float64) if len(column) else np.zeros(0)
    return features


def load_features(paths, cm_energy=None):
    """(table or None, {name: (n,) array}) of the files ``paths``: event files (their table and
    event variables) or feature tables (None and their columns); see the module."""
    from ..data.event_variables import event_variables
    from ..data.readers import read_events
    from ..simulation.beams import Beams

    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataError(f"input not found: {', '.join(missing)}")
    if all(p.is_file() and _is_feature_table(p) for p in paths):
        return None, _feature_table(paths)
    table = read_events(paths)
    beams = Beams() if cm_energy is None else Beams(cm_energy / 2, cm_energy / 2, 0.0)
    values = event_variables(table, beams)
    return table, {k: v for k, v in values.items() if k != "event_type"}


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder")
    if args.classifier not in CLASSIFIERS and args.classifier not in list_models():
        raise ConfigError(f"--classifier {args.classifier!r}: choose {', '.join(CLASSIFIERS)} or a model of "
                          f"{', '.join(list_models())}")
    if (args.clip is not None and not 0 < args.clip < float("inf")) or not 0 < args.test_fraction < 1:
        raise ConfigError("--clip must be a finite number > 0 and --test-fraction in (0, 1)")
    if args.example:
        if args.a or args.b:
            raise ConfigError("--example makes its own samples: give either --example or --a and --b")
        from .example import run_example

        summary = run_example(out, events=args.events, seed=args.seed, kind=args.classifier,
                              ensemble=args.ensemble, clip=args.clip, fit=args.fit, fit_events=args.fit_events)
    else:
        if not (args.a and args.b):
            raise ConfigError("give both samples (--a and --b), or --example")
        from .report import write_report
        from .reweighting import reweight_samples, reweight_tables

        (table_a, a), (table_b, b) = (load_features(args.a, args.events_cm_energy),
                                      load_features(args.b, args.events_cm_energy))
        for name, features in (("A", a), ("B", b)):
            if not features or len(next(iter(features.values()))) == 0:
                raise DataError(f"sample {name} has no events")
        options = {"ensemble": args.ensemble, "clip": args.clip, "test_fraction": args.test_fraction,
                   "seed": args.seed, "discrete": DISCRETE}
        if args.classifier in CLASSIFIERS:
            result = reweight_samples(a, b, kind=args.classifier, **options)
        elif table_a is None or table_b is None:
            raise ConfigError(f"--classifier {args.classifier} classifies decay trees: give event files, "
                              "not feature tables")
        else:
            result = reweight_tables(table_a, table_b, a, b, model=args.classifier, **options)
        summary = write_report(out, result)
    before, after = summary["auc_before"], summary["auc_after"]
    print(f"second-classifier AUC {before['auc']:.4f} +- {before['auc_err']:.4f} before, "
          f"{after['auc']:.4f} +- {after['auc_err']:.4f} after reweighting; mean chi2/ndf "
          f"{summary['mean_chi2_ndf_before']:.2f} -> {summary['mean_chi2_ndf_after']:.2f}; "
          f"N_eff/N {summary['weights']['n_eff_fraction']:.3f}", file=sys.stdout)
    if "fit" in summary:
        fit = summary["fit"]
        print(f"fitted {fit['parameter']} = {fit['best']:.4f} +- {fit['best_err']:.4f} (truth {fit['truth']})")
    print(f"report: {out / 'report.html'}")
    return 0
