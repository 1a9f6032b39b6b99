"""The modules that become the exported ONNX graphs: raw Belle II inputs -> logits.

Two interfaces, both taking the particles as the caller has preprocessed them (see
:mod:`smartbkg.export.metadata` for the split of the preprocessing):

* :class:`EventGraph`, one event per call as the Belle II module feeds it:
  ``x`` (N, 8) float32 [prodTime ns, x cm, y cm, z cm, E GeV, px, py, pz GeV], ``pdg`` (N,)
  int64 raw PDG ids, ``mother`` (N,) int64 index of the mother within the event (-1 for roots),
  ``c`` (1,) int64 event-type code -> ``output`` (1, S) logits;
* :class:`BatchGraph`, a padded batch for throughput: ``x`` (B, L, 8), ``pdg`` (B, L),
  ``mother`` (B, L), ``counts`` (B,) int64 real particles per event (the first ``counts[b]``
  rows of event b; the rest is padding and may hold anything finite), ``c`` (B,) ->
  ``output`` (B, S).

Inside the graph: the PDG id -> token map (:class:`PdgLookup`), the tree from ``mother``, and
the model itself (which applies its fixed feature scaling); nothing else. Every op is one that
ONNX expresses for any N (no shape depends on the data), so N, B and L are dynamic axes.
"""

import itertools

import numpy as np
import torch
from torch import nn

from ..data.vocab import PDG_IDS, UNKNOWN_TOKEN
from ..errors import ConfigError
from ..models.deepsets import DeepSets
from ..models.gatgap import GATGAP, graph_structure
from ..models.transformer import ParticleTransformer


def hash_modulus(ids):
    """The smallest M >= len(ids) for which ``ids mod M`` are all different (a perfect hash).

    For the shipped vocabulary (868 ids) M = 10916: two tables of M int64 entries. The search
    ends: any M above twice the largest absolute id separates all ids.
    """
    ids = np.asarray(ids, dtype=np.int64)
    for modulus in itertools.count(max(len(ids), 1)):
        if len(np.unique(np.mod(ids, modulus))) == len(ids):
            return modulus


class PdgLookup(nn.Module):
    """Raw PDG ids -> tokens of :mod:`smartbkg.data.vocab` inside the graph, O(N).

    A perfect hash: slot = pdg mod M (Python sign convention, ONNX ``Mod`` with ``fmod=0``),
    token = ``slot_tokens[slot]`` if ``slot_ids[slot] == pdg`` else 0 (unknown). The same tokens
    as :func:`smartbkg.data.vocab.pdg_to_token` for every int64 id (checked in the tests).

    Shapes: ``pdg`` (...) int64 -> (...) int64 tokens.
    """

    def __init__(self, ids=PDG_IDS):
        super().__init__()
        ids = np.asarray(ids, dtype=np.int64)
        self.modulus = hash_modulus(ids)
        slot = np.mod(ids, self.modulus)
        slot_ids = np.zeros(self.modulus, dtype=np.int64)
        slot_tokens = np.full(self.modulus, UNKNOWN_TOKEN, dtype=np.int64)
        slot_ids[slot] = ids
        slot_tokens[slot] = np.arange(1, len(ids) + 1)
        self.register_buffer("slot_ids", torch.from_numpy(slot_ids))
        self.register_buffer("slot_tokens", torch.from_numpy(slot_tokens))

    def forward(self, pdg):
        slot = torch.remainder(pdg, self.modulus)
        return torch.where(self.slot_ids[slot] == pdg, self.slot_tokens[slot],
                           torch.zeros_like(pdg))


def mother_or_self(mother, mask=None):
    """The batch contract's ``mother_index`` from ``mother`` (..., L) with -1 for roots: each
    node's mother within its event, the node itself for roots (and for padding, ``mask``
    (..., L) False)."""
    node = torch.arange(mother.shape[-1], device=mother.device).expand_as(mother)
    root = mother < 0 if mask is None else (mother < 0) | ~mask
    return torch.where(root, node, mother)


def tree_adjacency(mother_index, mask):
    """Dense decay-tree adjacency (B, L, L) float, 1 between each node and its mother (both
    ways), from ``mother_index`` (B, L) (self for roots) and ``mask`` (B, L) bool: the same as
    :func:`smartbkg.data.pair_features.dense_adjacency` of the batch contract's edges, built
    with comparisons only (no scatter)."""
    node = torch.arange(mother_index.shape[1], device=mother_index.device)
    child = ((mother_index[:, :, None] == node) & (mother_index != node)[:, :, None]
             & mask[:, :, None])
    return (child | child.transpose(1, 2)).float()


def model_kind(model):
    """``"nodes"`` for the models with a flat forward, ``"dense"`` for the transformers; raise
    :class:`~smartbkg.errors.ConfigError` for a model the export does not know."""
    if isinstance(model, (GATGAP, DeepSets)):
        return "nodes"
    if isinstance(model, ParticleTransformer):
        return "dense"
    raise ConfigError(f"cannot export {type(model).__name__}: no tensor forward for ONNX")


def _nodes_forward(model, x, tokens, mother_index, batch_index, event_type, num_graphs):
    """Flat forward of a node model; ``mother_index`` (N,) global, self for roots."""
    if isinstance(model, GATGAP):
        graph = graph_structure(None, x.shape[0], mother_index)
        return model.forward_nodes(x, tokens, graph, batch_index, event_type, num_graphs)
    return model.forward_nodes(x, tokens, batch_index, event_type, num_graphs)


def _dense_forward(model, x, tokens, mother_index, mask, event_type):
    """Dense forward of a transformer; ``mother_index`` (B, L) local, self for roots."""
    adjacency = tree_adjacency(mother_index, mask) if "adjacency" in model.pair_names else None
    return model.forward_dense(x, tokens, mask, adjacency, event_type)


class ExportGraph(nn.Module):
    """Base of the two graphs: the model, the PDG map and an optional choice of outputs.

    Args:
        model: a model of the zoo in eval mode (gatgap, deepsets, transformer, lorentz).
        skim_index: optional output columns to keep, in order (default: all).
    """

    def __init__(self, model, skim_index=None):
        super().__init__()
        self.kind = model_kind(model)
        self.model, self.lookup = model, PdgLookup()
        self.register_buffer("skim_index", None if skim_index is None
                             else torch.as_tensor(skim_index, dtype=torch.int64))

    def outputs(self, logits):
        """The chosen columns of ``logits`` (B, S)."""
        return logits if self.skim_index is None else logits.index_select(1, self.skim_index)


class EventGraph(ExportGraph):
    """One event, the Belle II interface: ``(x, pdg, mother, c)`` -> (1, S) logits.

    Args: as :class:`ExportGraph`.

    Shapes: ``x`` (N, 8) float32, ``pdg`` (N,) int64 raw PDG ids, ``mother`` (N,) int64 (-1 for
    roots), ``c`` (1,) int64 event-type code; returns (1, S) logits. N >= 1.
    """

    def forward(self, x, pdg, mother, c):
        tokens = self.lookup(pdg)
        mother_index = mother_or_self(mother)
        if isinstance(self.model, GATGAP):
            logits = self.model.forward_event(x, tokens, mother_index, c)
        elif self.kind == "nodes":
            batch_index = torch.zeros_like(mother)
            logits = _nodes_forward(self.model, x, tokens, mother_index, batch_index, c, 1)
        else:
            mask = torch.ones_like(mother, dtype=torch.bool)[None]
            logits = _dense_forward(self.model, x[None], tokens[None], mother_index[None], mask, c)
        return self.outputs(logits)


class BatchGraph(ExportGraph):
    """A padded batch: ``(x, pdg, mother, counts, c)`` -> (B, S) logits.

    The node models (gatgap, deepsets) run on the flattened batch, with the padding as isolated
    particles of an extra event that is dropped; the transformers on the padded batch with a
    mask. Padding never changes the logits of the real events. Args: as :class:`ExportGraph`.

    Shapes: ``x`` (B, L, 8) float32, ``pdg`` (B, L) int64 raw PDG ids, ``mother`` (B, L) int64
    (-1 for roots), ``counts`` (B,) int64 in [1, L], ``c`` (B,) int64; returns (B, S) logits.
    """

    def forward(self, x, pdg, mother, counts, c):
        num_graphs, length = x.shape[0], x.shape[1]
        mask = torch.arange(length, device=x.device) < counts[:, None]
        tokens = self.lookup(pdg)
        mother_index = mother_or_self(mother, mask)
        if self.kind == "dense":
            return self.outputs(_dense_forward(self.model, x, tokens, mother_index, mask, c))
        graph = torch.arange(num_graphs, device=x.device)[:, None]
        batch_index = torch.where(mask, graph, num_graphs).reshape(-1)
        mother_index = (mother_index + graph * length).reshape(-1)
        logits = _nodes_forward(self.model, x.reshape(-1, x.shape[2]), tokens.reshape(-1),
                                mother_index, batch_index, torch.cat([c, c[:1]]), num_graphs + 1)
        return self.outputs(logits[:num_graphs])
