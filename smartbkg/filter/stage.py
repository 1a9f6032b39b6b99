"""The filter as a stage of the embedded production: generation -> filter -> detector + skims.

:class:`FilterStage` is the ``event_filter`` of :func:`smartbkg.simulation.production.produce`
(``smartbkg-generate --filter RUN_DIR``): it scores the generated records and keeps events with
the shared-uniform rule; the detector response and the skims then run on the kept events only.
The uniform number of an event is a counter-based random number of (seed, event identifier),
so the decisions do not depend on workers, chunks or shards.
"""

from .apply import filter_uniforms
from .decision import shared_uniform
from .filter import Filter


class FilterStage:
    """``stage(table) -> (keep (n,) bool, {p_<skim>, weight_<skim>: (n,) float64})`` for generated events.

    Picklable for worker processes: each process builds the :class:`Filter` from the run folder
    once (the first build, here, checks the run folder before anything is generated).

    Args:
        run_dir: run folder written by ``smartbkg-train``.
        skims: skims to decide on (default: every skim of the run).
        seed: seed of the keep decisions.
        device: torch device of the network.
        batch_size: events per network call.
    """

    def __init__(self, run_dir, *, skims=None, seed=0, device="cpu", batch_size=1024):
        self.options = {"run_dir": str(run_dir), "skims": None if skims is None else list(skims),
                        "device": str(device), "batch_size": int(batch_size)}
        self.seed = int(seed)
        self._filter = self._build()

    def _build(self):
        options = dict(self.options)
        return Filter.from_run(options.pop("run_dir"), **options)

    def __getstate__(self):
        return {"options": self.options, "seed": self.seed}

    def __setstate__(self, state):
        self.__dict__.update(state, _filter=None)

    @property
    def filter(self):
        """This process's :class:`Filter`."""
        if self._filter is None:
            self._filter = self._build()
        return self._filter

    def __call__(self, table):
        flt = self.filter
        decision = shared_uniform(flt.probabilities(table), filter_uniforms(self.seed, table.event_id), flt.skims)
        return decision.keep, decision.columns()

    def describe(self):
        """What the metadata records of the stage."""
        return {"run": self.options["run_dir"], "skims": list(self.filter.skims), "seed": self.seed}
