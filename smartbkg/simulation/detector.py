"""A fast, seeded Belle II-like detector response, vectorised over whole event tables.

Input: generator-level events (:class:`~smartbkg.data.table.EventTable`, lab frame, GeV, cm,
ns, before preprocessing). Output: :class:`Reconstruction`, the reconstructed charged tracks
and photons of every event as flat arrays with event offsets. The visible particles are the
final-state particles of the record (no daughters; beams, quarks, gluons and diquarks never
count), plus the products of the decays in flight of K_S0 and hyperons, which this model
performs (the generator leaves particles with c*tau > 1 cm undecayed, as at Belle II).

The model (defaults in :class:`DetectorConfig`, numbers from the Belle II TDR, arXiv:1011.0352,
and Belle II performance papers, rounded):

* **In-flight decays** (:data:`IN_FLIGHT`, PDG 2024): K_S0 -> pi+ pi- (69.2 %) / pi0 pi0
  (30.7 %), Lambda -> p pi- (63.9 %) / n pi0 (35.8 %), Sigma+ -> p pi0 (51.57 %) / n pi+
  (48.31 %), Sigma- -> n pi-, Xi- -> Lambda pi-, Xi0 -> Lambda pi0, Omega- -> Lambda K-
  (67.8 %) / Xi0 pi- (23.6 %) / Xi- pi0 (8.6 %) (and charge conjugates), decay length drawn
  from the lifetime, isotropic in the rest frame; the Lambdas and Xis of cascades decay in
  their turn; pi0 -> gamma gamma at once. Decays beyond ``decay_radius_max`` leave nothing.
* **Tracks** (e, mu, pi, K, p; the hyperons decay before they make one): polar angle in
  [17, 150] deg; transverse momentum above ``track_pt_min`` with efficiency
  ``track_efficiency * (1 - exp(-(pT - track_pt_min) / track_pt_turn_on))``; the track must
  come from the interaction point: the straight-line distance of closest approach to the beam
  line below ``track_d0_max`` and its z there within ``track_z0_max`` (so most K_S0, Lambda
  and hyperon daughters are not in the list; :func:`ip_probability` gives a daughter's
  chance over the flight length, which ``reconstruct(..., expected_flight=True)`` reports
  instead of cutting on the drawn one). Momentum resolution
  sigma(pT)/pT = 0.0011 pT [GeV] (+) 0.0025/beta, applied to abs(p) with the direction kept.
* **Particle identification**: the reconstructed hypothesis (e, mu, pi, K, p) is drawn from a
  confusion matrix per true species, one below and one above ``pid_momentum_split`` (muons
  below ~0.7 GeV do not reach the KLM); the track energy uses the hypothesis mass.
* **Photons**: ECL acceptance 12.4-155.1 deg, energy thresholds 0.10 GeV (forward endcap,
  theta < 31.4 deg), 0.05 GeV (barrel), 0.15 GeV (backward endcap, theta > 128.7 deg),
  efficiency ``photon_efficiency``, resolution sigma(E)/E = 0.066 %/E (+) 0.81 %/E^(1/4) (+)
  1.34 % (E in GeV). Neutrinos, neutrons and K_L0 are invisible.

Every random number is addressed by (seed, event id, particle) through
:class:`~smartbkg.simulation.rng.CounterRNG`, so an event's response does not depend on
which other events are processed with it.
"""

from dataclasses import asdict, dataclass, replace

import numpy as np

from .candidates import event_offsets
from .record import is_pseudo_particle
from .rng import CounterRNG

#: Species of particle identification, in this order.
SPECIES = ("e", "mu", "pi", "K", "p")
#: Mass hypotheses of :data:`SPECIES` [GeV].
SPECIES_MASS = np.array([0.51099895e-3, 0.1056584, 0.1395704, 0.493677, 0.9382721])

#: Trackable charged particles, abs(pdg) -> (true species index, charge of the positive pdg).
CHARGED = {11: (0, -1), 13: (1, -1), 211: (2, 1), 321: (3, 1), 2212: (4, 1)}

#: Two-body decays done by the detector model, abs(pdg) -> (c*tau [cm], mass [GeV], modes), each mode
#: (branching fraction, daughter 1, daughter 2) for the particle (positive pdg); branching
#: fractions are renormalised to 1 and the antiparticle decays to the charge conjugates.
#: Lifetimes, masses and branching fractions from PDG 2024. The cascades (Xi, Omega) give
#: Lambdas and Xis that decay in flight in their turn.
IN_FLIGHT = {
    310: (2.6844, 0.497611, ((0.692, 211, -211), (0.307, 111, 111))),                  # K_S0
    3122: (7.89, 1.115683, ((0.639, 2212, -211), (0.358, 2112, 111))),                 # Lambda
    3222: (2.404, 1.18937, ((0.5157, 2212, 111), (0.4831, 2112, 211))),                # Sigma+
    3112: (4.434, 1.197449, ((0.9985, 2112, -211),)),                                  # Sigma-
    3312: (4.91, 1.32171, ((0.9989, 3122, -211),)),                                    # Xi-
    3322: (8.71, 1.31486, ((0.9952, 3122, 111),)),                                     # Xi0
    3334: (2.461, 1.67245, ((0.678, 3122, -321), (0.236, 3322, -211), (0.086, 3312, 111))),  # Omega-
}
PI0_DECAY = {111: (0.0, 0.1349768, ((0.988, 22, 22),))}
_MASS = {22: 0.0, 111: 0.1349768, 211: 0.1395704, 321: 0.493677, 2212: 0.9382721, 2112: 0.9395654,
         **{pid: mass for pid, (_, mass, _) in IN_FLIGHT.items()}}
#: Self-conjugate ids, whose sign does not flip under charge conjugation.
_SELF_CONJUGATE = (22, 111)

#: PID confusion matrices, rows true species, columns reconstructed hypothesis (SPECIES order).
PID_LOW = np.array([
    [0.900, 0.005, 0.090, 0.003, 0.002],
    [0.010, 0.300, 0.680, 0.005, 0.005],
    [0.010, 0.030, 0.930, 0.025, 0.005],
    [0.005, 0.005, 0.060, 0.920, 0.010],
    [0.005, 0.005, 0.020, 0.020, 0.950],
])
PID_HIGH = np.array([
    [0.940, 0.005, 0.050, 0.003, 0.002],
    [0.005, 0.900, 0.090, 0.003, 0.002],
    [0.002, 0.015, 0.930, 0.045, 0.008],
    [0.002, 0.005, 0.090, 0.880, 0.023],
    [0.002, 0.003, 0.030, 0.060, 0.905],
])


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the fast detector model (angles in degrees, momenta GeV, lengths cm)."""

    track_theta_min: float = 17.0
    track_theta_max: float = 150.0
    track_pt_min: float = 0.05
    track_pt_turn_on: float = 0.05
    track_efficiency: float = 0.97
    track_d0_max: float = 0.5
    track_z0_max: float = 2.0
    pt_resolution_a: float = 0.0011
    pt_resolution_b: float = 0.0025
    pid_momentum_split: float = 0.7
    pid_low: tuple = tuple(map(tuple, PID_LOW))
    pid_high: tuple = tuple(map(tuple, PID_HIGH))
    photon_theta_min: float = 12.4
    photon_theta_max: float = 155.1
    forward_endcap_max: float = 31.4
    backward_endcap_min: float = 128.7
    photon_threshold_forward: float = 0.10
    photon_threshold_barrel: float = 0.05
    photon_threshold_backward: float = 0.15
    photon_efficiency: float = 0.98
    ecl_a: float = 0.00066
    ecl_b: float = 0.0081
    ecl_c: float = 0.0134
    decay_radius_max: float = 100.0

    def to_dict(self):
        return {k: (list(map(list, v)) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class Reconstruction:
    """Reconstructed objects of many events (lab frame, GeV).

    Attributes:
        n_events: number of events.
        track_offsets: (n_events + 1,) int64; tracks of event i are ``track_offsets[i]:track_offsets[i+1]``.
        tracks: dict of (n_tracks,) arrays: ``px``, ``py``, ``pz``, ``e`` (float64, energy from
            the PID hypothesis mass), ``charge`` (int8, +-1), ``pid`` (int8 index into
            :data:`SPECIES`), ``true_species`` (int8), ``true_index`` (int64, the particle's
            position in the generator event, or a derived key for in-flight decay products).
        photon_offsets: (n_events + 1,) int64.
        photons: dict of (n_photons,) arrays ``px``, ``py``, ``pz``, ``e`` (float64).
    """

    n_events: int
    track_offsets: np.ndarray
    tracks: dict
    photon_offsets: np.ndarray
    photons: dict

    @property
    def n_tracks(self):
        """(n_events,) number of tracks per event."""
        return np.diff(self.track_offsets)

    @property
    def n_photons(self):
        """(n_events,) number of photons per event."""
        return np.diff(self.photon_offsets)

    @classmethod
    def from_objects(cls, n_events, tracks, track_event, photons, photon_event):
        """Build from unsorted objects with their event index ((k,) int64 each)."""
        track_order = np.argsort(track_event, kind="stable")
        photon_order = np.argsort(photon_event, kind="stable")
        return cls(
            n_events=n_events,
            track_offsets=event_offsets(track_event[track_order], n_events),
            tracks={k: np.asarray(v)[track_order] for k, v in tracks.items()},
            photon_offsets=event_offsets(photon_event[photon_order], n_events),
            photons={k: np.asarray(v)[photon_order] for k, v in photons.items()},
        )


def _conjugate(pdg, sign):
    """Charge conjugate daughter ids of antiparticles (sign -1), leaving self-conjugate ones."""
    flip = (sign < 0) & ~np.isin(pdg, _SELF_CONJUGATE)
    return np.where(flip, -pdg, pdg)


def _mass(pdg):
    """(n,) masses [GeV] of decay products (ids of :data:`_MASS`)."""
    a = np.abs(pdg)
    m = np.zeros(len(a))
    for pid, mass in _MASS.items():
        m[a == pid] = mass
    return m


def final_state_mask(table):
    """(n_particles,) bool: particles without daughters that are not beams, partons or diquarks."""
    mother = table.global_mother()
    has_daughter = np.zeros(table.n_particles, dtype=bool)
    has_daughter[mother[mother >= 0]] = True
    pdg = table.particles["pdg"]
    a = np.abs(pdg)
    parton = (a <= 8) | (a == 21) | is_pseudo_particle(pdg)
    return ~has_daughter & ~table.particles["initial"] & ~parton


def two_body_decay(parent, m1, m2, cos_theta, phi):
    """Decay parents isotropically into two daughters, in the parents' frame, boosted back.

    Args:
        parent: (n, 4) four-momenta (E, px, py, pz) [GeV].
        m1, m2: (n,) daughter masses [GeV].
        cos_theta, phi: (n,) direction of daughter 1 in the parent rest frame.

    Returns:
        two (n, 4) arrays, the daughters' four-momenta in the frame of ``parent``.
    """
    m = np.sqrt(np.maximum(parent[:, 0] ** 2 - np.sum(parent[:, 1:] ** 2, axis=1), 0.0))
    p_star = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    sin_theta = np.sqrt(np.maximum(1 - cos_theta**2, 0.0))
    n = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=1)
    beta = parent[:, 1:] / parent[:, :1]
    gamma = parent[:, 0] / m
    out = []
    for mass, sign in ((m1, 1.0), (m2, -1.0)):
        p = sign * p_star[:, None] * n
        e = np.sqrt(mass**2 + p_star**2)
        bp = np.sum(beta * p, axis=1)
        b2 = np.sum(beta**2, axis=1)
        coef = np.where(b2 > 0, (gamma - 1) * bp / np.where(b2 > 0, b2, 1.0), 0.0) + gamma * e
        out.append(np.concatenate([(gamma * (e + bp))[:, None], p + coef[:, None] * beta], axis=1))
    return out[0], out[1]


@dataclass
class _Visible:
    """Visible-particle candidates as flat columns: event index, key (particle address for the
    random numbers), pdg, four-momentum (k, 4), production vertex (k, 3) [cm], and the
    probability over the flight of the particle's parent that it is produced close enough to the
    interaction point to make a track (:func:`ip_probability`, filled in only for
    :func:`reconstruct` with ``expected_flight``; NaN for generator particles, whose vertex
    decides, and otherwise)."""

    event: np.ndarray
    key: np.ndarray
    pdg: np.ndarray
    p4: np.ndarray
    vertex: np.ndarray
    ip_probability: np.ndarray

    _FIELDS = ("event", "key", "pdg", "p4", "vertex", "ip_probability")

    def take(self, rows):
        return _Visible(*(getattr(self, f)[rows] for f in self._FIELDS))

    @staticmethod
    def concat(parts):
        return _Visible(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Visible._FIELDS))


def _impact_parameters(vertex, p):
    """Straight-line distance d0 of closest approach to the beam line (z axis) and z0, its z
    there [cm], of tracks from ``vertex`` (k, 3) [cm] with momentum ``p`` (k, 3) [GeV]."""
    pt2 = np.maximum(p[:, 0] ** 2 + p[:, 1] ** 2, 1e-24)
    d0 = (vertex[:, 0] * p[:, 1] - vertex[:, 1] * p[:, 0]) / np.sqrt(pt2)
    z0 = vertex[:, 2] - (vertex[:, 0] * p[:, 0] + vertex[:, 1] * p[:, 1]) / pt2 * p[:, 2]
    return d0, z0


def _linear_interval(a, b, limit):
    """(lo, hi) of the lengths L with abs(a + b L) < limit, elementwise ((k,) each; an empty
    interval has lo >= hi)."""
    safe = np.where(b == 0, 1.0, b)
    ends = np.stack([(-limit - a) / safe, (limit - a) / safe])
    inside = np.abs(a) < limit
    lo = np.where(b == 0, np.where(inside, -np.inf, np.inf), ends.min(axis=0))
    hi = np.where(b == 0, np.where(inside, np.inf, -np.inf), ends.max(axis=0))
    return lo, hi


def ip_probability(origin, direction, decay_length, p, config):
    """Probability that a decay product makes an interaction-point track, over the flight of its
    parent, with the product's momentum (the decay mode and angles) held fixed.

    The parent flies from ``origin`` along ``direction`` a length L drawn from
    exp(-L / ``decay_length``); the product starts at origin + L direction. It passes the
    impact-parameter cuts (abs(d0) < ``track_d0_max``, abs(z0) < ``track_z0_max``, both linear
    in L) and the parent decays within ``decay_radius_max`` for L in an interval [lo, hi], of
    probability exp(-lo / decay_length) - exp(-hi / decay_length).

    Args:
        origin: (k, 3) parent production vertex [cm].
        direction: (k, 3) unit vector of the parent's flight.
        decay_length: (k,) mean decay length beta gamma c tau [cm] (> 0).
        p: (k, 3) momentum of the product [GeV].
        config: :class:`DetectorConfig`.

    Returns:
        (k,) float64 probabilities.
    """
    d0_origin, z0_origin = _impact_parameters(origin, p)
    d0_end, z0_end = _impact_parameters(origin + direction, p)
    lo_d, hi_d = _linear_interval(d0_origin, d0_end - d0_origin, config.track_d0_max)
    lo_z, hi_z = _linear_interval(z0_origin, z0_end - z0_origin, config.track_z0_max)
    # Transverse radius below decay_radius_max: a quadratic in L, u2 L^2 + 2 b L + c < 0.
    u2 = np.maximum(direction[:, 0] ** 2 + direction[:, 1] ** 2, 1e-24)
    b = origin[:, 0] * direction[:, 0] + origin[:, 1] * direction[:, 1]
    c = origin[:, 0] ** 2 + origin[:, 1] ** 2 - config.decay_radius_max**2
    root = np.sqrt(np.maximum(b**2 - u2 * c, 0.0))
    lo = np.maximum.reduce([np.zeros(len(u2)), lo_d, lo_z, (-b - root) / u2])
    hi = np.minimum.reduce([hi_d, hi_z, (-b + root) / u2])
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(hi > lo, np.exp(-lo / decay_length) - np.exp(-hi / decay_length), 0.0)


def _decay(objects, decays, rng, stage, event_id, config, expected_flight=False):
    """Decay the objects listed in ``decays`` (two-body, after a flight drawn from c*tau).

    With ``expected_flight`` (see :func:`reconstruct`) the daughters get their
    :func:`ip_probability`, and the charged trackable daughters of a decay beyond
    ``decay_radius_max`` are kept too: their probability decides.

    Returns:
        (the objects that were not decayed, the daughters of decays within
        ``decay_radius_max``).
    """
    todo = np.isin(np.abs(objects.pdg), list(decays))
    parents = objects.take(np.flatnonzero(todo))
    eid, key = event_id[parents.event], parents.key
    d1 = np.zeros(len(key), np.int64)
    d2 = np.zeros(len(key), np.int64)
    flight = np.zeros(len(key))
    flight_scale = np.zeros(len(key))
    u = rng.uniform(f"{stage}/mode", eid, key)
    p = np.linalg.norm(parents.p4[:, 1:], axis=1)
    for pid, (ctau, mass, modes) in decays.items():
        sel = np.abs(parents.pdg) == pid
        fractions = np.array([m[0] for m in modes])
        edges = np.cumsum(fractions / fractions.sum())
        choice = np.minimum(np.searchsorted(edges, u[sel], side="right"), len(modes) - 1)
        d1[sel] = np.array([m[1] for m in modes])[choice]
        d2[sel] = np.array([m[2] for m in modes])[choice]
        if ctau > 0:
            flight_scale[sel] = p[sel] / mass * ctau
            flight[sel] = flight_scale[sel] * rng.exponential(f"{stage}/flight", eid[sel], key[sel])
    sign = np.sign(parents.pdg)
    d1, d2 = _conjugate(d1, sign), _conjugate(d2, sign)
    direction = parents.p4[:, 1:] / np.maximum(p, 1e-12)[:, None]
    vertex = parents.vertex + flight[:, None] * direction
    q1, q2 = two_body_decay(parents.p4, _mass(d1), _mass(d2),
                            2.0 * rng.uniform(f"{stage}/cos", eid, key) - 1.0,
                            2.0 * np.pi * rng.uniform(f"{stage}/phi", eid, key))
    inside = np.hypot(vertex[:, 0], vertex[:, 1]) < config.decay_radius_max
    daughter_pdg = np.concatenate([d1, d2])
    q = np.concatenate([q1, q2])
    probability = np.full(len(q), np.nan)
    kept = np.concatenate([inside, inside])
    if expected_flight:
        mean_length = np.tile(flight_scale, 2)
        flew = mean_length > 0
        probability[flew] = ip_probability(np.tile(parents.vertex, (2, 1))[flew], np.tile(direction, (2, 1))[flew],
                                           mean_length[flew], q[flew, 1:], config)
        kept |= np.isin(np.abs(daughter_pdg), list(CHARGED))
    daughters = _Visible(
        np.tile(parents.event, 2), np.concatenate([4 * key + 1, 4 * key + 2]) + (1 << 32),
        daughter_pdg, q, np.concatenate([vertex, vertex]), probability,
    ).take(np.flatnonzero(kept))
    return objects.take(np.flatnonzero(~todo)), daughters


def _theta_deg(p4):
    return np.degrees(np.arctan2(np.hypot(p4[:, 1], p4[:, 2]), p4[:, 3]))


def track_efficiency(pt, config):
    """(k,) tracking efficiency of charged particles of transverse momentum ``pt`` (k,) [GeV] in
    the acceptance: ``track_efficiency * (1 - exp(-(pT - track_pt_min) / track_pt_turn_on))``
    (meaningful above ``track_pt_min``)."""
    return config.track_efficiency * (1.0 - np.exp(-(pt - config.track_pt_min) / config.track_pt_turn_on))


def identification_probabilities(p, species, config):
    """(k, len(SPECIES)) probabilities of each reconstructed hypothesis for tracks of momentum
    ``p`` (k,) [GeV] and true species ``species`` (k,) (index into :data:`SPECIES`): the row of
    ``pid_low`` below ``pid_momentum_split``, of ``pid_high`` above."""
    return np.where((p < config.pid_momentum_split)[:, None], np.asarray(config.pid_low)[species],
                    np.asarray(config.pid_high)[species])


def _tracks(obj, config, rng, event_id, expected_flight=False):
    """Tracking efficiency, IP requirement, momentum smearing and PID of charged candidates
    (with ``expected_flight``, see :func:`reconstruct`)."""
    a = np.abs(obj.pdg)
    species = np.zeros(len(a), np.int8)
    charge = np.zeros(len(a), np.int8)
    for pid, (sp, q) in CHARGED.items():
        species[a == pid] = sp
        charge[a == pid] = q
    charge = (charge * np.sign(obj.pdg)).astype(np.int8)
    eid, key = event_id[obj.event], obj.key
    px, py, pz, e = obj.p4[:, 1], obj.p4[:, 2], obj.p4[:, 3], obj.p4[:, 0]
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    theta = _theta_deg(obj.p4)
    d0, z0 = _impact_parameters(obj.vertex, obj.p4[:, 1:])
    from_ip = (np.abs(d0) < config.track_d0_max) & (np.abs(z0) < config.track_z0_max)
    if expected_flight:
        flown = ~np.isnan(obj.ip_probability)
        from_ip = np.where(flown, obj.ip_probability > 0, from_ip)
    efficiency = track_efficiency(pt, config)
    found = ((theta > config.track_theta_min) & (theta < config.track_theta_max) & (pt > config.track_pt_min)
             & from_ip & (rng.uniform("track/efficiency", eid, key) < efficiency))
    beta = p / np.maximum(e, 1e-12)
    sigma = np.hypot(config.pt_resolution_a * pt, config.pt_resolution_b / np.maximum(beta, 1e-3))
    scale = 1.0 + sigma * rng.normal("track/momentum", eid, key)
    rows = identification_probabilities(p, species, config)
    edges = np.cumsum(rows / rows.sum(axis=1, keepdims=True), axis=1)
    u = rng.uniform("track/pid", eid, key)
    pid = np.minimum((u[:, None] >= edges).sum(axis=1), len(SPECIES) - 1).astype(np.int8)
    rpx, rpy, rpz = px * scale, py * scale, pz * scale
    energy = np.sqrt((p * scale) ** 2 + SPECIES_MASS[pid] ** 2)
    f = np.flatnonzero(found)
    columns = {"px": rpx[f], "py": rpy[f], "pz": rpz[f], "e": energy[f], "charge": charge[f],
               "pid": pid[f], "true_species": species[f], "true_index": key[f]}
    if expected_flight:
        columns["ip_probability"] = np.where(flown, obj.ip_probability, 1.0)[f]
    return columns, obj.event[f]


def ecl_resolution(e, config):
    """(n,) relative photon energy resolution sigma(E)/E of the ECL at true energies ``e`` [GeV]."""
    e = np.maximum(e, 1e-9)
    return np.sqrt((config.ecl_a / e) ** 2 + (config.ecl_b / e**0.25) ** 2 + config.ecl_c**2)


def _photons(obj, config, rng, event_id):
    """ECL acceptance, thresholds, efficiency and energy smearing of photons."""
    eid, key = event_id[obj.event], obj.key
    e = obj.p4[:, 0]
    theta = _theta_deg(obj.p4)
    threshold = np.where(theta < config.forward_endcap_max, config.photon_threshold_forward,
                         np.where(theta > config.backward_endcap_min, config.photon_threshold_backward,
                                  config.photon_threshold_barrel))
    scale = np.maximum(1.0 + ecl_resolution(e, config) * rng.normal("photon/energy", eid, key), 0.0)
    measured = e * scale
    found = ((theta > config.photon_theta_min) & (theta < config.photon_theta_max) & (measured > threshold)
             & (rng.uniform("photon/efficiency", eid, key) < config.photon_efficiency))
    f = np.flatnonzero(found)
    columns = {"px": obj.p4[f, 1] * scale[f], "py": obj.p4[f, 2] * scale[f],
               "pz": obj.p4[f, 3] * scale[f], "e": measured[f]}
    return columns, obj.event[f]


def reconstruct(table, seed, config=DetectorConfig(), expected_flight=False):
    """Simulate the detector response for every event of a generator-level table.

    Args:
        table: :class:`~smartbkg.data.table.EventTable`, lab frame, GeV, cm, ns, full
            generator record (before preprocessing).
        seed: detector seed; with ``table.event_id`` it addresses every random number.
        config: :class:`DetectorConfig`.
        expected_flight: instead of cutting the decay products of in-flight decays on their
            impact parameters at the drawn decay length, keep every one that the flight of its
            parent can bring to the interaction point and give the tracks the column
            ``ip_probability`` (:func:`ip_probability`; 1 for generator particles). The
            decay modes and angles stay drawn.

    Returns:
        :class:`Reconstruction` with the tracks and photons of every event.
    """
    fs = np.flatnonzero(final_state_mask(table))
    pp = table.particles
    event = table.event_index()[fs]
    key = fs - table.offsets[:-1][event]
    p4 = np.stack([pp["energy"][fs], pp["px"][fs], pp["py"][fs], pp["pz"][fs]], axis=1).astype(np.float64)
    vertex = np.stack([pp["x"][fs], pp["y"][fs], pp["z"][fs]], axis=1).astype(np.float64)
    rng = CounterRNG(seed)
    # In-flight decays, generation by generation (Omega- -> Xi0 pi- -> Lambda pi0 pi- -> ...).
    flying = _Visible(event, key, pp["pdg"][fs].astype(np.int64), p4, vertex, np.full(len(fs), np.nan))
    landed = []
    while len(flying.key):
        stays, flying = _decay(flying, IN_FLIGHT, rng, "in-flight", table.event_id, config, expected_flight)
        landed.append(stays)
    visible, photons = _decay(_Visible.concat(landed), PI0_DECAY, rng, "pi0", table.event_id,
                              replace(config, decay_radius_max=np.inf))
    visible = _Visible.concat([visible, photons])
    a = np.abs(visible.pdg)
    tracks, track_event = _tracks(visible.take(np.flatnonzero(np.isin(a, list(CHARGED)))), config, rng,
                                  table.event_id, expected_flight)
    photons, photon_event = _photons(visible.take(np.flatnonzero(a == 22)), config, rng, table.event_id)
    return Reconstruction.from_objects(len(table), tracks, track_event, photons, photon_event)
