"""Generator-level event variables of an event table, for closure tests and plots.

:func:`event_variables` computes every variable of :data:`VARIABLES` for all events of an
:class:`~smartbkg.data.table.EventTable` at once, on the flat particle arrays (no per-event
Python loop). Kinematic variables are in the e+e- centre-of-mass (CM) frame: the particles
(stored in the lab, GeV) are boosted with :meth:`smartbkg.simulation.beams.Beams.lab_to_cm` of
the given beams (default: the nominal SuperKEKB beams, sqrt(s) = 10.579 GeV).

The *final state* is :func:`smartbkg.simulation.detector.final_state_mask`: particles without
daughters that are not beams, partons or generator pseudo-particles. *Visible* means a
final-state particle that is not a neutrino (no detector acceptance is modelled). Charges come
from the PDG id (``particle.pdgid.three_charge``; ids it does not know count as neutral).

=====================  ======================================================================
name                   value per event
=====================  ======================================================================
``n_particles``        particles in the event record (rows)
``n_charged``          charged final-state particles
``n_neutral``          neutral visible final-state particles (photons, K_L0, neutrons ...)
``n_photons``          final-state photons
``n_leptons``          final-state electrons and muons (either charge)
``visible_energy``     sum of E over the visible final state [GeV, CM]
``photon_energy``      sum of E over the final-state photons [GeV, CM]
``missing_momentum``   abs(p_miss), p_miss = p_beams - sum of visible p [GeV, CM]
``missing_mass2``      E_miss^2 - abs(p_miss)^2, E_miss = sqrt(s) - visible_energy [GeV^2]
``missing_cos_theta``  cos of the polar angle of p_miss in the CM frame (0 when p_miss = 0)
``thrust``             thrust of the visible final state [CM], 0 without visible particles
``thrust_cos_theta``   abs(cos) of the polar angle of the thrust axis [CM]
``fox_wolfram_r2``     Fox-Wolfram ratio H2/H0 of the visible final state [CM]
``leading_track_p``    largest abs(p) of a charged final-state particle [GeV, CM], 0 if none
``n_b_mesons``         weakly decaying B mesons (B0, B+, Bs0, Bc+ and anti) in the record
``n_d_mesons``         weakly decaying D mesons (D0, D+, Ds+ and anti) in the record
``n_taus``             tau leptons in the record
``event_type``         the event type code (index into ``table.event_types``)
=====================  ======================================================================

A particle of a counted species whose mother has the same abs(pdg) is a copy in the record
(a B0 that oscillated, a tau after radiating a photon) and is not counted again. Counts are
int64, the other variables float64.
"""

import numpy as np
from particle.pdgid import is_lepton, three_charge

from ..simulation.beams import Beams
from ..simulation.candidates import thrust, within_event_pairs
from ..simulation.detector import final_state_mask

#: Plot label (with unit) of every variable, in the order :func:`event_variables` returns them.
DESCRIPTIONS = {
    "n_particles": "particles in the record",
    "n_charged": "charged final-state particles",
    "n_neutral": "neutral visible final-state particles",
    "n_photons": "final-state photons",
    "n_leptons": "final-state e and mu",
    "visible_energy": "visible energy [GeV, CM]",
    "photon_energy": "photon energy sum [GeV, CM]",
    "missing_momentum": "missing momentum [GeV, CM]",
    "missing_mass2": "missing mass squared [GeV$^2$]",
    "missing_cos_theta": r"cos $\theta$ of missing momentum [CM]",
    "thrust": "thrust [CM]",
    "thrust_cos_theta": r"|cos $\theta$| of thrust axis [CM]",
    "fox_wolfram_r2": "Fox-Wolfram R2 [CM]",
    "leading_track_p": "leading charged momentum [GeV, CM]",
    "n_b_mesons": "B mesons in the record",
    "n_d_mesons": "D mesons in the record",
    "n_taus": "tau leptons in the record",
    "event_type": "event type",
}
#: Names of the variables, in a fixed order.
VARIABLES = tuple(DESCRIPTIONS)
#: The integer-valued variables, counts and codes, to histogram with integer bins.
DISCRETE = ("n_particles", "n_charged", "n_neutral", "n_photons", "n_leptons", "n_b_mesons",
            "n_d_mesons", "n_taus", "event_type")

#: abs(pdg) of the weakly decaying heavy hadrons and leptons that are counted.
B_MESONS = (511, 521, 531, 541)
D_MESONS = (411, 421, 431)
TAU = 15

#: Largest number of particle pairs (sum over events of n^2) handled at once by the event shapes.
PAIR_CHUNK = 4_000_000


def event_variables(table, beams=Beams()):
    """Every variable of :data:`VARIABLES` for every event of ``table``.

    Args:
        table: an :class:`~smartbkg.data.table.EventTable` with four-momenta in the lab [GeV].
        beams: the :class:`~smartbkg.simulation.beams.Beams` that define sqrt(s) and the CM frame.

    Returns:
        dict name -> (n_events,) array (see the module docstring for units).
    """
    n = len(table)
    event = table.event_index()
    pdg = table.particles["pdg"]
    final = final_state_mask(table)
    charge = _three_charge(pdg)
    neutrino = _is_neutrino(pdg)
    visible = final & ~neutrino
    charged = visible & (charge != 0)
    photon = final & (pdg == 22)
    p4 = _cm_four_momenta(table, beams)

    def count(mask):
        return np.bincount(event[mask], minlength=n).astype(np.int64)

    def total(values, mask):
        return np.bincount(event[mask], weights=values[mask], minlength=n)

    visible_p4 = np.stack([total(p4[:, k], visible) for k in range(4)], axis=1)
    missing_energy = beams.e_cm - visible_p4[:, 0]
    missing_p = -visible_p4[:, 1:]
    missing_abs = np.linalg.norm(missing_p, axis=1)
    momentum = np.linalg.norm(p4[:, 1:], axis=1)
    leading = np.zeros(n)
    np.maximum.at(leading, event[charged], momentum[charged])
    thrust_value, thrust_axis, r2 = _event_shapes(table.offsets, event, p4[:, 1:], visible)
    return {
        "n_particles": table.counts.astype(np.int64),
        "n_charged": count(charged),
        "n_neutral": count(visible & (charge == 0)),
        "n_photons": count(photon),
        "n_leptons": count(final & np.isin(np.abs(pdg), (11, 13))),
        "visible_energy": visible_p4[:, 0],
        "photon_energy": total(p4[:, 0], photon),
        "missing_momentum": missing_abs,
        "missing_mass2": missing_energy**2 - missing_abs**2,
        "missing_cos_theta": np.divide(missing_p[:, 2], missing_abs, out=np.zeros(n), where=missing_abs > 0),
        "thrust": thrust_value,
        "thrust_cos_theta": np.abs(thrust_axis[:, 2]),
        "fox_wolfram_r2": r2,
        "leading_track_p": leading,
        "n_b_mesons": count(_first_of_species(table, B_MESONS)),
        "n_d_mesons": count(_first_of_species(table, D_MESONS)),
        "n_taus": count(_first_of_species(table, (TAU,))),
        "event_type": table.event_type.astype(np.int64),
    }


def _three_charge(pdg):
    """(n,) int64 three times the electric charge of each PDG id (0 for ids ``particle`` does not know)."""
    ids, inverse = np.unique(pdg, return_inverse=True)
    charges = np.array([three_charge(int(i)) or 0 for i in ids], dtype=np.int64)
    return charges[inverse.reshape(-1)]


def _is_neutrino(pdg):
    """(n,) bool: neutral leptons."""
    ids, inverse = np.unique(pdg, return_inverse=True)
    flags = np.array([bool(is_lepton(int(i))) and not three_charge(int(i)) for i in ids], dtype=bool)
    return flags[inverse.reshape(-1)]


def _cm_four_momenta(table, beams):
    """(n_particles, 4) float64 (E, px, py, pz) in the CM frame of ``beams`` [GeV]."""
    lab = np.stack([table.particles[f] for f in ("energy", "px", "py", "pz")], axis=1).astype(np.float64)
    return lab @ beams.lab_to_cm().T


def _first_of_species(table, species):
    """(n_particles,) bool: particles of abs(pdg) in ``species`` whose mother is not of the same abs(pdg)."""
    a = np.abs(table.particles["pdg"])
    mother = table.global_mother()
    mother_pdg = np.where(mother >= 0, a[np.maximum(mother, 0)], 0)
    return np.isin(a, species) & (mother_pdg != a)


def _event_shapes(offsets, event, p, mask):
    """Thrust, thrust axis and Fox-Wolfram R2 of the particles ``mask`` of every event.

    Events are processed in chunks of at most :data:`PAIR_CHUNK` particle pairs, so memory
    stays bounded for large tables.

    Args:
        offsets: (n_events + 1,) particle offsets of the table.
        event: (n_particles,) event index of every particle.
        p: (n_particles, 3) momenta [GeV].
        mask: (n_particles,) bool, the particles to use.

    Returns:
        ((n_events,) thrust, (n_events, 3) unit thrust axis, (n_events,) R2).
    """
    n = len(offsets) - 1
    rows = np.flatnonzero(mask)
    used = np.bincount(event[rows], minlength=n)
    used_offsets = np.concatenate([[0], np.cumsum(used)])
    pairs = np.cumsum(used.astype(np.int64) ** 2)
    value, axis, r2 = np.zeros(n), np.zeros((n, 3)), np.zeros(n)
    start = 0
    while start < n:
        # Up to PAIR_CHUNK pairs beyond those of the events before, but at least one event.
        before = pairs[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(pairs, before + PAIR_CHUNK, side="right")))
        chunk = rows[used_offsets[start]:used_offsets[stop]]
        local = event[chunk] - start
        value[start:stop], axis[start:stop] = thrust(local, p[chunk], stop - start)
        r2[start:stop] = _fox_wolfram_r2(used_offsets[start:stop + 1] - used_offsets[start], p[chunk])
        start = stop
    return value, axis, r2


def _fox_wolfram_r2(offsets, p):
    """(n_events,) H2/H0 with H_l = sum_ij abs(p_i) abs(p_j) P_l(cos theta_ij), over all pairs of an event.

    Args:
        offsets: (n_events + 1,) offsets of the particles in ``p``.
        p: (k, 3) momenta [GeV].
    """
    counts = np.diff(offsets)
    i, j = within_event_pairs(offsets)
    norm = np.linalg.norm(p, axis=1)
    product = norm[i] * norm[j]
    dot = np.einsum("ij,ij->i", p[i], p[j])
    pair_event = np.repeat(np.arange(len(counts)), counts**2)
    h0 = np.bincount(pair_event, weights=product, minlength=len(counts))
    h2 = np.bincount(pair_event, weights=1.5 * dot**2 / np.maximum(product, 1e-300) - 0.5 * product,
                     minlength=len(counts))
    return np.divide(h2, h0, out=np.zeros(len(counts)), where=h0 > 0)
