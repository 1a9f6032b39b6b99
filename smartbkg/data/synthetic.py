"""Seeded synthetic events as :class:`~smartbkg.data.table.EventTable`, for tests and benchmarks.

Two generators, neither a physics model (use :mod:`smartbkg.simulation` for physics):

* :func:`random_trees`: vectorised over events, fast for any number of events; Belle II-like
  records (beams, a virtual photon, partons, then hadrons, leptons and photons) with vertices
  following the tree but random, unrelated momenta. Made for the data pipeline: readers,
  preprocessing, batching.
* :func:`decay_trees`: kinematically consistent decay trees, built event by event (about
  1 ms per event): every decay conserves four-momentum, every particle is on its mass shell,
  daughters start where their mother decayed. Made for models: Lorentz invariants, pair
  features and invariance tests behave as on generated events.

The same seed gives the same table. Graphs and batches come from the data layer, e.g.
``GraphStore(decay_trees(64)).batch(range(64))`` (:class:`~smartbkg.data.graphs.GraphStore`).
"""

import numpy as np

from ..errors import ConfigError
from .table import EVENT_TYPES, EventTable
from .vocab import pdg_to_token

#: Speed of light [cm/ns].
C_LIGHT = 29.9792458

# ------------------------------------------------------------------------------- random_trees
#: Hadrons, leptons and photons of B-factory events with rough relative abundances.
FINAL_PDG = np.array([22, 211, -211, 111, 321, -321, 310, 130, 11, -11, 13, -13, 2212, -2212, 2112,
                      421, -421, 411, -411, 511, -511, 521, -521, 413, 223, 221, 113, 313, 9010221, 12, -12])
FINAL_P = np.array([30, 16, 16, 12, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1,
                    1, 1, 1, 1, .5, .5, .5, .5, .5, 1, 1, 1, .5, .2, 1, 1], dtype=float)
PARTON_PDG = np.array([1, -1, 2, -2, 3, -3, 4, -4, 21, 21])


def random_trees(n_events, mean_particles=50, seed=0):
    """Random but realistic-looking Belle II records, vectorised over events.

    Each event: the two beam particles (``initial``), one root (virtual photon 10022), a few
    partons (quarks, gluons) near the top of the tree, then hadrons, leptons and photons, each
    the daughter of an earlier particle; production vertices follow the tree (short steps, a few
    long-lived particles decaying beyond 10 cm), times follow the vertices. Momentum components
    are drawn independently (~1 GeV), energies from a few masses: the kinematics are not
    consistent along the tree. About 4/5 of the particles survive the default preprocessing
    (~40 for ``mean_particles=50``).

    Args:
        n_events: number of events.
        mean_particles: mean particles per event (3 + Poisson(mean_particles - 3)).
        seed: the same seed gives the same table.

    Returns:
        :class:`EventTable` with skims ``("skim_a", "skim_b")`` (5 % and 20 % positive at
        random), event types drawn uniformly from the seven Belle II types, no weights.
    """
    rng = np.random.default_rng(seed)
    counts = 3 + rng.poisson(mean_particles - 3, n_events)
    offsets = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    local = np.arange(n) - np.repeat(offsets[:-1], counts)
    start = np.repeat(offsets[:-1], counts)
    # Mothers: beams and root have none; partons hang from the root or an earlier parton; the
    # rest from any earlier non-beam particle, biased towards the top of the tree.
    u = rng.random(n)
    mother = np.where(local < 3, -1, 2 + np.floor(u ** 1.5 * (local - 2))).astype(np.int64)
    parton = (local >= 3) & (local < 3 + rng.integers(2, 8, n)) & (rng.random(n) < 0.9)
    pdg = rng.choice(FINAL_PDG, n, p=FINAL_P / FINAL_P.sum())
    pdg[parton] = rng.choice(PARTON_PDG, int(parton.sum()))
    pdg[local == 0], pdg[local == 1], pdg[local == 2] = 11, -11, 10022
    initial = local < 2
    # Kinematics: momentum components ~ 1 GeV, energy from a mass.
    p = rng.normal(0, 0.8, (n, 3)).astype(np.float32)
    energy = np.sqrt((p ** 2).sum(1) + rng.choice([0, 0.0196, 0.24, 1.9, 5.28], n) ** 2).astype(np.float32)
    # Vertices: walk down the tree in index order (mothers come first), all events at once.
    step = rng.exponential(0.02, n) * np.where(rng.random(n) < 0.05, 2000, 1)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    vertex = np.zeros((n, 3))
    vertex[local == 2, 2] = rng.normal(0, 0.3, int((local == 2).sum()))
    time = np.zeros(n)
    for i in range(3, int(counts.max(initial=0))):
        at = np.flatnonzero(local == i)
        m = start[at] + mother[at]
        vertex[at] = vertex[m] + step[at, None] * direction[at]
        time[at] = time[m] + step[at] / C_LIGHT
    labels = np.stack([rng.random(n_events) < 0.05, rng.random(n_events) < 0.2], axis=1)
    particles = {"pdg": pdg, "mother": mother, "initial": initial,
                 "prodTime": time + 1.5, "x": vertex[:, 0], "y": vertex[:, 1], "z": vertex[:, 2],
                 "px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "energy": energy}
    return EventTable(offsets, particles, labels, ("skim_a", "skim_b"),
                      rng.integers(0, len(EVENT_TYPES), n_events), EVENT_TYPES)


# -------------------------------------------------------------------------------- decay_trees
#: (PDG id, mass GeV, c*tau cm) of the particles :func:`decay_trees` draws daughters from.
_MENU = np.array([
    (22, 0.0, 0.0), (11, 0.000511, 0.0), (13, 0.10566, 65.9), (211, 0.13957, 780.0),
    (111, 0.13498, 2.5e-6), (321, 0.49368, 371.0), (310, 0.49761, 2.68), (221, 0.54786, 1.5e-7),
    (113, 0.77526, 1e-13), (313, 0.89555, 1e-13), (333, 1.01946, 4.6e-12), (421, 1.86484, 0.0123),
    (411, 1.86966, 0.0312), (413, 2.01026, 1e-11), (443, 3.0969, 2e-10),
])
#: Whether each particle of :data:`_MENU` has a distinct antiparticle (photon, pi0, K_S0, eta,
#: rho0, phi and J/psi are their own).
_HAS_ANTI = pdg_to_token(-_MENU[:, 0].astype(np.int64)) != 0
#: (PDG id, mass GeV, c*tau cm) of the two roots (B0 and anti-B0).
_ROOT = (511, 5.27966, 0.0455)
#: sqrt(s) [GeV] and beta*gamma of the e+e- centre-of-mass frame at Belle II.
_E_CM, _BETA_GAMMA = 10.58, 0.287


def _two_body(mass, m1, m2, rng):
    """Daughter four-momenta (2, 4) = (E, px, py, pz) of an isotropic decay at rest [GeV]."""
    p = np.sqrt(max((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2), 0.0)) / (2 * mass)
    cos_t, phi = rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
    sin_t = np.sqrt(1 - cos_t**2)
    direction = np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
    return np.array([[np.hypot(p, m1), *(p * direction)], [np.hypot(p, m2), *(-p * direction)]])


def _decay(mass, daughter_masses, rng):
    """Daughter four-momenta (n, 4) of a decay at rest into n = 2 or 3 bodies [GeV].

    Three-body decays go through an intermediate state of uniformly drawn invariant mass.
    """
    if len(daughter_masses) == 2:
        return _two_body(mass, *daughter_masses, rng)
    m1, m2, m3 = daughter_masses
    m23 = rng.uniform(m2 + m3, mass - m1)
    first, pair = _two_body(mass, m1, m23, rng)
    return np.concatenate([first[None], boost(_two_body(m23, m2, m3, rng), pair[1:] / pair[0])])


def boost(p4, beta):
    """Boost four-momenta ``p4`` (..., 4) = (E, px, py, pz) by velocity ``beta`` (3,) [c]."""
    beta = np.asarray(beta, dtype=np.float64)
    b2 = float(beta @ beta)
    if b2 == 0.0:
        return p4.copy()
    gamma = 1.0 / np.sqrt(1.0 - b2)
    e, p = p4[..., 0], p4[..., 1:]
    bp = p @ beta
    e_new = gamma * (e + bp)
    p_new = p + ((gamma - 1.0) * bp / b2 + gamma * e)[..., None] * beta
    return np.concatenate([e_new[..., None], p_new], axis=-1)


def _event(rng, target):
    """One event: pdg (n,), mother (n,), vertex (n, 4) (t ns, x, y, z cm), p4 (n, 4) [GeV]."""
    beam = np.array([0.0, 0.0, _BETA_GAMMA / np.sqrt(1 + _BETA_GAMMA**2)])
    roots = _two_body(_E_CM, _ROOT[1], _ROOT[1], rng)
    pdg, mass, ctau, mother = [_ROOT[0], -_ROOT[0]], [_ROOT[1]] * 2, [_ROOT[2]] * 2, [-1, -1]
    p4 = [boost(r, beam) for r in roots]
    vertex = [np.zeros(4), np.zeros(4)]
    open_ = [0, 1]
    while open_ and len(pdg) + 2 <= target:
        i = open_.pop(rng.integers(len(open_)))
        n_daughters = 3 if len(pdg) + 3 <= target and rng.random() < 0.5 else 2
        allowed = np.nonzero(_MENU[:, 1] < mass[i] / n_daughters)[0]
        if len(allowed) == 0:
            continue
        chosen = rng.choice(allowed, size=n_daughters)
        e, p3 = p4[i][0], p4[i][1:]
        flight = rng.exponential(ctau[i]) if ctau[i] > 0 else 0.0
        decay_at = vertex[i] + flight / mass[i] * np.array([e / C_LIGHT, *p3])
        for k in chosen:
            anti = rng.random() < 0.5  # drawn for every daughter: the other draws do not depend on the sign rule
            pdg.append(int(_MENU[k, 0]) * (-1 if anti and _HAS_ANTI[k] else 1))
            mass.append(_MENU[k, 1])
            ctau.append(_MENU[k, 2])
            mother.append(i)
            vertex.append(decay_at)
            open_.append(len(pdg) - 1)
        p4 += [boost(d, p3 / e) for d in _decay(mass[i], _MENU[chosen, 1], rng)]
    return np.array(pdg), np.array(mother), np.array(vertex), np.array(p4)


def decay_trees(n_events, *, num_particles=40, num_skims=1, num_event_types=7, seed=0):
    """Kinematically consistent random decay trees.

    Each event starts from two B0-like roots (``pdg`` 511 and -511) back to back in the e+e-
    centre-of-mass frame (sqrt(s) = 10.58 GeV), boosted along z with beta*gamma = 0.287 as at
    Belle II, both produced at the origin; particles are then decayed into two or three bodies
    (drawn from a fixed menu of common hadrons and leptons, particle or antiparticle with equal
    odds; self-conjugate ones such as the photon and the pi0 are always themselves, so every PDG id
    is in the vocabulary), isotropically in the mother's rest frame, until the event has its
    target size or nothing can decay. A mother flies an
    exponentially distributed distance (its c*tau) before decaying; its daughters are produced
    there. Daughters always come after their mother; no particle is ``initial``.

    Args:
        n_events: number of events.
        num_particles: target particles per event; each event draws its size uniformly from
            [num_particles // 2, 3 * num_particles // 2] and stops earlier when nothing can decay.
        num_skims: number of label columns, named ``skim_0``, ``skim_1`` ... (random, more often
            1 for larger events).
        num_event_types: 1 to 7; event types are drawn uniformly from the first
            ``num_event_types`` Belle II types (:data:`~smartbkg.data.table.EVENT_TYPES`).
        seed: the same seed gives the same table.

    Returns:
        :class:`EventTable` (GeV, cm, ns; float32 four-momenta on shell to float32 precision),
        without weights.
    """
    if not 1 <= num_event_types <= len(EVENT_TYPES):
        raise ConfigError(f"num_event_types must be 1 to {len(EVENT_TYPES)}, got {num_event_types}")
    rng = np.random.default_rng(seed)
    events, labels, event_type = [], [], []
    for _ in range(n_events):
        target = int(rng.integers(max(num_particles // 2, 3), 3 * num_particles // 2 + 1))
        pdg, mother, vertex, p4 = _event(rng, target)
        events.append({"pdg": pdg, "mother": mother, "prodTime": vertex[:, 0], "x": vertex[:, 1],
                       "y": vertex[:, 2], "z": vertex[:, 3], "energy": p4[:, 0], "px": p4[:, 1],
                       "py": p4[:, 2], "pz": p4[:, 3]})
        labels.append(rng.random(num_skims) < 0.2 + 0.6 * len(pdg) / (1.5 * num_particles))
        event_type.append(rng.integers(num_event_types))
    return EventTable.from_events(events, np.reshape(labels, (n_events, num_skims)),
                                  tuple(f"skim_{k}" for k in range(num_skims)), event_type)
