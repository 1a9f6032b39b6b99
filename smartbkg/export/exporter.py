"""Export a trained run to ONNX: the two graphs, the JSON next to them, a parity check.

:func:`export_run` is what ``smartbkg-export`` calls; :func:`export_graph` turns one model into
one graph (torch.export with dynamic axes, then the ONNX exporter of PyTorch).
"""

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.graphs import GraphStore
from ..data.synthetic import decay_trees
from ..data.vocab import VOCAB_SIZE
from ..errors import ConfigError, DataError
from ..models.layers import count_parameters
from ..sampling import Calibration
from ..train.checkpoint import load_checkpoint
from ..train.loop import instantiate_model
from .graphs import BatchGraph, EventGraph, model_kind
from .metadata import build_metadata, write_metadata
from .runtime import (BATCH_INPUTS, EVENT_INPUTS, ExportedModel, batch_graph_path, metadata_path,
                      padded_inputs)

#: Default ONNX opset (the lowest that PyTorch's exporter writes, for older onnxruntimes).
DEFAULT_OPSET = 18
#: Newest opset written: the newest PyTorch's exporter declares (torch 2.13); from 26 on the
#: graphs of some operators (Gelu) fail the checker.
MAX_OPSET = 23
#: Largest absolute difference of ONNX and PyTorch logits that the export accepts (float32).
PARITY_TOLERANCE = 1e-4


def opset_range():
    """The opsets ``smartbkg-export`` writes: 18 (the exporter's lowest) to :data:`MAX_OPSET`
    (or the installed onnx's newest, if older)."""
    import onnx

    return range(DEFAULT_OPSET, min(MAX_OPSET, onnx.defs.onnx_opset_version()) + 1)


def check_opset(opset):
    """Raise :class:`~smartbkg.errors.ConfigError` for an opset outside :func:`opset_range`."""
    if opset not in opset_range():
        raise ConfigError(f"opset {opset} cannot be written: the export writes opsets "
                          f"{opset_range().start} to {opset_range().stop - 1}")


def example_events(n_events=4, num_particles=12, seed=0):
    """A few synthetic decay trees (:func:`~smartbkg.data.synthetic.decay_trees`) as a
    ``Batch``: the example inputs of the export and the events of its parity check."""
    table = decay_trees(n_events, num_particles=num_particles, seed=seed)
    return GraphStore(table).batch(range(n_events))


@contextlib.contextmanager
def _quiet_exporter():
    """Silence PyTorch's exporter: its internal deprecation warnings and its log lines about
    optional packages are no concern of the user (errors still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_graph(model, path, *, batched=False, opset=DEFAULT_OPSET, skim_index=None):
    """Write one ONNX graph of ``model`` (:class:`~smartbkg.export.graphs.EventGraph` or, with
    ``batched``, :class:`~smartbkg.export.graphs.BatchGraph`) to ``path`` and check it with
    ``onnx.checker``.

    Args:
        model: a model of the zoo (put in eval mode).
        path: output file.
        batched: the padded-batch graph instead of the single-event one.
        opset: ONNX opset, in :func:`~smartbkg.export.exporter.opset_range`.
        skim_index: optional output columns to keep, in order.

    Raises:
        ConfigError: an opset outside :func:`~smartbkg.export.exporter.opset_range`, or a model (or an operator of it)
            without an ONNX form.
    """
    import onnx

    check_opset(opset)
    model.eval()
    graph = (BatchGraph if batched else EventGraph)(model, skim_index).eval()
    inputs = padded_inputs(example_events())
    if batched:
        names = BATCH_INPUTS
        args = tuple(torch.from_numpy(inputs[name]) for name in names)
        batch, length = torch.export.Dim("B", min=1), torch.export.Dim("L", min=1)
        dynamic = ({0: batch, 1: length}, {0: batch, 1: length}, {0: batch, 1: length},
                   {0: batch}, {0: batch})
    else:
        names = EVENT_INPUTS
        n = int(inputs["counts"][0])
        args = (torch.from_numpy(inputs["x"][0, :n]), torch.from_numpy(inputs["pdg"][0, :n]),
                torch.from_numpy(inputs["mother"][0, :n]), torch.from_numpy(inputs["c"][:1]))
        particles = torch.export.Dim("N", min=1)
        dynamic = ({0: particles}, {0: particles}, {0: particles}, None)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(graph, args, None, dynamo=True, input_names=list(names),
                                        output_names=["output"], dynamic_shapes=dynamic,
                                        opset_version=opset, verbose=False)
    except Exception as error:  # the exporter raises many types; its first line says what failed
        text = str(error).strip()
        first = next((line for line in text.splitlines() if line.strip()), type(error).__name__)
        raise ConfigError(f"cannot export model {type(model).__name__} to ONNX opset {opset}: "
                          f"{first[:240]}") from None
    proto = program.model_proto
    found = [value.name for value in proto.graph.input]
    if found != list(names):
        raise ConfigError(f"exported graph has inputs {found}, expected {list(names)}")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"the ONNX graph of {type(model).__name__} (opset {opset}) fails "
                          f"onnx.checker: {first[:240]}") from None
    onnx.save_model(proto, str(path))
    return proto


def load_run(run_dir):
    """The best checkpoint of a run folder and its calibration per skim.

    Returns:
        (checkpoint dict, skim -> :class:`~smartbkg.sampling.Calibration`).

    Raises:
        DataError: no run folder, no ``checkpoints/best.pt``, or no calibration (training did not
            finish).
    """
    run_dir = Path(run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    if not run_dir.is_dir():
        raise DataError("run folder not found", path=run_dir)
    if not best.is_file():
        raise DataError("no best checkpoint (checkpoints/best.pt): not a finished training run",
                        path=run_dir)
    checkpoint = load_checkpoint(best)
    calibration = checkpoint.get("calibration")
    if not calibration:
        raise DataError("the best checkpoint has no calibration: training did not finish "
                        "(resume it with smartbkg-train --resume)", path=best)
    return checkpoint, {skim: Calibration.from_dict(c) for skim, c in calibration.items()}


def check_parity(model, exported, skim_index, n_events=8, seed=1):
    """Largest absolute difference of ONNX and PyTorch logits of both graphs on synthetic events (float32).

    Returns:
        dict with ``events`` and ``max_abs_logit_diff`` (single-event and batched graphs).
    """
    batch = example_events(n_events, num_particles=20, seed=seed)
    with torch.no_grad():
        reference = model(batch)[:, skim_index].numpy()
    inputs = padded_inputs(batch)
    single = np.concatenate([
        exported.event_logits(inputs["x"][b, :n], inputs["pdg"][b, :n], inputs["mother"][b, :n],
                              inputs["c"][b])
        for b, n in enumerate(inputs["counts"])])
    batched = exported.batch_logits(inputs)
    return {"events": n_events,
            "max_abs_logit_diff": {"event": float(np.abs(single - reference).max()),
                                   "batch": float(np.abs(batched - reference).max())}}


def export_run(run_dir, out, *, opset=DEFAULT_OPSET, skims=None):
    """Export the best model of a training run: ``out`` (single event), the batched graph next
    to it (``model.batch.onnx`` for ``model.onnx``) and the JSON metadata (``model.json``).

    Args:
        run_dir: a run folder of ``smartbkg-train`` (with ``checkpoints/best.pt``).
        out: path of the single-event graph; its folder must exist.
        opset: ONNX opset (:func:`~smartbkg.export.exporter.opset_range`).
        skims: names of the skims to export, in output order (default: all of the run's).

    Returns:
        the metadata dict (also written next to the graphs).

    Raises:
        DataError: a run folder without a finished best checkpoint, an output folder that does
            not exist, or graphs whose logits differ from PyTorch's by more than
            :data:`~smartbkg.export.exporter.PARITY_TOLERANCE`.
        ConfigError: an unknown skim, a bad opset, a model that cannot be exported, or a model
            trained with another PDG vocabulary than the shipped one.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError("the output folder does not exist", path=out.parent)
    check_opset(opset)
    checkpoint, calibration = load_run(run_dir)
    info = checkpoint["model_info"]
    if info.get("num_event_features"):
        raise ConfigError("the model takes the generator-level skim emulation (data.event_features), which is "
                          "computed in Python from the generator record and is not part of the ONNX graphs: "
                          "export a run trained without event features, or filter with smartbkg-filter")
    if info["vocab_size"] != VOCAB_SIZE:
        raise ConfigError(f"the model was trained with a PDG vocabulary of {info['vocab_size']} "
                          f"tokens, the shipped one has {VOCAB_SIZE}: the PDG map of the graph "
                          "would not match")
    skims = list(info["skims"]) if not skims else list(skims)
    unknown = [s for s in skims if s not in info["skims"]]
    if unknown:
        raise ConfigError(f"unknown skim(s) {unknown}; the run predicts {info['skims']}")
    missing = [s for s in skims if s not in calibration]
    if missing:
        raise DataError(f"the best checkpoint has no calibration for skim(s) {missing}",
                        path=Path(run_dir) / "checkpoints" / "best.pt")
    model = instantiate_model(info)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    model_kind(model)
    index = [info["skims"].index(s) for s in skims]
    selection = None if index == list(range(len(info["skims"]))) else index
    export_graph(model, out, opset=opset, skim_index=selection)
    export_graph(model, batch_graph_path(out), batched=True, opset=opset, skim_index=selection)
    files = {"event": out.name, "batch": batch_graph_path(out).name}
    metadata = build_metadata(model_info=info, skims=skims, calibrations=calibration,
                              config=checkpoint["config"], files=files, opset=opset,
                              parameters=count_parameters(model))
    write_metadata(metadata, metadata_path(out))
    parity = check_parity(model, ExportedModel(out), index)
    metadata["verification"] = parity
    write_metadata(metadata, metadata_path(out))
    worst = max(parity["max_abs_logit_diff"].values())
    if not worst <= PARITY_TOLERANCE:
        raise DataError(f"the exported graphs differ from PyTorch by {worst:.3g} in the logits "
                        f"(tolerance {PARITY_TOLERANCE})", path=out)
    return metadata
