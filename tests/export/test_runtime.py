"""The onnxruntime runner and the filter backend: same logits as PyTorch on real batches."""

import numpy as np
import torch

from tests.export.export_cases import UNKNOWN_PDG, events_batch
from smartbkg.data.graphs import GraphStore
from smartbkg.export.exporter import PARITY_TOLERANCE, load_run
from smartbkg.export.runtime import OnnxBackend, padded_inputs
from smartbkg.train.loop import instantiate_model


def test_backend_gives_the_torch_logits_on_batches(exported_run, trained_run, pythia_table):
    checkpoint, _ = load_run(trained_run)
    model = instantiate_model(checkpoint["model_info"])
    model.load_state_dict(checkpoint["model"])
    model.eval()
    backend = OnnxBackend(exported_run[0])
    store = GraphStore(pythia_table)
    for events in (range(0, 64), range(64, 65), np.arange(100, 400, 7)):
        batch = store.batch(events)
        logits = backend(batch)
        with torch.no_grad():
            reference = model(batch)
        assert logits.dtype == torch.float32 and logits.shape == (len(events), 1)
        assert (logits - reference).abs().max() <= PARITY_TOLERANCE


def test_padded_inputs_give_back_the_callers_arrays(parity_events):
    inputs = padded_inputs(events_batch(parity_events))
    assert inputs["x"].shape == (len(parity_events), max(len(e["pdg"]) for e in parity_events), 8)
    np.testing.assert_array_equal(inputs["counts"], [len(e["pdg"]) for e in parity_events])
    for b, event in enumerate(parity_events):
        n = len(event["pdg"])
        np.testing.assert_array_equal(inputs["x"][b, :n], event["x"])
        np.testing.assert_array_equal(inputs["mother"][b, :n], event["mother"])
        # ids outside the vocabulary come back as 0: the graph maps both to the unknown token
        np.testing.assert_array_equal(inputs["pdg"][b, :n],
                                      np.where(event["pdg"] == UNKNOWN_PDG, 0, event["pdg"]))
        assert inputs["c"][b] == event["c"][0]
        assert (inputs["x"][b, n:] == 0).all() and (inputs["mother"][b, n:] == -1).all()
