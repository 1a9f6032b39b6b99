"""The embedded reweighting example: e+e- -> Z -> hadrons at sqrt(s) = 91.19 GeV with Pythia 8.

The original classifier-reweighting study ("Neural Networks for Full Phase-space Reweighting and
Parameter Tuning", Andreassen and Nachman, Phys. Rev. D 101, 091901) reweighted Pythia e+e- ->
Z -> hadrons events between generator tunes, e.g. two values of the Lund fragmentation parameter
``StringZ:aLund`` (0.68 in the Monash tune). This module makes such samples with the package's
Pythia set-up: hadronic Z decays (u, d, s, c, b), no initial-state radiation (lepton PDFs off),
Pythia's parton shower, string hadronization and decays, particles with c*tau > 10 mm left
undecayed as in the Belle II samples. Records are collapsed to one-mother decay trees
(:func:`smartbkg.simulation.record.collapse_record`) and stored in the package's units (GeV, cm,
ns) in the centre-of-mass frame (symmetric beams :data:`Z_BEAMS`, no crossing angle); the Z keeps
its PDG id 23.
"""

import numpy as np

from ..data.table import EventTable
from ..errors import ConfigError
from ..simulation.beams import Beams
from ..simulation.pythia import TAU0_MAX_MM, PythiaBatches
from ..simulation.record import collapse_record, to_belle2_lab
from ..simulation.rng import CounterRNG

#: The Z mass [GeV] (PDG 2024).
Z_MASS = 91.1876
#: Symmetric beams at the Z pole (each of energy Z_MASS / 2), no crossing angle.
Z_BEAMS = Beams(e_minus=Z_MASS / 2, e_plus=Z_MASS / 2, crossing_angle=0.0)
#: The event type name of the Z-pole samples.
EVENT_TYPE = "z_hadrons"
#: Events per Pythia batch.
CHUNK = 2000


def z_pole_settings(parameters=None):
    """Pythia settings of e+e- -> Z -> hadrons at the Z pole, plus ``parameters``.

    Args:
        parameters: {Pythia setting: value}, e.g. ``{"StringZ:aLund": 0.8}`` (default none: the
            Monash tune).

    Returns:
        list of ``readString`` settings.
    """
    return [
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Beams:idA = 11",
        "Beams:idB = -11",
        f"Beams:eCM = {Z_MASS}",
        "PDF:lepton = off",
        "WeakSingleBoson:ffbar2gmZ = on",
        "23:onMode = off",
        "23:onIfAny = 1 2 3 4 5",
        "ParticleDecays:limitTau0 = on",
        f"ParticleDecays:tau0Max = {TAU0_MAX_MM}",
        *(f"{name} = {value}" for name, value in (parameters or {}).items()),
    ]


def generate_z_hadrons(n_events, seed, parameters=None):
    """Generate hadronic Z decays.

    Args:
        n_events: number of events.
        seed: sample seed (>= 0); the same seed and parameters give the same events.
        parameters: Pythia settings to change, {name: value} (see :func:`z_pole_settings`).

    Returns:
        :class:`~smartbkg.data.table.EventTable` without skim labels, one event type
        (:data:`EVENT_TYPE`), event_id 0..n-1 (GeV, cm, ns; centre-of-mass frame).
    """
    if n_events < 1:
        raise ConfigError(f"the Z-pole sample needs at least one event, got {n_events}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    generator = PythiaBatches(z_pole_settings(parameters), CHUNK, "e+e- -> Z -> hadrons").initialise()
    rng = CounterRNG(seed)
    tables = []
    for chunk, first in enumerate(range(0, n_events, CHUNK)):
        n = min(CHUNK, n_events - first)
        pythia_seed = 1 + int(np.random.default_rng([seed, chunk]).integers(900_000_000 - 1))
        offsets, rec = collapse_record(*generator.generate(n, pythia_seed))
        event_id = first + np.arange(n, dtype=np.int64)
        particles = to_belle2_lab(offsets, rec, Z_BEAMS, event_id, rng)
        particles["pdg"] = rec["pdg"].astype(np.int32)  # the Z stays a Z (not the Belle II virtual photon)
        tables.append(EventTable(offsets, particles, np.zeros((n, 0), bool), (), np.zeros(n, np.int16),
                                 (EVENT_TYPE,), event_id=event_id))
    return EventTable.concat(tables)
