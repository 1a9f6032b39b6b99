"""Turn Pythia event records into Belle II-like generator records (vectorised over many events).

Pythia's record holds bookkeeping entries that a Belle II generator record does not have:
the system line (id 90, entry 0), carbon copies of one particle (the incoming beams copied as
the hard-process partons, partons copied after each shower recoil or before hadronization,
resonances copied after recoils), generator pseudo-particles (ids 81-100: strings 92, clusters
91, ...) and diquarks. :func:`collapse_record` keeps each physical particle once, so that
four-momentum and charge are conserved at every decay vertex:

* a chain of carbon copies (an entry whose only mother has it as its only daughter and the
  same id) becomes one particle, at the position of the first copy, with the production
  vertex of the first copy and the four-momentum of the last;
* final-state shower branchings (QCD and QED, Pythia status 51): the radiator after the
  branching (the first product, same id) continues the radiator's chain, and the emitted
  gluons and photons become siblings of the radiator, daughters of what it came from (the
  virtual photon, or a decaying hadron such as J/psi -> g g g). In reality an FSR photon of
  e+e- -> tau+ tau- is emitted in the production, not by the tau: the tau then decays with
  its momentum after the emission, and the virtual photon's daughters (fermions and FSR
  photons, gluons) sum to its four-momentum. A branching without a continuation
  (g -> q qbar, gamma -> f+ f-) ends its particle: it is removed and its products take its
  place among the siblings;
* partons prepared for hadronization (statuses 71-79: copies, nearby partons merged into one,
  momenta shuffled by a mini-string's recoil) are part of the chain of their first mother of
  the same id and do not change its four-momentum (the one at the end of the shower);
* pseudo-particles and diquarks are removed;
* every kept particle gets one mother: its Pythia ``mother1`` (an emission: the mother of the
  particle it came from) resolved to the kept particle it stands for (the first copy of a
  chain, or the nearest kept ancestor of a removed entry); particles without one are roots
  (-1). Hadrons from a string therefore hang under the first parton of their string (a string
  joins several partons, so no parton -> hadrons vertex can conserve four-momentum);
* B0 / B_s0 mixing: Pythia oscillates a neutral B in place (its decay products get status
  92). As in EvtGen records, the oscillated B gets one daughter inserted right after it, the
  anti-particle with the same four-momentum, produced where the B decays (so it has zero
  flight), which carries the decay products.

The beam particles (Pythia status -12) are flagged ``initial``. :func:`align_pair_axis` (for
Upsilon(4S) events) and :func:`to_belle2_lab` then give the lab-frame Belle II record in GeV,
cm, ns, with Pythia's gamma*/Z named ``vpho`` (10022).
"""

import numpy as np

from .beams import SPEED_OF_LIGHT, transform
from .pythia import UPSILON_4S

#: Belle II / EvtGen code of the virtual photon of continuum events ("vpho"); Pythia calls it 23.
VIRTUAL_PHOTON = 10022
#: Pythia fields :func:`collapse_record` reads (flat (n_entries,) arrays; indices local to the event).
PYTHIA_FIELDS = ("id", "status", "mother1", "mother2", "daughter1", "daughter2",
                 "px", "py", "pz", "e", "x", "y", "z", "t")
#: Pythia statuses (absolute values): incoming beam, product of a final-state shower branching,
#: decay product of a B0 / B_s0 that oscillated before it decayed.
_BEAM, _SHOWER_BRANCHING, _OSCILLATED_DECAY = 12, 51, 92
#: Pythia statuses (absolute values) of parton copies prepared for hadronization.
_HADRONIZATION = (71, 79)


def is_pseudo_particle(pdg):
    """(n,) bool: generator-internal ids 81-100 (system, strings, clusters ...) and diquarks."""
    a = np.abs(pdg)
    diquark = (a > 1000) & (a < 6000) & ((a // 10) % 10 == 0)
    return ((a >= 81) & (a <= 100)) | diquark


def _follow(pointer, flag=None):
    """Pointer jumping to the fixed point: each entry ends at the end of its chain (-1 absorbs).

    Args:
        pointer: (n,) int64, the next entry of each entry (itself at the end of a chain, or -1).
        flag: optional (n,) bool, False at the ends of the chains.

    Returns:
        the end of each entry's chain; with ``flag``, also (n,) bool: whether any entry on the
        way (the start included, the end excluded) is flagged.
    """
    while True:
        valid = pointer >= 0
        at = np.maximum(pointer, 0)
        nxt = np.where(valid, pointer[at], -1)
        if np.array_equal(nxt, pointer):
            return pointer if flag is None else (pointer, flag)
        if flag is not None:
            flag = flag | (valid & flag[at])
        pointer = nxt


def collapse_record(offsets, pythia):
    """Collapse Pythia records of many events into one-mother generator records.

    See the module docstring for the rules.

    Args:
        offsets: (n_events + 1,) int64, entries of event i are ``offsets[i]:offsets[i+1]``
            (entry 0 of each event is Pythia's system line).
        pythia: dict of the :data:`PYTHIA_FIELDS`, each (n_entries,): ids, statuses, mother and
            daughter indices (local, 0 = none) and the four-momentum and production vertex
            (units as given; they are passed through).

    Returns:
        (offsets (n_events + 1,) int64 of the particles, dict with ``pdg`` (int32), ``mother``
        (int32, local, -1 for roots), ``initial`` (bool) and the float fields px, py, pz, e
        (last copy) and x, y, z, t (first copy)).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    pid = np.asarray(pythia["id"], dtype=np.int64)
    status = np.abs(np.asarray(pythia["status"], dtype=np.int64))
    n = len(pid)
    counts = np.diff(offsets)
    start = np.repeat(offsets[:-1], counts)
    entry = np.arange(n, dtype=np.int64)
    local = entry - start
    m1 = np.asarray(pythia["mother1"], dtype=np.int64)
    m2 = np.asarray(pythia["mother2"], dtype=np.int64)
    d1 = np.asarray(pythia["daughter1"], dtype=np.int64)
    d2 = np.asarray(pythia["daughter2"], dtype=np.int64)

    mother = np.where(m1 > 0, m1 + start, -1)
    mo = np.maximum(mother, 0)
    same = (mother >= 0) & ((m2 == 0) | (m2 == m1)) & (pid == pid[mo]) & (d1[mo] == local)
    is_copy = same & ((d2[mo] == local) | (d2[mo] == 0))
    # Final-state shower branchings: the radiator after the branching (first product, same id)
    # continues the radiator; the other products are emissions, siblings of the radiator.
    branched = (status == _SHOWER_BRANCHING) & (mother >= 0)
    continues = branched & same
    emitted = branched & ~continues
    # Partons prepared for hadronization (nearby partons merged into one, momenta shuffled by a
    # mini-string's recoil) stay the parton of their first mother of the same id; its
    # four-momentum is the one at the end of the shower.
    hadronization = (status >= _HADRONIZATION[0]) & (status <= _HADRONIZATION[1])
    prepared = hadronization & (mother >= 0) & (pid == pid[mo])
    first = _follow(np.where(is_copy | continues | prepared, mother, entry))
    last = entry.copy()
    np.maximum.at(last, first[~hadronization], entry[~hadronization])
    # An emission's parent is the parent of the particle it came from (pointer jumping through
    # emissions from emissions); everyone else's is its Pythia mother1.
    parent = mother[_follow(np.where(emitted, first[mo], entry))]
    # A branching without a continuation (g -> q qbar, gamma -> f+ f-) ends its particle.
    ends = np.zeros(n, dtype=bool)
    ends[mother[emitted]] = True
    ends[mother[continues]] = False

    removed = (local == 0) | is_pseudo_particle(pid)
    removed[first[ends]] = True
    keep = (first == entry) & ~removed
    # Each entry stands for a kept particle: itself, the first copy of its chain, or (removed
    # entries) whatever their parent stands for. ``behind`` marks entries whose way to it passes
    # through the decay products of an oscillated B (which hang under the inserted anti-B).
    oscillated_product = status == _OSCILLATED_DECAY
    stands_for, behind = _follow(np.where(keep, entry, np.where(first != entry, first, parent)),
                                 oscillated_product & ~keep)
    kept = np.flatnonzero(keep)
    up = parent[kept]
    has_up = up >= 0
    up = np.maximum(up, 0)
    # Under the inserted anti-B: decay products of the oscillated B, and what hangs under it
    # through removed ones (hadrons from the string of a diquark).
    under_flip = oscillated_product[kept] | (has_up & behind[up])

    # Output rows: each kept particle, followed by its anti-particle if it oscillated.
    oscillated = np.zeros(n, dtype=bool)
    oscillated[stands_for[mother[oscillated_product]]] = True
    row = np.zeros(n + 1, dtype=np.int64)                 # first output row of each entry
    np.cumsum(keep * (1 + oscillated), out=row[1:])
    new_offsets = row[offsets]
    n_out = int(new_offsets[-1])
    event_start = np.repeat(new_offsets[:-1], np.diff(new_offsets))
    flipped = kept[oscillated[kept]]                      # the oscillated B entries
    rows = {"kept": row[kept], "flip": row[flipped] + 1}  # and the rows of their anti-particles

    out_mother = np.full(n_out, -1, dtype=np.int64)
    out_mother[rows["kept"]] = np.where(has_up, row[stands_for[up]] + under_flip, -1)
    out_mother[rows["flip"]] = row[flipped]
    pdg = np.empty(n_out, dtype=np.int64)
    pdg[rows["kept"]] = pid[kept]
    pdg[rows["flip"]] = -pid[flipped]
    initial = np.zeros(n_out, dtype=bool)
    initial[rows["kept"]] = status[kept] == _BEAM
    out = {"pdg": pdg.astype(np.int32),
           "mother": np.where(out_mother >= 0, out_mother - event_start, -1).astype(np.int32),
           "initial": initial}
    # The anti-particle has the B's four-momentum and starts where the B decays (where its
    # decay products start).
    decay_vertex = np.zeros(n, dtype=np.int64)
    decay_vertex[stands_for[mother[oscillated_product]]] = entry[oscillated_product]
    for names, source in ((("px", "py", "pz", "e"), {"kept": last[kept], "flip": last[flipped]}),
                          (("x", "y", "z", "t"), {"kept": kept, "flip": decay_vertex[flipped]})):
        for name in names:
            column = np.asarray(pythia[name])
            out[name] = np.empty(n_out, dtype=column.dtype)
            for part in ("kept", "flip"):
                out[name][rows[part]] = column[source[part]]
    return new_offsets, out


def _rotate(vx, vy, vz, k, sin_a, cos_a):
    """Rotate vectors (n,) x3 about unit axes k (n, 3) by angles given as sin and cos (n,) (Rodrigues)."""
    kx, ky, kz = k[:, 0], k[:, 1], k[:, 2]
    dot = kx * vx + ky * vy + kz * vz
    cx, cy, cz = ky * vz - kz * vy, kz * vx - kx * vz, kx * vy - ky * vx
    one_c = 1.0 - cos_a
    return (vx * cos_a + cx * sin_a + kx * dot * one_c,
            vy * cos_a + cy * sin_a + ky * dot * one_c,
            vz * cos_a + cz * sin_a + kz * dot * one_c)


def align_pair_axis(offsets, rec, event_id, rng, parent=UPSILON_4S):
    """Rotate each event so the pair from ``parent`` follows dN/dcos(theta) ~ sin^2(theta).

    e+e- -> Upsilon(4S) -> B Bbar: the Upsilon(4S) is polarised transversely to the beam, so the
    B direction in the CM frame has a sin^2(theta) distribution about the e- beam (z); Pythia
    decays it isotropically. Momenta and vertices of all non-initial particles of an event are
    rotated together (about the origin, the interaction point in the CM frame). Works in place
    on a CM-frame record from :func:`collapse_record`; events without ``parent`` are untouched.

    Args:
        event_id: (n_events,) int64 identifiers addressing the random numbers of ``rng``.
    """
    counts = np.diff(offsets)
    event_of = np.repeat(np.arange(len(counts)), counts)
    start = offsets[:-1][event_of]
    mother = rec["mother"].astype(np.int64)
    has_parent = mother >= 0
    from_parent = has_parent & (rec["pdg"][np.where(has_parent, mother + start, 0)] == parent)
    events, first = np.unique(event_of[from_parent], return_index=True)
    if not len(events):
        return
    b = np.flatnonzero(from_parent)[first]
    u = np.stack([rec["px"][b], rec["py"][b], rec["pz"][b]], axis=1)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    # Inverse CDF of (3/4)(1 - c^2) on [-1, 1].
    cos_t = 2.0 * np.cos(np.arccos(1.0 - 2.0 * rng.uniform("pair-axis/cos", event_id[events])) / 3.0 + 4.0 * np.pi / 3.0)
    phi = 2.0 * np.pi * rng.uniform("pair-axis/phi", event_id[events])
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, 1.0))
    v = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
    axis = np.cross(u, v)
    sin_a = np.linalg.norm(axis, axis=1)
    cos_a = np.einsum("ij,ij->i", u, v)
    axis = np.where(sin_a[:, None] > 1e-12, axis / np.maximum(sin_a, 1e-300)[:, None], [1.0, 0.0, 0.0])
    rows = np.flatnonzero(np.isin(event_of, events) & ~rec["initial"])
    which = np.searchsorted(events, event_of[rows])
    k, s, c = axis[which], sin_a[which], cos_a[which]
    for names in (("px", "py", "pz"), ("x", "y", "z")):
        rotated = _rotate(rec[names[0]][rows], rec[names[1]][rows], rec[names[2]][rows], k, s, c)
        for name, values in zip(names, rotated):
            rec[name][rows] = values


def to_belle2_lab(offsets, rec, beams, event_id, rng):
    """CM-frame collapsed record (GeV, mm, mm/c) -> lab-frame particle columns (GeV, cm, ns).

    Applies the CM -> lab Lorentz transformation of ``beams`` to four-momenta and production
    space-time points, shifts every event by its own beam-spot offset (Gaussian, sizes from
    ``beams``), and renames Pythia's gamma*/Z (23) to the Belle II virtual photon (10022).

    Args:
        offsets: (n_events + 1,) event offsets of ``rec``.
        rec: output of :func:`collapse_record`.
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        event_id: (n_events,) int64 identifiers addressing the random numbers of ``rng``.
        rng: :class:`~smartbkg.simulation.rng.CounterRNG`.

    Returns:
        dict of the :data:`smartbkg.data.table.PARTICLE_DTYPES` fields.
    """
    matrix = beams.cm_to_lab()
    energy, px, py, pz = transform(matrix, rec["e"], rec["px"], rec["py"], rec["pz"])
    ct, x, y, z = transform(matrix, rec["t"], rec["x"], rec["y"], rec["z"])
    counts = np.diff(offsets)
    spot = [np.repeat(sigma * rng.normal(f"beam-spot/{axis}", event_id), counts)
            for axis, sigma in zip("xyz", beams.spot_size)]
    pdg = np.where(rec["pdg"] == 23, VIRTUAL_PHOTON, rec["pdg"]).astype(np.int32)
    return {
        "pdg": pdg,
        "mother": rec["mother"],
        "initial": rec["initial"],
        # mm -> cm; ct [mm] -> t [ns] (c = 299.792458 mm/ns).
        "prodTime": (ct / (10.0 * SPEED_OF_LIGHT)).astype(np.float32),
        "x": (x / 10.0 + spot[0]).astype(np.float32),
        "y": (y / 10.0 + spot[1]).astype(np.float32),
        "z": (z / 10.0 + spot[2]).astype(np.float32),
        "px": px.astype(np.float32),
        "py": py.astype(np.float32),
        "pz": pz.astype(np.float32),
        "energy": energy.astype(np.float32),
    }
