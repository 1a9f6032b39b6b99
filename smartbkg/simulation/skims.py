"""Six skims on the reconstructed event, modelled on Belle II skims, vectorised over events.

All quantities are in the e+e- centre-of-mass frame (marked with a star), computed from the
reconstructed tracks (momenta smeared, energies from the PID hypothesis) and photons of
:func:`smartbkg.simulation.detector.reconstruct`. E*_beam = sqrt(s)/2,
Mbc = sqrt(E*_beam^2 - abs(p*_B)^2), DeltaE = E*_B - E*_beam. Charge-conjugate modes are always
implied. Particle lists (a track's list is its PID hypothesis):

* pi0 -> gamma gamma: 0.120 < M < 0.145 GeV;
* D0 -> K- pi+ (abs(M - m_D0) < 25 MeV), K- pi+ pi0 (40 MeV), K- pi+ pi+ pi- (25 MeV);
  D+ -> K- pi+ pi+ (25 MeV); D*+ -> D0 pi+ with 142.5 < M(D*) - M(D0) < 148.5 MeV;
  rho+ -> pi+ pi0 with abs(M - 0.775) < 0.15 GeV.

The skims (name: definition; Belle II skim it stands for):

``hadronic_b``
    an exclusive hadronic B: B -> Dbar(*) pi+ or Dbar(*) rho+ with any D above, the bachelor's
    charge equal to the kaon's (Cabibbo-favoured), Mbc > 5.27 GeV and abs(DeltaE) < 0.1 GeV
    (FEI hadronic B tag, SLAC/Belle "BtoDh" hadronic skims).
``semileptonic_b``
    a lepton (e or mu hypothesis) with p* > 1.0 GeV and a D0 -> K pi or D+ -> K pi pi
    candidate with the kaon charge equal to the lepton charge, sharing no track, with
    p*(D) < 2.5 GeV and abs(cos theta_BY) < 1.5 (B -> D(*) l nu "SLUntagged"/"BtoDl").
``leptonic_untagged``
    a lepton with p* > 2.0 GeV and at least 3 tracks ("LeptonicUntagged", B -> l nu).
``radiative``
    a photon with 1.8 < E* < 3.4 GeV in the barrel ECL (32.2-128.7 deg) that forms no pi0
    candidate with another photon, and at least 3 tracks ("BtoXgamma", B -> X_s gamma).
``charm_dstar``
    D*+ -> D0 pi+ with D0 -> K- pi+ and p*(D*) > 2.5 GeV, above the B -> D* endpoint
    ("DstToD0Pi_D0ToHpJm", charm from continuum).
``tau_generic``
    tau pair topology: 2-8 tracks, thrust > 0.85, visible energy E*_vis < 10 GeV, and in each
    thrust hemisphere at least one track and an invariant mass below 1.8 GeV ("TauGeneric").
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .beams import transform
from .candidates import Candidates, combine, concat, thrust
from .detector import SPECIES

#: Skim names, in the order of the label columns.
SKIMS = ("hadronic_b", "semileptonic_b", "leptonic_untagged", "radiative", "charm_dstar", "tau_generic")

#: Masses [GeV] (PDG 2024).
M_D0, M_DPLUS, M_B, M_RHO = 1.86484, 1.86966, 5.2797, 0.775


@dataclass(frozen=True)
class Windows:
    """The mass windows of the particle lists and the Mbc, DeltaE cuts of ``hadronic_b`` [GeV].

    Attributes:
        pi0: lower and upper edge of M(gamma gamma).
        d0_kpi, d0_kpipi0, d0_kpipipi, dplus: half-widths abs(M - m_D) of the D modes.
        dstar: lower and upper edge of M(D*) - M(D0).
        rho: half-width abs(M - 0.775).
        mbc: smallest Mbc of a B.
        delta_e: largest abs(DeltaE) of a B.
    """

    pi0: tuple = (0.120, 0.145)
    d0_kpi: float = 0.025
    d0_kpipi0: float = 0.040
    d0_kpipipi: float = 0.025
    dplus: float = 0.025
    dstar: tuple = (0.1425, 0.1485)
    rho: float = 0.15
    mbc: float = 5.27
    delta_e: float = 0.1


#: The skims' windows.
WINDOWS = Windows()
#: radiative: the photon's E* window [GeV] and the smallest number of tracks.
RADIATIVE_PHOTON_E, RADIATIVE_MIN_TRACKS = (1.8, 3.4), 3
_E, _MU, _PI, _K = (SPECIES.index(s) for s in ("e", "mu", "pi", "K"))


class SkimInput:
    """The reconstructed events in the CM frame, with particle lists built on first use.

    Args:
        reco: :class:`~smartbkg.simulation.detector.Reconstruction` (lab frame).
        beams: :class:`~smartbkg.simulation.beams.Beams`, for the lab -> CM transformation.
        track_id: (n_tracks,) identity of every track in the overlap checks (default its
            position): rows with one id are hypotheses of one track and never combine.
        track_log_weight, photon_log_weight: (n_tracks,), (n_photons,) log weights the candidates
            multiply (default 0), for expected candidate counts.
        windows: :class:`Windows` of the particle lists and of ``hadronic_b`` (default
            :data:`WINDOWS`, the skims'; wider ones find the candidates near the edges).
    """

    def __init__(self, reco, beams, track_id=None, track_log_weight=None, photon_log_weight=None, windows=WINDOWS):
        self.n = reco.n_events
        self.e_beam = 0.5 * beams.e_cm
        to_cm = beams.lab_to_cm()
        t, g = reco.tracks, reco.photons
        self.track_event = np.repeat(np.arange(self.n, dtype=np.int64), reco.n_tracks)
        self.photon_event = np.repeat(np.arange(self.n, dtype=np.int64), reco.n_photons)
        self.track_p4 = np.stack(transform(to_cm, t["e"], t["px"], t["py"], t["pz"]), axis=1)
        self.photon_p4 = np.stack(transform(to_cm, g["e"], g["px"], g["py"], g["pz"]), axis=1)
        self.photon_theta_lab = np.degrees(np.arctan2(np.hypot(g["px"], g["py"]), g["pz"]))
        self.pid = t["pid"]
        self.charge = t["charge"].astype(np.int64)
        self.n_tracks = np.asarray(reco.n_tracks)
        self.track_id, self.track_log_weight, self.photon_log_weight = track_id, track_log_weight, photon_log_weight
        self.windows = windows

    def _tracks(self, species):
        rows = np.flatnonzero(np.isin(self.pid, species))
        tag = self.charge if _K in species else None
        return Candidates.singles(self.track_event, self.track_p4, self.charge, "track", rows, tag,
                                  self.track_id, self.track_log_weight)

    @cached_property
    def kaons(self):
        """K+- hypothesis tracks, tagged with their charge (the D flavour sign)."""
        return self._tracks([_K])

    @cached_property
    def pions(self):
        """pi+- hypothesis tracks."""
        return self._tracks([_PI])

    @cached_property
    def leptons(self):
        """e+- and mu+- hypothesis tracks."""
        return self._tracks([_E, _MU])

    @cached_property
    def photons(self):
        return Candidates.singles(self.photon_event, self.photon_p4, kind="photon", log_weight=self.photon_log_weight)

    @cached_property
    def pi0(self):
        """pi0 -> gamma gamma, 0.120 < M < 0.145 GeV."""
        pairs = combine(self.photons, self.photons, self.n, same=True)
        low, high = self.windows.pi0
        return pairs.take((pairs.mass > low) & (pairs.mass < high))

    @cached_property
    def photon_in_barrel(self):
        """(n_photons,) bool: photons in the barrel ECL (32.2-128.7 deg, lab frame)."""
        return (self.photon_theta_lab > 32.2) & (self.photon_theta_lab < 128.7)

    @cached_property
    def photon_in_pi0(self):
        """(n_photons,) bool: photons that form a pi0 candidate with another photon."""
        used = np.zeros(len(self.photon_p4), dtype=bool)
        used[self.pi0.photons.ravel()] = True
        return used

    @cached_property
    def k_pi(self):
        """K- pi+ pairs (opposite charges, any mass)."""
        pairs = combine(self.kaons, self.pions, self.n)
        return pairs.take(pairs.charge == 0)

    @cached_property
    def d0_kpi(self):
        return self.k_pi.take(np.abs(self.k_pi.mass - M_D0) < self.windows.d0_kpi)

    @cached_property
    def d0(self):
        """D0 -> K pi, K pi pi0, K pi pi pi."""
        loose = self.k_pi.take(self.k_pi.mass < M_D0)
        kpipi0 = combine(loose, self.pi0, self.n)
        pipi = combine(self.pions, self.pions, self.n, same=True)
        kpipipi = combine(loose, pipi.take(pipi.charge == 0), self.n)
        return concat([self.d0_kpi, kpipi0.take(np.abs(kpipi0.mass - M_D0) < self.windows.d0_kpipi0),
                       kpipipi.take(np.abs(kpipipi.mass - M_D0) < self.windows.d0_kpipipi)])

    @cached_property
    def dplus(self):
        """D+ -> K- pi+ pi+ (total charge opposite to the kaon's)."""
        kpipi = combine(combine(self.kaons, self.pions, self.n), self.pions, self.n)
        return kpipi.take((kpipi.charge == -kpipi.tag) & (np.abs(kpipi.mass - M_DPLUS) < self.windows.dplus))

    def dstar(self, d0):
        """D*+ -> D0 pi+ from a D0 list (pion charge opposite to the kaon's)."""
        dst, i_d, _ = combine(d0, self.pions, self.n, return_index=True)
        dm = dst.mass - d0.mass[i_d]
        low, high = self.windows.dstar
        return dst.take((dst.charge == -dst.tag) & (dm > low) & (dm < high))

    @cached_property
    def rho(self):
        """rho+ -> pi+ pi0, abs(M - 0.775) < 0.15 GeV."""
        rho = combine(self.pions, self.pi0, self.n)
        return rho.take(np.abs(rho.mass - M_RHO) < self.windows.rho)

    @cached_property
    def b_hadronic(self):
        """B -> D(*) pi / D(*) rho candidates (bachelor charge = kaon charge) with abs(DeltaE)
        below the window's (up to 1e-9 GeV of rounding), any Mbc."""
        d = concat([self.d0, self.dplus, self.dstar(self.d0)])
        bachelor = concat([self.pions, self.rho])
        # the DeltaE window as a window in the bachelor's energy, so that only those pairs are formed
        missing = self.e_beam - d.p4[:, 0]
        tolerance = self.windows.delta_e + 1e-9
        b, i_d, i_h = combine(d, bachelor, self.n, return_index=True,
                              window=(bachelor.p4[:, 0], missing - tolerance, missing + tolerance))
        return b.take(bachelor.charge[i_h] == d.tag[i_d])

    def mbc_delta_e(self, cands):
        """(k,) Mbc and DeltaE [GeV] of B candidates."""
        mbc = np.sqrt(np.maximum(self.e_beam**2 - np.sum(cands.p4[:, 1:] ** 2, axis=1), 0.0))
        return mbc, cands.p4[:, 0] - self.e_beam

    @cached_property
    def objects(self):
        """Tracks and photons together, event-sorted: (event (k,), p4 (k, 4), is_track (k,) bool)."""
        event = np.concatenate([self.track_event, self.photon_event])
        order = np.argsort(event, kind="stable")
        p4 = np.concatenate([self.track_p4, self.photon_p4])[order]
        return event[order], p4, order < len(self.track_event)

    @cached_property
    def visible_energy(self):
        """(n_events,) E*_vis [GeV] of tracks and photons."""
        event, p4, _ = self.objects
        return np.bincount(event, weights=p4[:, 0], minlength=self.n)


def hadronic_b_candidates(s):
    """The B -> D(*) pi / D(*) rho candidates with Mbc > 5.27 and abs(DeltaE) < 0.1 (:class:`Candidates`)."""
    mbc, de = s.mbc_delta_e(s.b_hadronic)
    return s.b_hadronic.take((mbc > s.windows.mbc) & (np.abs(de) < s.windows.delta_e))


def hadronic_b(s):
    """(n_events,) bool: an exclusive B -> D(*) pi / D(*) rho with Mbc > 5.27, abs(DeltaE) < 0.1."""
    return hadronic_b_candidates(s).any_per_event(s.n)


def semileptonic_b_candidates(s):
    """The D-lepton pairs of :func:`semileptonic_b` (:class:`Candidates`)."""
    leptons = s.leptons.take(s.leptons.p > 1.0)
    d = concat([s.d0_kpi, s.dplus])
    d = d.take(d.p < 2.5)
    y, i_d, i_l = combine(d, leptons, s.n, return_index=True)
    p_b = np.sqrt(s.e_beam**2 - M_B**2)
    m_y = y.mass
    cos_by = (2 * s.e_beam * y.p4[:, 0] - M_B**2 - m_y**2) / (2 * p_b * np.maximum(y.p, 1e-12))
    return y.take((leptons.charge[i_l] == d.tag[i_d]) & (np.abs(cos_by) < 1.5))


def semileptonic_b(s):
    """(n_events,) bool: lepton p* > 1 GeV with a right-sign D (K pi or K pi pi), abs(cos theta_BY) < 1.5."""
    return semileptonic_b_candidates(s).any_per_event(s.n)


def leptonic_untagged(s):
    """(n_events,) bool: a lepton with p* > 2 GeV and >= 3 tracks."""
    return s.leptons.any_per_event(s.n, s.leptons.p > 2.0) & (s.n_tracks >= 3)


def radiative(s):
    """(n_events,) bool: a barrel photon 1.8 < E* < 3.4 GeV not in a pi0 candidate, >= 3 tracks."""
    e = s.photon_p4[:, 0]
    hard = (e > RADIATIVE_PHOTON_E[0]) & (e < RADIATIVE_PHOTON_E[1]) & s.photon_in_barrel
    return s.photons.any_per_event(s.n, hard & ~s.photon_in_pi0) & (s.n_tracks >= RADIATIVE_MIN_TRACKS)


def charm_dstar_candidates(s):
    """The D*+ -> D0(K pi) pi+ candidates with p*(D*) > 2.5 GeV (:class:`Candidates`)."""
    dst = s.dstar(s.d0_kpi)
    return dst.take(dst.p > 2.5)


def charm_dstar(s):
    """(n_events,) bool: D*+ -> D0(K pi) pi+ with p*(D*) > 2.5 GeV."""
    return charm_dstar_candidates(s).any_per_event(s.n)


def thrust_hemispheres(s, events):
    """Thrust and the two thrust hemispheres of the chosen events (tracks and photons).

    Args:
        s: :class:`SkimInput`.
        events: (n_events,) bool, the events to compute (the others get zeros).

    Returns:
        ((n_events,) thrust, (n_events, 2) tracks per hemisphere, (n_events, 2) hemisphere
        invariant masses [GeV]).
    """
    event, p4, is_track = s.objects
    rows = np.flatnonzero(events[event])
    event, p4, is_track = event[rows], p4[rows], is_track[rows]
    value, axis = thrust(event, p4[:, 1:], s.n)
    side = (np.einsum("ij,ij->i", p4[:, 1:], axis[event]) > 0).astype(np.int64)
    key = 2 * event + side
    tracks_per_side = np.bincount(key[is_track], minlength=2 * s.n).reshape(s.n, 2)
    sums = np.stack([np.bincount(key, weights=p4[:, c], minlength=2 * s.n) for c in range(4)], axis=1)
    mass = np.sqrt(np.maximum(sums[:, 0] ** 2 - np.sum(sums[:, 1:] ** 2, axis=1), 0.0)).reshape(s.n, 2)
    return value, tracks_per_side, mass


def tau_generic(s):
    """(n_events,) bool: 2-8 tracks, thrust > 0.85, E*_vis < 10 GeV, each hemisphere >= 1 track, mass < 1.8 GeV."""
    candidate = (s.n_tracks >= 2) & (s.n_tracks <= 8) & (s.visible_energy < 10.0)
    value, tracks_per_side, mass = thrust_hemispheres(s, candidate)
    return candidate & (value > 0.85) & (tracks_per_side >= 1).all(axis=1) & (mass < 1.8).all(axis=1)


SKIM_FUNCTIONS = {f.__name__: f for f in (hadronic_b, semileptonic_b, leptonic_untagged, radiative,
                                          charm_dstar, tau_generic)}
assert tuple(SKIM_FUNCTIONS) == SKIMS
#: The skims that select an exclusive candidate, and the function giving their passing candidates.
CANDIDATE_FUNCTIONS = {"hadronic_b": hadronic_b_candidates, "semileptonic_b": semileptonic_b_candidates,
                       "charm_dstar": charm_dstar_candidates}


def apply_skims(reco, beams, skims=SKIMS):
    """Skim decisions of every event.

    Args:
        reco: :class:`~smartbkg.simulation.detector.Reconstruction`.
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        skims: names of the skims (columns, in this order).

    Returns:
        (n_events, len(skims)) bool.
    """
    s = SkimInput(reco, beams)
    return np.stack([SKIM_FUNCTIONS[name](s) for name in skims], axis=1).reshape(s.n, len(skims))
