"""Helpers of the export tests: graph inputs from real events, the PyTorch reference, the
small models of every exported kind."""

import numpy as np
import torch
from torch_geometric.data import Batch

from smartbkg.data.graphs import event_data
from smartbkg.data.table import NODE_FEATURES
from smartbkg.data.vocab import pdg_to_token
from smartbkg.models import build_model

#: Particles of the largest event the parity tests feed (events are built up to it).
MAX_PARTICLES = 200
#: An id that is not in the PDG vocabulary (the graph must give it the unknown token).
UNKNOWN_PDG = 987654321

#: (name, options) of a small model of every kind the export covers.
EXPORTED_MODELS = [
    ("gatgap", {"units": 8, "heads": 2, "layers": 2}),
    ("gatgap", {"units": 8, "heads": 2, "layers": 2, "attention": "gatv2", "event_dim": 4}),
    ("transformer", {"dim": 16, "heads": 2, "blocks": 2, "cls_blocks": 1, "pair_hidden": 8,
                     "pair_bias": "per_block"}),
    ("lorentz", {"dim": 16, "heads": 2, "blocks": 2, "cls_blocks": 1, "pair_hidden": 8,
                 "vector_update": True}),
    ("deepsets", {"hidden": 16, "layers": 2}),
]
MODEL_IDS = ["gatgap", "gatgap-gatv2", "transformer", "lorentz-vector", "deepsets"]


def small_model(name, options, num_skims=2):
    """A seeded model of the zoo in eval mode, with the shipped PDG vocabulary."""
    torch.manual_seed(5)
    return build_model(name, num_skims=num_skims, **options).eval()


def table_event(table, i):
    """Event ``i`` of a table as the graph's inputs: dict of ``x`` (N, 8) float32, ``pdg`` (N,)
    raw ids, ``mother`` (N,) (-1 for roots), ``c`` (1,) int64."""
    lo, hi = table.offsets[i], table.offsets[i + 1]
    p = table.particles
    return {"x": np.stack([p[name][lo:hi] for name in NODE_FEATURES], axis=1).astype(np.float32),
            "pdg": p["pdg"][lo:hi].astype(np.int64), "mother": p["mother"][lo:hi].astype(np.int64),
            "c": np.array([table.event_type[i]], dtype=np.int64)}


def joined_event(events, size):
    """The first ``size`` particles of real events laid one after the other (mothers shifted,
    links beyond the cut become roots): an event of exactly ``size`` real particles."""
    parts, shift = [], 0
    for event in events:
        mother = np.where(event["mother"] >= 0, event["mother"] + shift, -1)
        parts.append({**event, "mother": mother})
        shift += len(mother)
        if shift >= size:
            break
    joined = {key: np.concatenate([p[key] for p in parts])[:size] for key in ("x", "pdg", "mother")}
    joined["mother"] = np.where(joined["mother"] < size, joined["mother"], -1)
    return {**joined, "c": events[0]["c"]}


def events_batch(events):
    """A ``Batch`` (batch contract, PDG tokens) of graph-input events, as the data layer builds."""
    return Batch.from_data_list([
        event_data(e["x"], pdg_to_token(e["pdg"]), e["mother"], [0.0], int(e["c"][0]))
        for e in events])


def torch_logits(model, events):
    """(B, S) float32 numpy logits of the PyTorch model on the events (its ``Batch`` forward)."""
    with torch.no_grad():
        return model.eval()(events_batch(events)).numpy()
