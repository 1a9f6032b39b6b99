"""``smartbkg-export RUN_DIR --out model.onnx [--opset N] [--skims S ...]``.

Writes the single-event graph (the Belle II interface), the batched graph next to it
(``model.batch.onnx``) and the JSON metadata (``model.json``), checks both graphs against
PyTorch with onnxruntime, and prints one line per file.
"""

import argparse

from .exporter import DEFAULT_OPSET, PARITY_TOLERANCE, export_run
from .runtime import batch_graph_path, metadata_path


def build_parser():
    parser = argparse.ArgumentParser(
        prog="smartbkg-export",
        description="Export the best model of a training run to ONNX (Belle II interface).")
    parser.add_argument("run_dir", help="run folder of smartbkg-train (with checkpoints/best.pt)")
    parser.add_argument("--out", required=True,
                        help="single-event graph to write, e.g. model.onnx (its folder must exist)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--skims", nargs="+", help="skims to export, in output order (default: all)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    metadata = export_run(args.run_dir, args.out, opset=args.opset, skims=args.skims)
    model, parity = metadata["model"], metadata["verification"]
    diff = parity["max_abs_logit_diff"]
    print(f"wrote {args.out} (one event: x, pdg, mother, c -> output) and "
          f"{batch_graph_path(args.out)} (padded batch): {model['name']}, "
          f"{model['parameters']} parameters, skims {', '.join(metadata['skims'])}, "
          f"opset {metadata['graphs']['opset']}")
    print(f"wrote {metadata_path(args.out)} (calibration, event types, PDG map, preprocessing)")
    print(f"checked with onnxruntime on {parity['events']} events: max |logit - PyTorch| "
          f"{diff['event']:.2g} (one event), {diff['batch']:.2g} (batch), "
          f"tolerance {PARITY_TOLERANCE:g}")
