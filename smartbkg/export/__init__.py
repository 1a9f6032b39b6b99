"""ONNX export of trained filter networks with the Belle II interface, and onnxruntime runners.

* :func:`export_run`: a run folder -> the single-event graph (inputs ``x`` (N, 8), ``pdg`` (N,)
  raw PDG ids, ``mother`` (N,), ``c`` (1,); output ``output`` (1, S)), the padded-batch graph
  and the JSON metadata (:mod:`smartbkg.export.metadata`);
* :class:`ExportedModel`: the graphs on onnxruntime, one event or a batch;
* :class:`OnnxBackend`: the filter's ``logits = backend(batch)`` on onnxruntime.
"""

from .exporter import DEFAULT_OPSET, PARITY_TOLERANCE, export_graph, export_run, load_run
from .graphs import BatchGraph, EventGraph, PdgLookup
from .metadata import calibrations, config_hash, read_metadata
from .runtime import ExportedModel, OnnxBackend, padded_inputs

__all__ = ["DEFAULT_OPSET", "PARITY_TOLERANCE", "export_graph", "export_run", "load_run",
           "BatchGraph", "EventGraph", "PdgLookup", "calibrations", "config_hash",
           "read_metadata", "ExportedModel", "OnnxBackend", "padded_inputs"]
