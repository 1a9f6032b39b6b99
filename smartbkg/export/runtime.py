"""Running an exported model with onnxruntime: the runner and the filter backend.

:class:`ExportedModel` loads the graphs and the JSON of :func:`smartbkg.export.export_run`
and runs one event (the Belle II situation) or a padded batch; :class:`OnnxBackend` is the
filter's swappable call ``logits = backend(batch)`` on a PyG ``Batch`` of the batch contract,
with the same logits as the PyTorch model (to float32 rounding).
"""

from pathlib import Path

import numpy as np
import torch

from ..data.vocab import token_to_pdg
from ..errors import DataError
from .metadata import calibrations, read_metadata

#: Inputs of the single-event graph and of the batched graph, in order.
EVENT_INPUTS = ("x", "pdg", "mother", "c")
BATCH_INPUTS = ("x", "pdg", "mother", "counts", "c")


def metadata_path(model_path):
    """The JSON file next to an exported graph: ``model.onnx`` -> ``model.json``."""
    return Path(model_path).with_suffix(".json")


def batch_graph_path(model_path):
    """The batched graph next to the single-event one: ``model.onnx`` -> ``model.batch.onnx``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".batch.onnx")


def inference_session(path, threads=1):
    """An onnxruntime CPU session of the graph at ``path`` with ``threads`` intra-op threads
    (1: the basf2 situation, one event per call on one core; 0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for missing or corrupt files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"cannot load ONNX graph: {first[:200]}", path=path) from None


def padded_inputs(batch):
    """The batched graph's inputs (numpy) from a PyG ``Batch`` of the batch contract.

    Tokens go back to raw PDG ids (:func:`~smartbkg.data.vocab.token_to_pdg`; the unknown token
    0 becomes id 0, which the graph maps to 0 again) and ``mother_index`` to mothers within each
    event (-1 for roots); events are padded to the largest.

    Returns:
        dict with ``x`` (B, L, 8) float32, ``pdg`` (B, L) int64, ``mother`` (B, L) int64,
        ``counts`` (B,) int64, ``c`` (B,) int64.
    """
    if batch.get("mother_index") is None:
        raise DataError("the batch has no mother_index (batch contract)", field="mother_index")
    ptr = batch.ptr.cpu().numpy()
    counts = np.diff(ptr)
    graph = batch.batch.cpu().numpy()
    node = np.arange(len(graph))
    position = node - ptr[graph]
    mother_index = batch.mother_index.cpu().numpy()
    shape = (len(counts), int(counts.max(initial=1)))
    x = np.zeros(shape + (batch.x.shape[1],), dtype=np.float32)
    pdg = np.zeros(shape, dtype=np.int64)
    mother = np.full(shape, -1, dtype=np.int64)
    x[graph, position] = batch.x.cpu().numpy()
    pdg[graph, position] = token_to_pdg(batch.pdg.cpu().numpy())
    mother[graph, position] = np.where(mother_index == node, -1, mother_index - ptr[graph])
    return {"x": x, "pdg": pdg, "mother": mother, "counts": counts.astype(np.int64),
            "c": batch.event_type.cpu().numpy().astype(np.int64)}


class ExportedModel:
    """An exported model: its onnxruntime sessions and its metadata.

    Args:
        path: the single-event graph (``model.onnx``); the batched graph and the JSON file
            are read from next to it.
        threads: intra-op threads of the sessions (1: the basf2 situation).

    Attributes:
        metadata: the JSON dict; skims: output names; calibrations: skim ->
        :class:`~smartbkg.sampling.Calibration`.
    """

    def __init__(self, path, threads=1):
        self.path = Path(path)
        self.threads = threads
        self.metadata = read_metadata(metadata_path(self.path))
        self.skims = list(self.metadata["skims"])
        self.calibrations = calibrations(self.metadata)
        self.event_session = inference_session(self.path, threads)
        self._batch_session = None

    @property
    def batch_session(self):
        """The batched graph's session (loaded when first used)."""
        if self._batch_session is None:
            self._batch_session = inference_session(batch_graph_path(self.path), self.threads)
        return self._batch_session

    def event_logits(self, x, pdg, mother, c):
        """Logits (1, S) float32 of one event: ``x`` (N, 8), ``pdg`` (N,) raw ids, ``mother``
        (N,) (-1 for roots), ``c`` event-type code (int or (1,))."""
        feed = {"x": np.asarray(x, dtype=np.float32), "pdg": np.asarray(pdg, dtype=np.int64),
                "mother": np.asarray(mother, dtype=np.int64),
                "c": np.asarray(c, dtype=np.int64).reshape(1)}
        return self.event_session.run(None, feed)[0]

    def batch_logits(self, inputs):
        """Logits (B, S) float32 of a padded batch: ``inputs`` as :func:`padded_inputs` gives."""
        return self.batch_session.run(None, {name: inputs[name] for name in BATCH_INPUTS})[0]

    def probabilities(self, logits):
        """Sampling probabilities (n, S) float64 of logits (n, S): each skim's calibration."""
        logits = np.asarray(logits).reshape(-1, len(self.skims))
        return np.stack([self.calibrations[skim].apply(logits[:, j])
                         for j, skim in enumerate(self.skims)], axis=1)


class OnnxBackend:
    """The filter's model call on onnxruntime: ``logits = backend(batch)``.

    Args:
        path: the exported single-event graph (``model.onnx``); the batched graph next to it
            is what runs.
        threads: intra-op threads (0: onnxruntime's default, all cores).

    Call: a PyG ``Batch`` (batch contract, PDG tokens of the shipped vocabulary) -> (B, S)
    float32 CPU tensor of logits, equal to the PyTorch model's to float32 rounding.
    """

    def __init__(self, path, threads=0):
        self.model = ExportedModel(path, threads)
        self.skims = self.model.skims

    def __call__(self, batch):
        return torch.from_numpy(self.model.batch_logits(padded_inputs(batch)))
