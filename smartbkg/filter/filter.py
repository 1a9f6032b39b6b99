"""A trained run applied to new events: :class:`Filter`.

A run folder written by ``smartbkg-train`` holds everything the filter needs: the best
checkpoint (model weights and ``model_info``: architecture, skims, event types, vocabulary
size), the resolved configuration (the preprocessing) and ``calibration.json`` (logit ->
sampling probability per skim). :meth:`Filter.from_run` loads them with
:func:`smartbkg.train.run_folder.load_run`, which checks that they fit together and fit this
installation (the PDG vocabulary). The filter then maps raw events
(an :class:`~smartbkg.data.table.EventTable`, as any reader returns it) to sampling
probabilities, and :meth:`Filter.decide` draws the keep decisions with one shared uniform
number per event (:mod:`smartbkg.filter.decision`).

Events left without particles by the preprocessing have no graph to score: they get p = 1 for
every skim (always simulated, weight 1), which keeps the sample unbiased, and are counted.

The model call is one small function, ``logits = backend(batch)`` (:class:`TorchBackend`), so
another runtime (e.g. an exported ONNX graph) can replace it.
"""

import time

import numpy as np
import torch

from ..data.dataset import prepare_events
from ..data.graphs import GraphStore
from ..data.loader import plan_batches
from ..data.table import EventTable
from ..errors import ConfigError, DataError
from ..train.run_folder import load_run
from .decision import shared_uniform


class TorchBackend:
    """The model call of a :class:`Filter`: ``backend(batch)`` -> (B, S_model) float32 numpy logits.

    Args:
        model: a smartbkg model (PyG ``Batch`` -> logits); put in eval mode here.
        device: torch device the batches are moved to.
    """

    def __init__(self, model, device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, batch):
        return self.model(batch.to(self.device)).float().cpu().numpy()


def keep_probability(calibration, logits):
    """(n,) sampling probabilities of one skim's (n,) logits with ``calibration``; NaN logits
    (events without a graph) get p = 1: the filter keeps what it cannot score."""
    p = np.ones(len(logits))
    scored = ~np.isnan(logits)
    p[scored] = calibration.apply(logits[scored])
    return p


class Filter:
    """Sampling probabilities and keep decisions of a trained, calibrated network.

    Args:
        backend: ``backend(batch)`` -> (B, S_model) logits (see :class:`TorchBackend`).
        model_skims: the S_model skims the network predicts, in output order.
        event_types: the event type names the network was trained with (codes in this order).
        calibrations: {skim: :class:`~smartbkg.sampling.Calibration`} of every skim to apply.
        preprocess: :class:`~smartbkg.data.preprocess.PreprocessConfig` of the run (None: raw).
        skims: the skims to decide on (default: every calibrated one), a subset of ``model_skims``.
        batch_size: events per network call.
        timings: per-event times in ms (``t_fast``, ``t_nn``, ``t_slow``) for speedups.
        event_features: the network takes the generator-level skim emulation
            (``data.event_features`` of the run): computed for every event in :meth:`prepare`.

    Attributes:
        skims: the skims decided on; timing: seconds spent per stage (``prepare``: preprocessing
        and graphs, ``network``: the backend, ``calibration``) and ``events`` scored, summed
        over calls (wall time; ``network_cpu``: the network's CPU time of this process).
    """

    def __init__(self, backend, model_skims, event_types, calibrations, preprocess, *, skims=None,
                 batch_size=1024, timings=None, event_features=False):
        self.backend = backend
        self.model_skims = tuple(model_skims)
        self.event_types = tuple(event_types)
        skims = tuple(calibrations) if skims is None else tuple(skims)
        untrained = [s for s in skims if s not in self.model_skims]
        if untrained:
            raise ConfigError(f"skim(s) {untrained} were not trained by this run; it predicts {list(self.model_skims)}")
        uncalibrated = [s for s in skims if s not in calibrations]
        if uncalibrated:
            raise ConfigError(f"skim(s) {uncalibrated} have no calibration")
        if not skims:
            raise ConfigError("no skims to filter on")
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        self.skims = skims
        self.columns = [self.model_skims.index(s) for s in skims]
        self.calibrations = {s: calibrations[s] for s in skims}
        self.preprocess = preprocess
        self.event_features = bool(event_features)
        self.batch_size = int(batch_size)
        self.timings = dict(timings or {})
        self.timing = {"prepare": 0.0, "network": 0.0, "network_cpu": 0.0, "calibration": 0.0, "events": 0}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_run(cls, run_dir, *, skims=None, device="cpu", batch_size=1024):
        """The filter of a run folder written by ``smartbkg-train``.

        Args:
            run_dir: the run folder (``checkpoints/best.pt``, ``calibration.json``).
            skims: skims to decide on (default every skim of the run).
            device: torch device of the network.
            batch_size: events per network call.

        Raises:
            ConfigError: not a finished run folder (no calibration), a vocabulary or skims that do
                not match, skims the run did not train.
            DataError: a missing or unreadable checkpoint.
        """
        return cls.of_run(load_run(run_dir), skims=skims, device=device, batch_size=batch_size)

    @classmethod
    def of_run(cls, run, *, skims=None, device="cpu", batch_size=1024):
        """The filter of a loaded :class:`~smartbkg.train.run_folder.Run` (see :meth:`from_run`)."""
        return cls(TorchBackend(run.model, device), run.skims, run.event_types, run.calibrations, run.preprocess,
                   skims=skims, batch_size=batch_size, timings=run.timings,
                   event_features=run.config.data.event_features)

    # ------------------------------------------------------------------ scoring
    def prepare(self, table):
        """Preprocess raw events and build their graphs.

        Args:
            table: raw :class:`EventTable` (validated, as the readers return it).

        Returns:
            (:class:`~smartbkg.data.graphs.GraphStore` of the events that keep particles,
            (n,) bool mask of those events).

        Raises:
            DataError: events of an event type the network was not trained with.
        """
        start = time.perf_counter()
        table = self._model_event_types(table)
        events, scored, _, _ = prepare_events(table, preprocess=self.preprocess, strict=False, validate=False)
        store = GraphStore(events, event_features=self.event_features)
        self.timing["prepare"] += time.perf_counter() - start
        return store, scored

    def _model_event_types(self, table):
        """``table`` with its event type codes in the network's order."""
        if table.event_types == self.event_types:
            return table
        present = np.unique(table.event_type)
        unknown = [table.event_types[c] for c in present if table.event_types[c] not in self.event_types]
        if unknown:
            n = int(np.isin(table.event_type, [table.event_types.index(t) for t in unknown]).sum())
            raise DataError(f"{n} event(s) of event type(s) {unknown} that the network does not know (it was "
                            f"trained with {list(self.event_types)}); set the event type of the input "
                            "(e.g. --event-type) or filter those events with a run that knows them",
                            field="event_type")
        remap = np.array([self.event_types.index(t) if t in self.event_types else 0 for t in table.event_types],
                         dtype=np.int16)
        return table.replace(event_type=remap[table.event_type], event_types=self.event_types)

    def logits_of_store(self, store):
        """(n, S) logits of the filter's skims for every event of a :class:`GraphStore`."""
        out = np.empty((len(store), len(self.skims)), dtype=np.float32)
        if not len(store):
            return out
        cuts = plan_batches(len(store), self.batch_size)
        groups = (np.arange(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]))
        for (lo, hi), batch in zip(zip(cuts[:-1], cuts[1:]), store.batches(groups, views=True)):
            out[lo:hi] = self._network(batch)
        return out

    def logits(self, source):
        """(n, S) logits of the filter's skims.

        Args:
            source: a raw :class:`EventTable` (events empty after preprocessing get NaN), the
                ``(store, scored)`` pair that :meth:`prepare` returned for one (to score events
                prepared once with several filters of the same preprocessing, event types and
                event features, see :meth:`prepares_like`), or a PyG ``Batch`` of preprocessed
                graphs (e.g. from ``GraphStore.batch``; its event type codes must be in the
                network's order).
        """
        if isinstance(source, EventTable):
            source = self.prepare(source)
        if isinstance(source, tuple):
            store, scored = source
            out = np.full((len(scored), len(self.skims)), np.nan, dtype=np.float32)
            out[scored] = self.logits_of_store(store)
            return out
        return self._network(source)

    def prepares_like(self, other):
        """Whether :meth:`prepare` of ``other`` gives this filter's graphs (same preprocessing,
        event types and event features)."""
        return (self.preprocess, self.event_types, self.event_features) == \
            (other.preprocess, other.event_types, other.event_features)

    def _network(self, batch):
        """(B, S) logits of the filter's skims for a ``Batch``, timed."""
        start, cpu = time.perf_counter(), time.process_time()
        out = self.backend(batch)[:, self.columns]
        self.timing["network"] += time.perf_counter() - start
        self.timing["network_cpu"] += time.process_time() - cpu
        self.timing["events"] += len(out)
        return out

    def calibrate(self, logits):
        """(n, S) sampling probabilities of (n, S) logits; NaN rows (no graph) get p = 1."""
        start = time.perf_counter()
        logits = np.asarray(logits, dtype=np.float64)
        p = np.stack([keep_probability(self.calibrations[skim], logits[:, j]) for j, skim in enumerate(self.skims)],
                     axis=1)
        self.timing["calibration"] += time.perf_counter() - start
        return p

    def probabilities(self, source):
        """(n, S) sampling probabilities of an :class:`EventTable` or a ``Batch`` (see :meth:`logits`)."""
        return self.calibrate(self.logits(source))

    def decide(self, source, rng):
        """Keep decisions for the events of ``source`` (see :meth:`logits`).

        Args:
            rng: ``numpy.random.Generator`` or a seed: one uniform number is drawn per event.

        Returns:
            :class:`~smartbkg.filter.decision.Decision`.
        """
        p = self.probabilities(source)
        return shared_uniform(p, np.random.default_rng(rng).random(len(p)), self.skims)

    def decide_tables(self, tables, rng):
        """:meth:`decide` for an iterator of tables: yields (table, :class:`Decision`)."""
        rng = np.random.default_rng(rng)
        for table in tables:
            yield table, self.decide(table, rng)

    @property
    def network_ms_per_event(self):
        """Mean time of the network per scored event, in ms (NaN before any)."""
        events = self.timing["events"]
        return 1e3 * self.timing["network"] / events if events else float("nan")

