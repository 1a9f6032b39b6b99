"""Pythia 8 set-up for the seven Belle II background types and fast access to its event records.

Generation happens in the e+e- centre-of-mass frame (e- along +z, sqrt(s) from
:class:`~smartbkg.simulation.beams.Beams`); :mod:`smartbkg.simulation.record` moves the
events to the lab.

* Continuum (u ubar, d dbar, s sbar, c cbar, tau+ tau-): ``WeakSingleBoson:ffbar2gmZ`` with the
  gamma*/Z restricted to the wanted pair, pure gamma* (``WeakZ0:gmZmode = 1``), no initial-state
  radiation (lepton PDFs off: Pythia's ISR for lepton beams costs ~200x the generation time),
  Pythia's parton shower (QCD and QED final-state radiation), Lund string hadronization and
  Pythia's decay tables. Tau decays use Pythia's tau decay channels without spin correlations
  (``TauDecays:mode = 0``): the correlated ones cost about 2 ms per event in Pythia 8.317,
  against 0.03 ms for the rest of a tau-pair event.
* Upsilon(4S) (charged, mixed): Pythia does not know the Upsilon(4S), so it is defined here
  (pdg 300553, m = 10.5794 GeV, Gamma = 20.5 MeV, PDG 2024) with a single decay channel, B+ B-
  or B0 B0bar. Each event e+ e- -> Upsilon(4S) is read from a small Les Houches file
  (identical events, written for each batch) and Pythia decays the Upsilon(4S)
  isotropically (:func:`~smartbkg.simulation.record.align_pair_axis` then turns each event to
  the sin^2(theta) distribution of the B direction), then the B mesons and everything below
  (Pythia's B decay tables, incoherent B0 mixing).
* Long-lived particles: as in Belle II generator records, particles with c*tau > 10 mm
  (K_S0, Lambda, Sigma+-, Xi, Omega, and the stable ones) are left undecayed
  (``ParticleDecays:limitTau0``); the fast detector model decays K_S0 and the hyperons in flight.
  Every decay displaces the daughters' production vertices by the mother's sampled lifetime.

Reading Pythia's record particle by particle through the Python bindings costs about five
times the generation itself (``benchmarks/generate.py`` measures both). ``Pythia.nextBatch``
instead fills whole columns in C++ and returns them as an Awkward Array, which
:func:`decode_batch` flattens into numpy arrays (a few microseconds per event).
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .event_types import EVENT_TYPE_SPECS

#: PDG id and properties of the Upsilon(4S) (mass and width from PDG 2024) [GeV].
UPSILON_4S = 300553
UPSILON_4S_MASS = 10.5794
UPSILON_4S_WIDTH = 0.0205
#: Pythia decays only particles with c*tau below this [mm] (like Belle II generators).
TAU0_MAX_MM = 10.0



def pythia_settings(event_type, e_cm, lhe_path=None):
    """The Pythia ``readString`` settings for one event type.

    Args:
        event_type: one of the seven type names.
        e_cm: centre-of-mass energy [GeV].
        lhe_path: Les Houches file of e+e- -> Upsilon(4S) events (Upsilon(4S) types only).

    Returns:
        list of setting strings.
    """
    spec = EVENT_TYPE_SPECS[event_type]
    common = [
        "Print:quiet = on",
        "Next:numberCount = 0",
        "ParticleDecays:limitTau0 = on",
        f"ParticleDecays:tau0Max = {TAU0_MAX_MM}",
        f"{UPSILON_4S}:new = Upsilon(4S) void 3 0 0 {UPSILON_4S_MASS} {UPSILON_4S_WIDTH} 10.4 10.8 0.0",
    ]
    if spec.process == "upsilon4s":
        if lhe_path is None:
            raise ConfigError(f"{event_type}: the Upsilon(4S) types need a Les Houches file")
        return common + [
            f"{UPSILON_4S}:oneChannel = 1 1.0 0 {spec.daughter} {-spec.daughter}",
            "Beams:frameType = 4",
            f"Beams:LHEF = {lhe_path}",
            "PDF:lepton = off",
            "PartonLevel:ISR = off",
            "PartonLevel:MPI = off",
        ]
    return common + [
        "Beams:idA = 11",
        "Beams:idB = -11",
        f"Beams:eCM = {e_cm:.10f}",
        "PDF:lepton = off",
        "WeakSingleBoson:ffbar2gmZ = on",
        "WeakZ0:gmZmode = 1",
        "23:mMin = 1.0",
        "23:onMode = off",
        f"23:onIfAny = {spec.daughter}",
        # Isotropic tau decays: the helicity-correlated ones cost ~2 ms per event in 8.317.
        "TauDecays:mode = 0",
    ]


def write_upsilon_lhe(path, e_cm, n_events):
    """Write ``n_events`` identical Les Houches events e- e+ -> Upsilon(4S) at rest (CM frame)."""
    half = 0.5 * e_cm
    event = "\n".join([
        "<event>",
        " 3 1 1.0 -1.0 -1.0 -1.0",
        f" 11 -1 0 0 0 0 0.0 0.0 {half:.10e} {half:.10e} 0.0 0.0 9.0",
        f" -11 -1 0 0 0 0 0.0 0.0 {-half:.10e} {half:.10e} 0.0 0.0 9.0",
        f" {UPSILON_4S} 1 1 2 0 0 0.0 0.0 0.0 {e_cm:.10e} {e_cm:.10e} 0.0 9.0",
        "</event>",
    ])
    header = "\n".join([
        '<LesHouchesEvents version="1.0">',
        "<init>",
        f" 11 -11 {half:.10e} {half:.10e} 0 0 0 0 3 1",
        " 1.0 0.0 1.0 1",
        "</init>",
    ])
    Path(path).write_text(header + "\n" + (event + "\n") * n_events + "</LesHouchesEvents>\n")


@contextmanager
def _upsilon_lhe_file(e_cm, n_events):
    """A temporary Les Houches file of ``n_events`` e+e- -> Upsilon(4S) events, removed on exit."""
    fd, path = tempfile.mkstemp(prefix="smartbkg-", suffix=".lhe")
    os.close(fd)
    try:
        write_upsilon_lhe(path, e_cm, n_events)
        yield path
    finally:
        os.unlink(path)


class PythiaBatches:
    """One initialised Pythia instance with the given settings, reseeded for every batch.

    The generic part of every generator of the package: the Belle II background types
    (:class:`PythiaGenerator`) and other processes (e.g. the Z-pole samples of
    :mod:`smartbkg.reweight.zpole`).

    Args:
        settings: Pythia ``readString`` settings.
        max_batch: the largest batch :meth:`generate` will be asked for.
        what: a name for error messages.
    """

    def __init__(self, settings, max_batch=10000, what="Pythia"):
        import pythia8mc

        self.settings, self.max_batch, self.what = list(settings), int(max_batch), what
        self._pythia = pythia8mc.Pythia("", False)
        for setting in self.settings:
            if not setting.startswith("Beams:LHEF") and not self._pythia.readString(setting):
                raise ConfigError(f"Pythia rejected the setting {setting!r}")

    def initialise(self):
        if not self._pythia.init():
            raise RuntimeError(f"Pythia initialisation failed for {self.what}")
        return self

    def generate(self, n_events, seed):
        """Generate a batch of events.

        Args:
            n_events: number of events (<= ``max_batch``).
            seed: Pythia seed in [1, 900_000_000].

        Returns:
            (offsets (n_events + 1,) int64, dict of flat Pythia columns: see :func:`decode_batch`).
        """
        if not 0 < n_events <= self.max_batch:
            raise ConfigError(f"batch of {n_events} events outside 1..{self.max_batch}")
        return self._batch(n_events, seed)

    def cross_section_pb(self):
        """Pythia's estimate of the cross section of the events generated so far [pb] (leading
        order, with the branching ratios of the decay channels left open)."""
        return self._pythia.infoPython().sigmaGen() * 1e9

    def _batch(self, n_events, seed):
        self._pythia.rndm.init(int(seed))
        events = self._pythia.nextBatch(int(n_events), 2.0)
        if len(events) != n_events:
            raise RuntimeError(f"Pythia gave {len(events)} of {n_events} {self.what} events")
        return decode_batch(events)


class PythiaGenerator(PythiaBatches):
    """The Pythia generator of one Belle II background type.

    The Upsilon(4S) types read their events from a Les Houches file that exists only while
    Pythia is initialised and a batch is generated (Pythia re-opens it for every batch without
    a full re-initialisation), so no temporary file outlives a call.

    Args:
        event_type: one of the seven type names.
        e_cm: centre-of-mass energy [GeV].
        max_batch: the largest batch :meth:`PythiaBatches.generate` will be asked for.
    """

    #: What the ``Beams:LHEF`` setting shows in the generator's settings (the real file is per batch).
    LHE_PLACEHOLDER = "<temporary file of identical e+e- -> Upsilon(4S) Les Houches events>"

    def __init__(self, event_type, e_cm, max_batch=10000):
        self.event_type = event_type
        self.e_cm = float(e_cm)
        self.upsilon = EVENT_TYPE_SPECS[event_type].process == "upsilon4s"
        super().__init__(pythia_settings(event_type, e_cm, self.LHE_PLACEHOLDER if self.upsilon else None),
                         max_batch, event_type)
        if not self.upsilon:
            self.initialise()
            return
        with _upsilon_lhe_file(self.e_cm, 1) as path:
            self._pythia.readString(f"Beams:LHEF = {path}")
            self.initialise()

    def _batch(self, n_events, seed):
        if not self.upsilon:
            return super()._batch(n_events, seed)
        # Room for retries of failed events (nextBatch tries at most twice the batch).
        with _upsilon_lhe_file(self.e_cm, 2 * n_events + 10) as path:
            self._pythia.readString(f"Beams:LHEF = {path}")
            self._pythia.readString("Beams:newLHEFsameInit = on")
            self._pythia.init()
            return super()._batch(n_events, seed)


def decode_batch(events):
    """Flatten the Awkward Array of a ``nextBatch`` call into numpy columns.

    Returns:
        (offsets (n_events + 1,) int64, dict with flat (n_entries,) arrays ``id``, ``status``,
        ``mother1``, ``mother2``, ``daughter1``, ``daughter2`` (local indices), ``px``, ``py``,
        ``pz``, ``e`` [GeV] and the production vertex ``x``, ``y``, ``z`` [mm], ``t`` [mm/c]
        (0 for entries without a vertex)).
    """
    import awkward as ak

    particles = events["prt"]
    offsets = np.zeros(len(particles) + 1, dtype=np.int64)
    np.cumsum(ak.to_numpy(ak.num(particles)), out=offsets[1:])
    flat = ak.flatten(particles)
    out = {name: ak.to_numpy(flat[name]) for name in ("id", "status", "mother1", "mother2", "daughter1", "daughter2")}
    for name in ("px", "py", "pz", "e"):
        out[name] = ak.to_numpy(flat["p"][name])
    for pythia_name, name in (("px", "x"), ("py", "y"), ("pz", "z"), ("e", "t")):
        out[name] = ak.to_numpy(ak.fill_none(flat["vProd"][pythia_name], 0.0))
    return offsets, out
