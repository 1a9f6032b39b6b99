"""The modules that become the ONNX graphs, in PyTorch: the same logits as the models' own
forward on real events, the same PDG tokens as the vocabulary, the same adjacency."""

import numpy as np
import pytest
import torch

from tests.export.export_cases import EXPORTED_MODELS, MODEL_IDS, events_batch, small_model, torch_logits
from smartbkg.data.pair_features import dense_adjacency
from smartbkg.data.vocab import PDG_IDS, pdg_to_token
from smartbkg.export.graphs import (BatchGraph, EventGraph, PdgLookup, hash_modulus, mother_or_self,
                                    tree_adjacency)
from smartbkg.export.runtime import padded_inputs

def test_pdg_lookup_gives_the_vocabulary_tokens_for_any_id():
    rng = np.random.default_rng(0)
    ids = np.concatenate([PDG_IDS, -PDG_IDS, [0, 1, 6, 21, 22, 99, 10**9 + 7, -(10**12)],
                          [np.iinfo(np.int64).max, np.iinfo(np.int64).min + 1],
                          rng.integers(-10**7, 10**7, 5000)]).astype(np.int64)
    tokens = PdgLookup()(torch.from_numpy(ids)).numpy()
    np.testing.assert_array_equal(tokens, pdg_to_token(ids))
    assert (tokens[:len(PDG_IDS)] == np.arange(1, len(PDG_IDS) + 1)).all()


def test_hash_modulus_is_the_smallest_collision_free_one():
    modulus = hash_modulus(PDG_IDS)
    assert len(np.unique(PDG_IDS % modulus)) == len(PDG_IDS)
    assert all(len(np.unique(PDG_IDS % m)) < len(PDG_IDS) for m in range(modulus - 50, modulus))


def test_tree_adjacency_is_the_data_layer_adjacency(parity_events):
    batch = events_batch(parity_events)
    inputs = padded_inputs(batch)
    length = inputs["x"].shape[1]
    mask = torch.arange(length) < torch.from_numpy(inputs["counts"])[:, None]
    mother = mother_or_self(torch.from_numpy(inputs["mother"]), mask)
    expected = dense_adjacency(batch.edge_index, batch.batch, batch.ptr, length)
    torch.testing.assert_close(tree_adjacency(mother, mask), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name, options", EXPORTED_MODELS, ids=MODEL_IDS)
def test_graph_modules_give_the_model_logits(name, options, parity_events):
    model = small_model(name, options)
    reference = torch_logits(model, parity_events)
    graph = EventGraph(model).eval()
    with torch.no_grad():
        single = torch.cat([graph(*(torch.from_numpy(e[k]) for k in ("x", "pdg", "mother", "c")))
                            for e in parity_events]).numpy()
        inputs = padded_inputs(events_batch(parity_events))
        batched = BatchGraph(model).eval()(*(torch.from_numpy(inputs[k]) for k in
                                             ("x", "pdg", "mother", "counts", "c"))).numpy()
    np.testing.assert_allclose(single, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(batched, reference, rtol=0, atol=1e-5)
