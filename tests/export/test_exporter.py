"""ONNX graphs checked by onnxruntime against PyTorch on real embedded-sample events."""

import numpy as np
import onnx
import pytest
import torch

from tests.export.export_cases import (EXPORTED_MODELS, MODEL_IDS, MAX_PARTICLES, events_batch, small_model,
                          torch_logits)
from smartbkg.errors import ConfigError
from smartbkg.export.exporter import PARITY_TOLERANCE, export_graph, load_run
from smartbkg.export.runtime import (BATCH_INPUTS, EVENT_INPUTS, batch_graph_path, inference_session,
                                     padded_inputs)
from smartbkg.train.loop import instantiate_model


def onnx_event_logits(session, events):
    """(B, S) logits of the single-event graph, one call per event."""
    return np.concatenate([session.run(None, {k: e[k] for k in EVENT_INPUTS})[0] for e in events])


def check_interface(path, batched):
    """onnx.checker passes; the inputs, dtypes and dynamic axes are the documented ones."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    names = BATCH_INPUTS if batched else EVENT_INPUTS
    assert [i.name for i in model.graph.input] == list(names)
    assert [o.name for o in model.graph.output] == ["output"]
    types = {i.name: i.type.tensor_type for i in model.graph.input}
    assert types["x"].elem_type == onnx.TensorProto.FLOAT
    assert all(types[n].elem_type == onnx.TensorProto.INT64 for n in names if n != "x")
    first = types["x"].shape.dim[0]
    assert first.dim_param and not first.dim_value   # N (or B) is dynamic


@pytest.mark.slow
@pytest.mark.parametrize("name, options", EXPORTED_MODELS, ids=MODEL_IDS)
def test_onnx_equals_pytorch_on_pythia_events(name, options, parity_events, tmp_path):
    model = small_model(name, options)
    reference = torch_logits(model, parity_events)
    path = tmp_path / "model.onnx"
    export_graph(model, path)
    export_graph(model, batch_graph_path(path), batched=True)
    check_interface(path, batched=False)
    check_interface(batch_graph_path(path), batched=True)
    single = onnx_event_logits(inference_session(path), parity_events)
    batched = inference_session(batch_graph_path(path)).run(
        None, padded_inputs(events_batch(parity_events)))[0]
    assert np.abs(single - reference).max() <= PARITY_TOLERANCE
    assert np.abs(batched - reference).max() <= PARITY_TOLERANCE


def test_exported_run_equals_pytorch_from_1_to_200_particles(exported_run, trained_run,
                                                             parity_events):
    path, _ = exported_run
    checkpoint, _ = load_run(trained_run)
    model = instantiate_model(checkpoint["model_info"])
    model.load_state_dict(checkpoint["model"])
    reference = torch_logits(model, parity_events)
    assert {len(e["pdg"]) for e in parity_events} >= {1, MAX_PARTICLES}
    for batched in (False, True):
        check_interface(batch_graph_path(path) if batched else path, batched)
    single = onnx_event_logits(inference_session(path), parity_events)
    batched = inference_session(batch_graph_path(path)).run(
        None, padded_inputs(events_batch(parity_events)))[0]
    assert single.shape == reference.shape == (len(parity_events), 1)
    assert np.abs(single - reference).max() <= PARITY_TOLERANCE
    assert np.abs(batched - reference).max() <= PARITY_TOLERANCE


@pytest.mark.slow
def test_skim_selection_keeps_the_chosen_outputs_in_order(parity_events, tmp_path):
    model = small_model("deepsets", {"hidden": 16, "layers": 2}, num_skims=3)
    reference = torch_logits(model, parity_events)
    path = tmp_path / "model.onnx"
    export_graph(model, path, skim_index=[2, 0])
    single = onnx_event_logits(inference_session(path), parity_events)
    assert np.abs(single - reference[:, [2, 0]]).max() <= PARITY_TOLERANCE


@pytest.mark.parametrize("opset", [7, 17, 24, 99])
def test_an_opset_onnx_cannot_write_is_refused(opset, tmp_path):
    model = small_model("deepsets", {"hidden": 8, "layers": 2})
    with pytest.raises(ConfigError, match=f"opset {opset} cannot be written"):
        export_graph(model, tmp_path / "model.onnx", opset=opset)
    assert not (tmp_path / "model.onnx").exists()


def test_a_model_outside_the_zoo_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot export Linear: no tensor forward for ONNX"):
        export_graph(torch.nn.Linear(2, 2), tmp_path / "model.onnx")


def test_a_run_with_event_features_is_refused_in_one_line(sample_dir, tmp_path):
    """The skim emulation is computed in Python from the record: it is not part of the ONNX graphs."""
    from smartbkg.export.exporter import export_run
    from smartbkg.train.config import RunConfig
    from smartbkg.train.loop import Trainer

    Trainer(RunConfig.from_dict({
        "data": {"path": [str(sample_dir)], "skims": ["tau_generic"], "batch_size": 64, "event_features": True},
        "model": {"name": "deepsets", "options": {"hidden": 8, "layers": 2}},
        "train": {"epochs": 1, "quiet": True},
        "out": str(tmp_path / "run"),
    })).fit()
    with pytest.raises(ConfigError, match="generator-level skim emulation"):
        export_run(tmp_path / "run", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
