"""The JSON file next to an exported model: everything the C++ side needs, nothing it must guess.

The split of the work (the same for the single-event and the batched graph):

The caller (the Belle II module, or any C++/Python host) does the particle selection of
:mod:`smartbkg.data.preprocess` with the settings in ``preprocessing.settings``: drop the
initial-state particles, the particles produced outside the vertex box and the particles whose
absolute PDG id is listed; re-link every kept particle to its nearest kept ancestor (``mother`` is its
index among the kept particles, -1 for a root); make production times relative to the first
kept particle. It passes the kept particles in their record order, with the features in the
order and units of ``node_features`` (float32), the raw PDG ids (int64) and the event-type code
of ``event_types``. Events left without particles are not passed (they are counted by the
caller, as the package counts them).

The graph does the rest: the PDG id -> token map (``pdg``: unknown ids give token 0), the
fixed feature scaling asinh(x / s) with the scales in ``graph_does``, the decay-tree structure
from ``mother`` and the network. It returns logits; the sampling probability of each skim is
the calibration of ``calibration`` applied to its logit (:class:`smartbkg.sampling.Calibration`:
``exp``: p = min(exp(a (x - b)), 1); ``skewed_sigmoid``: p = (1 + a exp(-c (x - b)))^(-1/a);
``sigmoid``: p = 1 / (1 + exp(-x)); every form floored at 1 / max_weight), and a kept event
gets the weight 1/p.
"""

import hashlib
import json
from pathlib import Path

from .. import __version__
from ..data.preprocess import DROP_REASONS, PreprocessConfig
from ..data.table import NODE_FEATURES
from ..data.vocab import PDG_IDS, UNKNOWN_TOKEN, load_vocabulary
from ..errors import ConfigError, DataError
from ..models.layers import NODE_SCALES
from ..sampling import Calibration

FORMAT_VERSION = 1
#: Units of the node features, in :data:`~smartbkg.data.table.NODE_FEATURES` order.
NODE_UNITS = ("ns", "cm", "cm", "cm", "GeV", "GeV", "GeV", "GeV")


def config_hash(config):
    """``sha256:`` hex digest of a run's resolved configuration dict (canonical JSON: sorted
    keys, no spaces), the same for the same options whatever their order."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def interface(num_skims):
    """Inputs and outputs of the two graphs (names, dtypes, shapes with symbolic axes)."""
    features = "[" + ", ".join(f"{n} {u}" for n, u in zip(NODE_FEATURES, NODE_UNITS)) + "]"
    event = [
        {"name": "x", "dtype": "float32", "shape": ["N", 8], "content": features},
        {"name": "pdg", "dtype": "int64", "shape": ["N"], "content": "raw PDG ids"},
        {"name": "mother", "dtype": "int64", "shape": ["N"],
         "content": "index of the mother among the event's particles, -1 for a root"},
        {"name": "c", "dtype": "int64", "shape": [1], "content": "event-type code"},
    ]
    batch = [
        {**event[0], "shape": ["B", "L", 8]},
        {**event[1], "shape": ["B", "L"]},
        {**event[2], "shape": ["B", "L"]},
        {"name": "counts", "dtype": "int64", "shape": ["B"],
         "content": "particles of each event (the first counts[b] rows; the rest is padding)"},
        {**event[3], "shape": ["B"], "content": "event-type code of each event"},
    ]
    return {
        "event": {"inputs": event, "outputs": [{"name": "output", "dtype": "float32",
                                                 "shape": [1, num_skims], "content": "logit per skim"}]},
        "batch": {"inputs": batch, "outputs": [{"name": "output", "dtype": "float32",
                                                 "shape": ["B", num_skims], "content": "logit per skim"}]},
    }


def build_metadata(*, model_info, skims, calibrations, config, files, opset, parameters,
                   verification=None):
    """The metadata dict of an export (see the module docstring).

    Args:
        model_info: the checkpoint's ``model_info`` (name, options, event_types, vocab_size).
        skims: names of the exported outputs, in output order.
        calibrations: skim -> :class:`~smartbkg.sampling.Calibration` of every exported skim.
        config: the run's resolved configuration dict.
        files: {"event": file name, "batch": file name} of the graphs (next to the JSON).
        opset: ONNX opset of the graphs.
        parameters: number of parameters of the network.
        verification: optional dict of the export's parity check.
    """
    preprocess = PreprocessConfig.from_dict(dict(config.get("data", {}).get("preprocess") or {}))
    vocabulary = load_vocabulary()
    return {
        "format": FORMAT_VERSION,
        "smartbkg_version": __version__,
        "config_hash": config_hash(config),
        "model": {"name": model_info["name"], "options": dict(model_info["options"]),
                  "parameters": int(parameters), "vocab_size": int(model_info["vocab_size"])},
        "graphs": {**files, "opset": int(opset)},
        "interface": interface(len(skims)),
        "skims": list(skims),
        "calibration": {skim: calibrations[skim].to_dict() for skim in skims},
        "event_types": [{"name": name, "code": code}
                        for code, name in enumerate(model_info["event_types"])],
        "node_features": [{"name": n, "unit": u} for n, u in zip(NODE_FEATURES, NODE_UNITS)],
        "pdg": {"input": "raw PDG ids; the map to tokens is inside the graph",
                "unknown_token": UNKNOWN_TOKEN, "vocabulary": vocabulary["built_with"],
                "ids": PDG_IDS.tolist(), "tokens": list(range(1, len(PDG_IDS) + 1))},
        "preprocessing": {
            "done_by": "caller",
            "settings": preprocess.to_dict(),
            "steps": [f"drop particles: {reason}" for reason in DROP_REASONS]
            + ["re-link every kept particle to its nearest kept ancestor (mother = its index "
               "among the kept particles, -1 for a root)",
               "production time relative to the first kept particle (if relative_time)",
               "drop events left without particles (count them)"],
        },
        "graph_does": {
            "pdg_tokens": "raw PDG id -> token by the table of 'pdg' (unknown ids -> 0)",
            "feature_scaling": {"formula": "asinh(x / s)", "s": list(NODE_SCALES)},
            "tree": "mother<->daughter structure from 'mother'",
        },
        "verification": verification or {},
    }


def write_metadata(metadata, path):
    """Write the metadata dict as indented JSON to ``path``."""
    Path(path).write_text(json.dumps(metadata, indent=1) + "\n")


def read_metadata(path):
    """Read an export's JSON file.

    Raises:
        DataError: missing or unreadable file, or not an export's metadata.
    """
    path = Path(path)
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("export metadata not found", path=path) from None
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read export metadata: {error}", path=path) from None
    if not isinstance(metadata, dict) or "skims" not in metadata or "format" not in metadata:
        raise DataError("not the metadata of a smartbkg export (no 'skims'/'format')", path=path)
    if metadata["format"] > FORMAT_VERSION:
        raise DataError(f"export format {metadata['format']} is newer than this smartbkg "
                        f"({FORMAT_VERSION})", path=path)
    return metadata


def calibrations(metadata):
    """skim -> :class:`~smartbkg.sampling.Calibration` of an export's metadata, in output order."""
    try:
        return {skim: Calibration.from_dict(metadata["calibration"][skim])
                for skim in metadata["skims"]}
    except KeyError as error:
        raise ConfigError(f"export metadata has no calibration for skim {error}") from None
