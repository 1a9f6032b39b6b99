"""The embedded signal/background example: H -> Z gamma against Z gamma at 13 TeV, Pythia 8.

Signal: gluon fusion gg -> H (m_H = 125 GeV) with H -> Z gamma; background: q qbar -> Z gamma
(Pythia's ``WeakBosonAndParton:ffbar2gmZgm``, pure Z, hard-process mass 110-170 GeV); both with
Z -> e e or mu mu, at sqrt(s) = 13 TeV, initial- and final-state showers on, multiparton
interactions and hadronization off (only the leptons and the photon are used, and the event
generation is 5-10x faster without them).

A simple detector: every final-state electron, muon and photon is smeared (electron and photon
energy: 10 %/sqrt(E) + 1 % in quadrature; muon transverse momentum: 1.5 % + 0.01 %/GeV x pT in
quadrature; directions exact) and accepted within abs(eta) < 2.5. The selection follows the
LHC H -> Z gamma analyses: an opposite-sign same-flavour lepton pair (the one with mass closest
to m_Z) with pT > 25 and 10 GeV (electrons) or 20 and 10 GeV (muons), m_ll > 50 GeV, the leading
photon with pT > 15 GeV and DeltaR > 0.4 from both leptons, m_ll + m_llgamma > 185 GeV and
105 < m_llgamma < 170 GeV. Units: GeV.
"""

import numpy as np

from ..errors import ConfigError
from ..simulation.pythia import PythiaBatches

SQRT_S = 13000.0
Z_MASS = 91.1876
#: Pythia settings shared by signal and background.
COMMON = ("Print:quiet = on", "Next:numberCount = 0", f"Beams:eCM = {SQRT_S}", "PartonLevel:MPI = off",
          "HadronLevel:all = off", "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 11 13")
PROCESSES = {
    "signal": ("HiggsSM:gg2H = on", "25:onMode = off", "25:onIfMatch = 23 22"),
    "background": ("WeakBosonAndParton:ffbar2gmZgm = on", "PhaseSpace:mHatMin = 110", "PhaseSpace:mHatMax = 170"),
}
CHUNK = 5000


def _pt(p):
    return np.hypot(p[..., 1], p[..., 2])


def _eta(p):
    pt = _pt(p)
    return np.arcsinh(np.divide(p[..., 3], pt, out=np.zeros_like(pt), where=pt > 0))


def _mass(p):
    return np.sqrt(np.maximum(p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1), 0.0))


def smear(pdg, p4, rng):
    """Smeared four-momenta (n, 4) of final-state electrons, muons and photons (massless after
    smearing is a good approximation at these energies: the direction is kept, the momentum scaled)."""
    energy = p4[:, 0]
    pt = _pt(p4)
    sigma = np.where(np.abs(pdg) == 13, np.hypot(0.015, 1e-4 * pt),
                     np.hypot(0.10 / np.sqrt(np.maximum(energy, 1e-3)), 0.01))
    scale = np.maximum(1.0 + sigma * rng.standard_normal(len(pdg)), 0.0)
    return p4 * scale[:, None]


def select(offsets, pdg, p4):
    """Apply the selection to smeared final-state leptons and photons of many events.

    Args:
        offsets: (n_events + 1,); pdg: (n,) ids; p4: (n, 4) (E, px, py, pz) [GeV].

    Returns:
        (passed (n_events,) bool, dict of (n_passed, 4) four-momenta ``lminus``, ``lplus``,
        ``photon`` and (n_passed,) ``flavour`` (11 or 13)).
    """
    n_events = len(offsets) - 1
    event = np.repeat(np.arange(n_events), np.diff(offsets))
    accepted = np.abs(_eta(p4)) < 2.5
    best = {k: np.full((n_events, 4), np.nan) for k in ("lminus", "lplus", "photon")}
    flavour = np.zeros(n_events, dtype=np.int64)
    best_distance = np.full(n_events, np.inf)
    for lepton in (11, 13):
        minus = np.flatnonzero(accepted & (pdg == lepton))
        plus = np.flatnonzero(accepted & (pdg == -lepton))
        # every opposite-sign pair within an event: all (minus, plus) index pairs of equal event
        pairs_m, pairs_p = np.nonzero(event[minus][:, None] == event[plus][None, :]) if len(minus) * len(plus) \
            else (np.zeros(0, int), np.zeros(0, int))
        m, p = minus[pairs_m], plus[pairs_p]
        pt_m, pt_p = _pt(p4[m]), _pt(p4[p])
        lead, sub = np.maximum(pt_m, pt_p), np.minimum(pt_m, pt_p)
        mll = _mass(p4[m] + p4[p])
        ok = (lead > (25.0 if lepton == 11 else 20.0)) & (sub > 10.0) & (mll > 50.0)
        distance = np.where(ok, np.abs(mll - Z_MASS), np.inf)
        for k in np.argsort(-distance):  # the closest pair last, so it wins
            e = event[m[k]]
            if distance[k] < best_distance[e]:
                best_distance[e], flavour[e] = distance[k], lepton
                best["lminus"][e], best["lplus"][e] = p4[m[k]], p4[p[k]]
    photons = np.flatnonzero(accepted & (pdg == 22) & (_pt(p4) > 15.0))
    e_ph = event[photons]
    far = (_delta_r(p4[photons], best["lminus"][e_ph]) > 0.4) & (_delta_r(p4[photons], best["lplus"][e_ph]) > 0.4)
    photons, e_ph = photons[far], e_ph[far]
    order = np.lexsort((-_pt(p4[photons]), e_ph))
    photons, e_ph = photons[order], e_ph[order]
    first = np.r_[True, e_ph[1:] != e_ph[:-1]] if len(e_ph) else np.zeros(0, bool)
    best["photon"][e_ph[first]] = p4[photons[first]]
    has_all = np.isfinite(best_distance) & np.isfinite(best["photon"][:, 0])
    mll = _mass(best["lminus"] + best["lplus"])
    mllg = _mass(best["lminus"] + best["lplus"] + best["photon"])
    passed = has_all & (mll + mllg > 185.0) & (mllg > 105.0) & (mllg < 170.0)
    return passed, {**{k: v[passed] for k, v in best.items()}, "flavour": flavour[passed]}


def _delta_r(a, b):
    dphi = np.angle(np.exp(1j * (np.arctan2(a[..., 2], a[..., 1]) - np.arctan2(b[..., 2], b[..., 1]))))
    return np.hypot(_eta(a) - _eta(b), dphi)


def generate(process, n_generated, seed):
    """Generate, smear and select events of ``process`` ("signal" or "background").

    Args:
        n_generated: events to generate (the selection keeps a fraction of them).
        seed: seed of generation and smearing.

    Returns:
        (dict of the selected events' objects, see :func:`select`; the number of generated
        events; Pythia's leading-order cross section of the generated process [pb]).
    """
    if process not in PROCESSES:
        raise ConfigError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    generator = PythiaBatches([*COMMON, *PROCESSES[process]], CHUNK, process).initialise()
    rng = np.random.default_rng([seed, 1])
    parts = []
    for chunk, first in enumerate(range(0, n_generated, CHUNK)):
        n = min(CHUNK, n_generated - first)
        pythia_seed = 1 + int(np.random.default_rng([seed, 2, chunk]).integers(900_000_000 - 1))
        offsets, raw = generator.generate(n, pythia_seed)
        final = (raw["status"] > 0) & np.isin(np.abs(raw["id"]), (11, 13, 22))
        counts = np.add.reduceat(final, offsets[:-1]) if len(final) else np.zeros(n, int)
        counts = np.where(np.diff(offsets) > 0, counts, 0)
        p4 = np.stack([raw["e"], raw["px"], raw["py"], raw["pz"]], axis=1)[final].astype(np.float64)
        pdg = raw["id"][final]
        _, objects = select(np.r_[0, np.cumsum(counts)], pdg, smear(pdg, p4, rng))
        parts.append(objects)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, n_generated, generator.cross_section_pb()
