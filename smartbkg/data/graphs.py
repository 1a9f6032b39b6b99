"""Decay trees as PyG graphs: one event as ``Data``, any set of events as ``Batch``, fast.

Every graph follows the batch contract of the data layer:

* ``x``: (N, 8) float32 node features [prodTime ns, x cm, y cm, z cm, E GeV, px, py, pz GeV]
  (:data:`~smartbkg.data.table.NODE_FEATURES`);
* ``pdg``: (N,) int64 tokens from :mod:`smartbkg.data.vocab` (0 = unknown id);
* ``edge_index``: (2, E) int64, node-major: for each non-root node ``i`` in order, the edges
  mother->i and i->mother, then i->i if self-loops are asked for (roots: only i->i);
* ``mother_index``: (N,) int64, the node index of each node's mother, the node itself for a
  root (the tree with its direction, so that models and event variables need not recover it
  from ``edge_index``; PyG offsets it like any ``*_index`` when batching);
* ``y``: (B, S) float32 skim labels; ``event_type``: (B,) int64; ``weight``: (B,) float32;
  ``event_id``: (B,) int64 (bookkeeping: the event's identifier in its source);
* ``event_features``: (B, F) float32, only in stores built with ``event_features=True``: the
  generator-level skim emulation of :mod:`smartbkg.data.skim_emulation`;
* ``batch``: (N,) int64 and ``ptr``: (B+1,) int64 for a ``Batch``.

:class:`GraphStore` holds the flat tensors of many events (built once per dataset or streaming
buffer); :meth:`GraphStore.batch` cuts a ``Batch`` for any list of events with a handful of
index operations (:meth:`GraphStore.batches` a few batches at a time), tensor for tensor equal
to ``Batch.from_data_list`` of the per-event ``Data`` (including ``_slice_dict`` and
``_inc_dict``, so ``to_data_list`` works). Batches of consecutive events are slices of the flat
tensors, with no gathering; a store can be built with its events in the order in which they
will be served (``order``), so that every batch is such a range: streaming buffers are built
this way, which moves the random-access part of shuffling into one pass of the build.
"""

import itertools

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from ..errors import DataError
from .preprocess import index_dtype
from .skim_emulation import skim_emulation
from .table import NODE_FEATURES, ragged_arange
from .vocab import pdg_to_token

#: Batches gathered together by :meth:`GraphStore.batches`.
GROUPS_PER_GATHER = 4
#: Per-graph attributes besides the node and edge tensors, in the order they are set.
GRAPH_ATTRS = ("y", "event_type", "weight", "event_id")
#: The optional per-graph attribute of :func:`~smartbkg.data.skim_emulation.skim_emulation`.
EVENT_FEATURES = "event_features"
#: Rows per block when node features are transposed into (n, 8) (blocks that fit in cache).
_BLOCK = 65536


def node_features(table, out=None):
    """Node features of all particles in :data:`NODE_FEATURES` order.

    Args:
        table: :class:`~smartbkg.data.table.EventTable`.
        out: optional (n_particles, 8) float32 array to fill.

    Returns:
        (n_particles, 8) float32 numpy array.
    """
    n = table.n_particles
    out = np.empty((n, len(NODE_FEATURES)), dtype=np.float32) if out is None else out
    # Column writes are strided; blocks of rows that fit in cache make them about twice as fast.
    for lo in range(0, n, _BLOCK):
        for j, name in enumerate(NODE_FEATURES):
            out[lo:lo + _BLOCK, j] = table.particles[name][lo:lo + _BLOCK]
    return out


def mother_distance(mother):
    """Distance from each node back to its mother in node order, 0 for roots.

    Args:
        mother: (n,) mother positions within one event, -1 for roots.

    Returns:
        (n,) int64 ``position - mother`` (nonzero: a particle is never its own mother), 0 for roots.
    """
    mother = torch.as_tensor(mother, dtype=torch.int64)
    position = torch.arange(len(mother), dtype=torch.int64)
    return torch.where(mother >= 0, position - mother, torch.zeros_like(position))


def tree_edges(distance, self_loops=False):
    """Mother<->daughter edges of graphs laid out node after node.

    Args:
        distance: (N,) int64 :func:`mother_distance` of the nodes (0 for roots); the same formula
            serves one event and a batch because batching keeps node order within each event.
        self_loops: add an edge i->i for every node.

    Returns:
        (2, E) int64 edge_index, node-major (see the module docstring).
    """
    if not self_loops:
        child = torch.nonzero(distance, as_tuple=True)[0]
        pairs = torch.stack([child - distance.index_select(0, child), child])  # (2, K) mother, child
        return torch.stack([pairs, pairs.flip(0)], dim=2).view(2, -1)
    node = torch.arange(len(distance), dtype=torch.int64)
    has_mother = distance != 0
    src = torch.stack([node - distance, node, node], dim=1)
    dst = torch.stack([node, node - distance, node], dim=1)
    keep = torch.stack([has_mother, has_mother, torch.ones_like(has_mother)], dim=1)
    return torch.stack([src[keep], dst[keep]])


def mother_index(distance):
    """(N,) int64 index of each node's mother (the node itself for roots) from its
    :func:`mother_distance` (N,); as :func:`tree_edges`, for one event or a batch."""
    return torch.arange(len(distance), dtype=torch.int64) - distance


def has_mother(mother_index):
    """(N,) bool, True for the nodes that have a mother, from ``mother_index`` (N,) int64."""
    return mother_index != torch.arange(mother_index.shape[0], device=mother_index.device)


def host_offsets(batch):
    """(B+1,) int64 node offsets of a ``Batch``, on the CPU where the batch allows.

    PyG keeps a batch's slices per attribute (``_slice_dict``, what ``to_data_list`` reads) on
    the CPU when the batch moves to a GPU, and those of ``x`` are its node offsets: sizes taken
    from them need no host-device synchronisation. A batch without them gives ``batch.ptr``.
    """
    slices = getattr(batch, "_slice_dict", None) or {}
    offsets = slices.get("x")
    return offsets if offsets is not None and offsets.device.type == "cpu" else batch.ptr


def edge_counts(n_roots, counts, self_loops=False):
    """(B,) edges per graph: two per non-root node, plus one per node with self-loops.

    Args:
        n_roots: (B,) number of roots of each graph.
        counts: (B,) number of nodes of each graph.
    """
    edges = 2 * (counts - n_roots)
    return edges + counts if self_loops else edges


def event_data(x, pdg, mother, y, event_type, weight=1.0, event_id=0, self_loops=False):
    """One event as a ``torch_geometric.data.Data`` (the PyG-compatible, per-event path).

    Args:
        x: (n, 8) float32 node features (:data:`NODE_FEATURES` order, GeV cm ns).
        pdg: (n,) PDG tokens.
        mother: (n,) mother position within the event, -1 for roots.
        y: (S,) skim labels (0/1).
        event_type: event type code.
        weight: event weight.
        event_id: the event's identifier.
        self_loops: add i->i edges.

    Returns:
        ``Data`` with ``x``, ``pdg``, ``edge_index``, ``mother_index``, ``y`` (1, S),
        ``event_type`` (1,), ``weight`` (1,), ``event_id`` (1,).
    """
    graph = {
        "y": torch.as_tensor(y, dtype=torch.float32).reshape(1, -1),
        "event_type": torch.as_tensor(event_type, dtype=torch.int64).reshape(1),
        "weight": torch.as_tensor(weight, dtype=torch.float32).reshape(1),
        "event_id": torch.as_tensor(event_id, dtype=torch.int64).reshape(1),
    }
    return _data(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(pdg, dtype=torch.int64),
                 mother_distance(mother), graph, self_loops)


def _data(x, pdg, distance, graph, self_loops):
    """``Data`` from node tensors, :func:`mother_distance` and the per-graph attributes (in order)."""
    return Data(x=x, pdg=pdg, edge_index=tree_edges(distance, self_loops),
                mother_index=mother_index(distance), **graph)


class GraphStore:
    """Flat tensors of many preprocessed events, from which graphs and batches are cut.

    Args:
        table: preprocessed :class:`~smartbkg.data.table.EventTable` (no empty events needed,
            but allowed).
        self_loops: add i->i edges to every graph.
        order: optional (n_events,) permutation of the table's events: the store holds event
            ``order[k]`` as its event ``k`` (equal to the store of ``table.take(order)``, built
            without that copy of the table).
        event_features: also compute every event's
            :func:`~smartbkg.data.skim_emulation.skim_emulation` (``event_features`` of the graphs).

    Attributes:
        x: (P, 8) float32; pdg: (P,) int64 tokens; distance: (P,) int64 :func:`mother_distance`
        within each event; offsets: (n_events + 1,) int64; counts: (n_events,) int64 nodes per
        graph; y: (n_events, S) float32;
        event_type, event_id: (n_events,) int64; weight: (n_events,) float32;
        n_edges: (n_events,) int64 edges per graph; event_features: (n_events, F) float32 (if
        asked for); graph_attrs: the names of the per-graph attributes of its graphs.
    """

    def __init__(self, table, self_loops=False, order=None, event_features=False):
        self._build([table], self_loops, order, event_features)

    @classmethod
    def from_tables(cls, tables, self_loops=False, order=None, event_features=False):
        """One store for several tables (same skims and event types), without concatenating them first.

        ``order`` is an optional permutation of the events of all tables (numbered table after
        table), as for the constructor.
        """
        store = cls.__new__(cls)
        store._build(list(tables), self_loops, order, event_features)
        return store

    def _build(self, tables, self_loops, order, event_features):
        first = tables[0]
        if any(t.skims != first.skims or t.event_types != first.event_types for t in tables[1:]):
            raise DataError("tables of one store need the same skims and event types")
        self.self_loops = bool(self_loops)
        counts = np.concatenate([t.counts for t in tables])
        position = None  # store position of each event of the tables; None: the same
        if order is not None:
            order = np.asarray(order, dtype=np.int64)
            position = np.full(len(counts), -1, dtype=np.int64)
            if order.shape == counts.shape and (not len(order) or 0 <= order.min() <= order.max() < len(order)):
                position[order] = np.arange(len(order))
            if np.any(position < 0):  # an event left out (hence also one repeated or out of range)
                raise DataError(f"order must be a permutation of the {len(counts)} events of the store")
            counts = counts[order]
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        n = int(offsets[-1])
        x = np.empty((n, len(NODE_FEATURES)), dtype=np.float32)
        pdg, distance, roots = np.empty(n, np.int64), np.empty(n, np.int64), []
        at = first_event = 0
        for t in tables:
            # Each table's particles are computed in its own order (sequential passes) and then
            # placed: a block of rows, or scattered event by event to their store positions.
            if position is None:
                rows = slice(at, at + t.n_particles)
                node_features(t, out=x[rows])
            else:
                rows = ragged_arange(offsets[position[first_event:first_event + len(t)]], t.counts)
                _put_rows(x, rows, node_features(t))
            _put_rows(pdg, rows, pdg_to_token(t.particles["pdg"]))
            mother = t.particles["mother"]
            local = np.arange(t.n_particles, dtype=index_dtype(t.n_particles))
            local -= np.repeat(t.offsets[:-1].astype(local.dtype), t.counts)
            has_mother = mother >= 0
            _put_rows(distance, rows, np.where(has_mother, local - mother, 0))
            with_mother = np.zeros(t.n_particles + 1, dtype=np.int64)
            np.cumsum(has_mother, out=with_mother[1:])
            roots.append(t.counts - np.diff(with_mother[t.offsets]))
            at += t.n_particles
            first_event += len(t)

        def per_event(values, dtype):
            values = np.concatenate(values)
            return torch.from_numpy((values if order is None else values[order]).astype(dtype, copy=False))

        self.offsets, self.counts = torch.from_numpy(offsets), torch.from_numpy(counts)
        self.x, self.pdg, self.distance = torch.from_numpy(x), torch.from_numpy(pdg), torch.from_numpy(distance)
        self.n_edges = edge_counts(per_event(roots, np.int64), self.counts, self.self_loops)
        self.y = per_event([t.labels for t in tables], np.float32)
        self.event_type = per_event([t.event_type for t in tables], np.int64)
        self.weight = per_event([np.ones(len(t), np.float32) if t.weight is None else t.weight for t in tables],
                                np.float32)
        self.event_id = per_event([t.event_id for t in tables], np.int64)
        self.graph_attrs = GRAPH_ATTRS
        if event_features:
            self.event_features = per_event([skim_emulation(t) for t in tables], np.float32)
            self.graph_attrs = GRAPH_ATTRS + (EVENT_FEATURES,)

    def __len__(self):
        return len(self.counts)

    def data(self, i):
        """Event ``i`` as a ``Data`` (copies, so transforms cannot change the store)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        graph = {name: getattr(self, name)[i:i + 1].clone() for name in self.graph_attrs}
        return _data(self.x[lo:hi].clone(), self.pdg[lo:hi].clone(), self.distance[lo:hi], graph, self.self_loops)

    def batch(self, events):
        """The given events as one ``Batch``, built straight from the flat tensors.

        Args:
            events: (B,) event indices (list, numpy or torch integers).

        Returns:
            ``torch_geometric.data.Batch`` equal to ``Batch.from_data_list([self.data(i) ...])``.
        """
        return next(self.batches([events]))

    def batches(self, event_groups, per_gather=GROUPS_PER_GATHER, views=False):
        """One ``Batch`` per group of event indices, ``per_gather`` groups gathered at a time.

        Gathering several batches' nodes with one set of index operations and cutting the
        result into batches (views for node and graph tensors) divides the fixed cost of the
        tensor operations among them; each batch is still equal to ``self.batch(group)``.
        Groups that together are one ascending range of events (``i, i + 1, ...``) are sliced
        instead of gathered.

        Args:
            event_groups: iterable of (B_k,) event index arrays.
            per_gather: groups gathered together.
            views: batches of ranges of events share ``x``, ``pdg`` and the per-graph tensors
                with the store instead of copying them: for a store that is used once (a
                streaming buffer), where changing a batch in place cannot change later batches.

        Yields:
            ``torch_geometric.data.Batch`` per group, in order.
        """
        groups = iter(event_groups)
        while chunk := list(itertools.islice(groups, per_gather)):
            yield from self._gather(chunk, views)

    def _gather(self, groups, views):
        # Index bookkeeping in numpy (less fixed cost per call than torch for these small arrays).
        events = np.concatenate([np.asarray(g, dtype=np.int64).reshape(-1) for g in groups])
        n_graphs = len(events)
        first = int(events[0]) if n_graphs else 0
        if n_graphs and (events[-1] - first != n_graphs - 1 or np.any(np.diff(events) != 1)):
            counts = self.counts.numpy()[events]
            node_at = np.zeros(n_graphs + 1, dtype=np.int64)
            np.cumsum(counts, out=node_at[1:])
            rows = torch.from_numpy(ragged_arange(self.offsets.numpy()[events], counts))
            x, pdg, distance = (self.x.index_select(0, rows), self.pdg.index_select(0, rows),
                                self.distance.index_select(0, rows))
            graph = {name: getattr(self, name).index_select(0, torch.from_numpy(events)) for name in self.graph_attrs}
        else:  # the range first, first + 1, ... of events: slices
            events = slice(first, first + n_graphs)
            counts = self.counts.numpy()[events]
            bounds = self.offsets.numpy()[first:first + n_graphs + 1]
            node_at = bounds - bounds[0]
            nodes = slice(int(bounds[0]), int(bounds[-1]))
            x, pdg, distance = self.x[nodes], self.pdg[nodes], self.distance[nodes]
            graph = {name: getattr(self, name)[events] for name in self.graph_attrs}
            if not views:
                x, pdg, graph = x.clone(), pdg.clone(), {name: value.clone() for name, value in graph.items()}
        edge_at = np.zeros(n_graphs + 1, dtype=np.int64)
        np.cumsum(self.n_edges.numpy()[events], out=edge_at[1:])
        batch = torch.from_numpy(np.repeat(np.arange(n_graphs), counts))
        ptr, edge_ptr = torch.from_numpy(node_at), torch.from_numpy(edge_at)
        edge_index, mothers = tree_edges(distance, self.self_loops), mother_index(distance)
        node_at, edge_at, g0 = node_at.tolist(), edge_at.tolist(), 0
        for group in groups:
            g1 = g0 + len(group)
            n0, n1, e0, e1 = node_at[g0], node_at[g1], edge_at[g0], edge_at[g1]
            yield _assemble({
                "x": x[n0:n1],
                "pdg": pdg[n0:n1],
                "edge_index": edge_index[:, e0:e1] - n0,
                "mother_index": mothers[n0:n1] - n0,
                **{name: value[g0:g1] for name, value in graph.items()},
                "batch": batch[n0:n1] - g0,
                "ptr": ptr[g0:g1 + 1] - n0,
            }, edge_ptr[g0:g1 + 1] - e0, self.graph_attrs)
            g0 = g1


def _put_rows(out, rows, values):
    """``out[rows] = values`` for a slice or an index array of rows of a 1-D or 2-D array.

    Index arrays move each row of a 2-D array as one item (``np.put`` on a void view of the
    rows), several times faster than fancy-index assignment for the (n, 8) float32 rows of node
    features (for 1-D arrays fancy-index assignment is the faster).
    """
    if isinstance(rows, slice) or out.ndim == 1:
        out[rows] = values
        return
    item = np.dtype((np.void, out.itemsize * out.shape[1]))
    values = np.ascontiguousarray(values, dtype=out.dtype)
    np.put(out.view(item).reshape(-1), rows, values.view(item).reshape(-1))


def _assemble(attributes, edge_ptr, graph_attrs):
    """A ``Batch`` with the attributes (in contract order) and PyG's slice and increment dicts
    (``graph_attrs``: the names of the per-graph attributes)."""
    # Filling the storage of an empty Batch directly skips PyG's per-attribute __setattr__ (and
    # Batch's metaclass, which inspects signatures on every call); the equality with
    # Batch.from_data_list is tested.
    out = type.__call__(_DATA_BATCH)
    out._store._mapping.update(attributes)
    ptr = attributes["ptr"]
    n_graphs = len(ptr) - 1
    graph_ptr = torch.arange(n_graphs + 1)
    zeros = torch.zeros(n_graphs, dtype=torch.int64)
    out._num_graphs = n_graphs
    out._slice_dict = {"x": ptr, "pdg": ptr, "edge_index": edge_ptr, "mother_index": ptr,
                       **dict.fromkeys(graph_attrs, graph_ptr)}
    out._inc_dict = {"x": zeros, "pdg": zeros, "edge_index": ptr[:-1], "mother_index": ptr[:-1],
                     **dict.fromkeys(graph_attrs, zeros)}
    return out


#: The class of ``Batch.from_data_list`` results for ``Data`` items (PyG creates it on first use).
_DATA_BATCH = type(Batch(_base_cls=Data))
