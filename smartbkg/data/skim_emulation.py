"""Generator-level skim emulation: the skims on an ideal detector, as event features.

The skims are deterministic functions of the reconstructed event, and the fast detector is
random around the generator record: acceptance cuts, efficiencies, resolution and particle
identification. Most of what decides whether an event can pass a skim is therefore already
in the record, but hard for a network to compute from particles alone (a thrust axis, a
combination of four tracks with a D mass window, a pi0 veto). This module computes it once per
event: it runs :func:`~smartbkg.simulation.detector.reconstruct` with :data:`IDEAL_DETECTOR`
(the nominal acceptance, thresholds, impact-parameter cuts and in-flight decays, but perfect
resolution, efficiency and particle identification) and the skims of
:mod:`smartbkg.simulation.skims` on the result, and returns the decisions and the skim
variables closest to their cuts as :data:`FEATURES`.

The exclusive skims (``hadronic_b``, ``semileptonic_b``, ``charm_dstar``) also get the expected
number of passing candidates (:func:`expected_candidates`): every track enters the candidate
lists once per particle-identification hypothesis it can be given (the nominal confusion
matrices, hypotheses of probability >= 1 %, energy from the hypothesis mass), and every passing
candidate counts with the probability that the nominal detector reconstructs all of its tracks
and photons and identifies each track as that hypothesis. This covers the events that pass only
through a misidentified track (a pion taken for a kaon or a muon), which an ideal
reconstruction cannot see, and ranks the ideal candidates by how likely they survive
(soft tracks, many daughters). Resolution effects are not in it, and the in-flight decays
(K_S0, hyperons) are those of the ideal reconstruction, drawn once.
:func:`expected_candidates_over_decays` also takes the expectation over those decays (the flight
length exactly, the modes and angles over several draws); measured in the skim-emulation guide,
it adds little information for several times the cost, so the features do not use it.
For ``hadronic_b`` and ``charm_dstar`` (:data:`SMEARED_SKIMS`) the features also hold
:func:`expected_candidates_smeared`, the same count averaged over the momentum and energy
resolution and the in-flight decays: their narrow windows (the pi0 mass, the D*-D0 mass
difference, Mbc and DeltaE) make a candidate near an edge pass or fail with the smearing.

The ``radiative`` skim gets the probability that the nominal detector passes it
(:func:`radiative_probability`): its randomness is mostly in the decays the detector model
performs (how a hard pi0 shares its energy between its photons, whether a K_S0 gives pi0s), which
it averages over :data:`RADIATIVE_DRAWS` draws, with the photon efficiency and energy resolution
and the track efficiencies as probabilities.

Nothing here uses the detector's randomness that makes the labels: the ideal reconstruction has
no resolution, inefficiency or misidentification, the expected counts use the nominal
efficiencies and identification probabilities as numbers (never random draws), and the decays
the detector model performs (K_S0 and hyperons in flight, pi0 -> gamma gamma) are drawn with
their own seed (:data:`EMULATION_SEED`), independent of any production seed.
The features are a deterministic function of the generator record (and of the event
identifier, through those decays), so a filter can compute them for every generated event
before any simulation, as the network's input. They need the full generator record in the
lab frame (the Belle II preprocessing keeps every visible final-state particle) and assume the
Belle II beams and acceptance.

Cost: about 1.5 ms per event on one CPU core (20000 embedded events): 0.28 ms the radiative
probability, about 1 ms the smeared counts (0.36 ms of it finding the events with a candidate in
the loose windows, most of the rest hadronic_b's 64 draws), most of the rest the candidate
combinatorics with all hypotheses.
"""

from dataclasses import replace

import numpy as np
from scipy.special import ndtr

from ..simulation.beams import Beams, transform
from ..simulation.candidates import Candidates, combine
from ..simulation.detector import (SPECIES, SPECIES_MASS, DetectorConfig, Reconstruction, ecl_resolution,
                                   final_state_mask, identification_probabilities, reconstruct, track_efficiency)
from ..simulation.skims import (CANDIDATE_FUNCTIONS, RADIATIVE_MIN_TRACKS, RADIATIVE_PHOTON_E, SKIM_FUNCTIONS, SKIMS,
                                WINDOWS, SkimInput, Windows, thrust_hemispheres)
from .preprocess import PreprocessConfig

#: Seed of the decays the emulation draws (in flight, and pi0 -> gamma gamma; a stream of its own).
EMULATION_SEED = 0x5EED_E3A7
_IDENTITY = tuple(map(tuple, np.eye(len(SPECIES))))
#: The fast detector with its acceptance but no resolution, inefficiency or misidentification.
IDEAL_DETECTOR = replace(DetectorConfig(), track_efficiency=1.0, track_pt_turn_on=1e-9, pt_resolution_a=0.0,
                         pt_resolution_b=0.0, pid_low=_IDENTITY, pid_high=_IDENTITY, photon_efficiency=1.0,
                         ecl_a=0.0, ecl_b=0.0, ecl_c=0.0)

_NOMINAL = DetectorConfig()
#: The ideal detector with the nominal momentum and energy resolution.
SMEARING_DETECTOR = replace(IDEAL_DETECTOR, pt_resolution_a=_NOMINAL.pt_resolution_a,
                            pt_resolution_b=_NOMINAL.pt_resolution_b, ecl_a=_NOMINAL.ecl_a, ecl_b=_NOMINAL.ecl_b,
                            ecl_c=_NOMINAL.ecl_c)
#: Windows wider than the skims' by about four standard deviations of the resolution of a
#: typical candidate: those the smearing can bring inside.
LOOSE_WINDOWS = Windows(pi0=(0.100, 0.165), d0_kpi=0.045, d0_kpipi0=0.075, d0_kpipipi=0.045, dplus=0.045,
                        dstar=(0.139, 0.152), rho=0.20, mbc=5.25, delta_e=0.20)
#: Draws of :func:`expected_candidates_smeared` for each skim it is computed for: hadronic_b's
#: count converges slowly (its near misses pass in few draws; skim-emulation guide).
SMEARED_DRAWS = {"hadronic_b": 64, "charm_dstar": 16}
#: The skims of :func:`expected_candidates_smeared` in the features, in column order.
SMEARED_SKIMS = tuple(SMEARED_DRAWS)
#: Hypotheses the expected candidate counts give a track: those of the skims' particle lists.
HYPOTHESES = ("e", "mu", "pi", "K")
#: Smallest probability of a track with a hypothesis (identification probability times the
#: probability that it comes from the interaction point) that enters the candidate lists.
MIN_TRACK_PROBABILITY = 0.01
#: Added to an expected candidate count before its logarithm (the feature's floor).
EXPECTED_FLOOR = 1e-6
#: Scale of the expected-candidate features: log10(EXPECTED_FLOOR + n) / EXPECTED_SCALE.
EXPECTED_SCALE = 6.0
#: Draws of the pi0 and in-flight decays over which :func:`radiative_probability` averages.
RADIATIVE_DRAWS = 128
#: Particles (abs PDG id) that are or decay into photons in the detector model: photon, pi0,
#: K_S0, Lambda, Sigma+, Xi-, Xi0, Omega-.
PHOTON_SOURCES = (22, 111, 310, 3122, 3222, 3312, 3322, 3334)
#: Smallest CM energy [GeV] of a photon source that can give the radiative skim's photon: the
#: window's lower edge less five standard deviations of the ECL resolution there.
RADIATIVE_SOURCE_MIN_E = 1.65

#: Feature names, in column order; each is divided by a scale (energies and momenta in the CM
#: frame over the beam energy E*_beam = 5.29 GeV, the visible energy over sqrt(s), the hemisphere
#: mass over 2 GeV, counts over 10, log10 of the expected candidates over 6).
FEATURES = (
    *(f"pass_{skim}" for skim in SKIMS),  # the skim's decision on the ideal reconstruction (0/1)
    "n_tracks",            # tracks of the ideal detector
    "expected_tracks",     # their summed nominal efficiency (pT turn-on and 97 % plateau)
    "soft_tracks",         # tracks with pT < 0.2 GeV (in the efficiency turn-on)
    "n_photons",           # photons above the ECL thresholds
    "visible_energy",      # E*_vis of tracks and photons
    "thrust",              # thrust of tracks and photons (events with at most 10 tracks; else 0)
    "min_hemisphere_tracks",  # fewer tracks of the two thrust hemispheres (same events; else 0)
    "max_hemisphere_mass",    # larger invariant mass of the two hemispheres (same events; else 0)
    "leading_track_p",     # largest track p*
    "leading_lepton_p",    # largest p* of an electron or muon
    "hard_leptons",        # electrons and muons with p* > 2 GeV
    "hard_hadrons",        # other tracks with p* > 2 GeV (candidates for a misidentified lepton)
    "leading_barrel_photon_e",    # largest E* of a photon in the barrel ECL (32.2-128.7 deg)
    "leading_isolated_photon_e",  # the same among photons that form no pi0 candidate
    # log10(EXPECTED_FLOOR + expected number of passing candidates), see expected_candidates
    *(f"expected_{skim}" for skim in CANDIDATE_FUNCTIONS),
    # the same, also over the resolution and the in-flight decays, see expected_candidates_smeared
    *(f"smeared_{skim}" for skim in SMEARED_SKIMS),
    # log10(EXPECTED_FLOOR + probability that the nominal detector passes radiative), see
    # radiative_probability
    "probability_radiative",
)
#: Scale of the energy and momentum features [GeV]: E*_beam.
ENERGY_SCALE = 5.29
_SCALES = np.array([1.0] * len(SKIMS) + [10.0, 10.0, 10.0, 10.0, 2 * ENERGY_SCALE, 1.0, 10.0, 2.0] + [ENERGY_SCALE] * 2
                   + [10.0] * 2 + [ENERGY_SCALE] * 2 + [EXPECTED_SCALE] * (len(CANDIDATE_FUNCTIONS) + len(SMEARED_SKIMS) + 1))
#: Events handled at once (bounds the memory of the candidate combinatorics).
CHUNK_EVENTS = 10_000
#: Largest number of ideal tracks for which the thrust is computed (the tau topology).
THRUST_MAX_TRACKS = 10


def skim_emulation(table, beams=Beams()):
    """The :data:`FEATURES` of every event of a table.

    Args:
        table: :class:`~smartbkg.data.table.EventTable`, lab frame, GeV, cm, ns; the raw
            generator record or its Belle II preprocessing (either gives the same features).
        beams: :class:`~smartbkg.simulation.beams.Beams` of the CM frame.

    Returns:
        (n_events, len(FEATURES)) float32, each column divided by its scale (order one).
    """
    out = np.zeros((len(table), len(FEATURES)), dtype=np.float32)
    for start in range(0, len(table), CHUNK_EVENTS):
        rows = slice(start, min(start + CHUNK_EVENTS, len(table)))
        out[rows] = _features(table.take(np.arange(rows.start, rows.stop)), beams) / _SCALES
    return out


def final_state_table(table, vertex_cut=PreprocessConfig().vertex_cut):
    """The final-state particles of every event (roots, in record order), nothing else.

    Only those produced inside the box abs(x), abs(y), abs(z) < ``vertex_cut`` cm of the
    default preprocessing count, so that a raw record and its preprocessing give the same table
    (and the in-flight decays, addressed by a particle's position, the same random numbers).
    """
    p = table.particles
    keep = final_state_mask(table)
    if vertex_cut is not None:
        keep &= (np.abs(p["x"]) < vertex_cut) & (np.abs(p["y"]) < vertex_cut) & (np.abs(p["z"]) < vertex_cut)
    rows = np.flatnonzero(keep)
    offsets = np.zeros(len(table) + 1, dtype=np.int64)
    np.cumsum(np.bincount(table.event_index()[rows], minlength=len(table)), out=offsets[1:])
    particles = {name: values[rows] for name, values in p.items()}
    particles["mother"] = np.full(len(rows), -1, dtype=p["mother"].dtype)
    return table.replace(offsets=offsets, particles=particles)


def _features(table, beams):
    """(n_events, len(FEATURES)) unscaled features of a table."""
    final_state = final_state_table(table)
    with np.errstate(over="ignore"):  # exp of the (unused) turn-on below the pT threshold
        reco = reconstruct(final_state, EMULATION_SEED, IDEAL_DETECTOR)
    s = SkimInput(reco, beams)
    n = s.n
    track_p = np.linalg.norm(s.track_p4[:, 1:], axis=1)
    pt = np.hypot(reco.tracks["px"], reco.tracks["py"])
    efficiency = track_efficiency(pt, DetectorConfig())
    lepton = np.isin(s.pid, [SPECIES.index("e"), SPECIES.index("mu")])
    e_photon, barrel = s.photon_p4[:, 0], s.photon_in_barrel
    thrust_value, tracks_per_side, hemisphere_mass = thrust_hemispheres(s, s.n_tracks <= THRUST_MAX_TRACKS)

    def count(event_of, mask):
        return np.bincount(event_of[mask], minlength=n)

    def largest(event_of, values, mask):
        best = np.zeros(n)
        np.maximum.at(best, event_of[mask], values[mask])
        return best

    columns = [SKIM_FUNCTIONS[skim](s) for skim in SKIMS] + [
        s.n_tracks,
        np.bincount(s.track_event, weights=efficiency, minlength=n),
        count(s.track_event, pt < 0.2),
        reco.n_photons,
        s.visible_energy,
        thrust_value,
        tracks_per_side.min(axis=1),
        hemisphere_mass.max(axis=1),
        largest(s.track_event, track_p, np.ones(len(track_p), dtype=bool)),
        largest(s.track_event, track_p, lepton),
        count(s.track_event, lepton & (track_p > 2.0)),
        count(s.track_event, ~lepton & (track_p > 2.0)),
        largest(s.photon_event, e_photon, barrel),
        largest(s.photon_event, e_photon, barrel & ~s.photon_in_pi0),
        *np.log10(EXPECTED_FLOOR + expected_candidates(reco, beams)).T,
        *np.log10(EXPECTED_FLOOR + expected_candidates_smeared(final_state, beams)).T,
        np.log10(EXPECTED_FLOOR + radiative_probability(final_state, beams)),
    ]
    return np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)


def expected_candidates(reco, beams, config=DetectorConfig(), windows=WINDOWS, skims=tuple(CANDIDATE_FUNCTIONS)):
    """Expected number of passing candidates of each exclusive skim on the nominal detector.

    Args:
        reco: :class:`~smartbkg.simulation.detector.Reconstruction` of the ideal detector
            (every accepted track and photon, true identification), optionally with the track
            column ``ip_probability`` (``reconstruct(..., expected_flight=True)``), the
            probability that an in-flight decay product comes from the interaction point, which
            then weights its track (tracks below :data:`MIN_TRACK_PROBABILITY` are left out).
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        config: the nominal :class:`~smartbkg.simulation.detector.DetectorConfig` whose track
            efficiency, identification matrices and photon efficiency weight the candidates.
        windows: :class:`~smartbkg.simulation.skims.Windows` of the candidates (default the skims').
        skims: the exclusive skims (keys of ``CANDIDATE_FUNCTIONS``), in column order.

    Returns:
        (n_events, len(skims)) float64: the sum over passing candidates (built
        with every hypothesis of every track, no track used twice) of the product of their
        tracks' efficiency times identification probability (times ``ip_probability``) and
        their photons' efficiency.
    """
    t = reco.tracks
    pt = np.hypot(t["px"], t["py"])
    p = np.hypot(pt, t["pz"])
    species = t["true_species"].astype(np.int64)
    from_ip = t.get("ip_probability", np.ones(len(pt)))
    probability = identification_probabilities(p, species, config) * from_ip[:, None]
    hypotheses = [SPECIES.index(h) for h in HYPOTHESES]
    track, column = np.nonzero(probability[:, hypotheses] >= MIN_TRACK_PROBABILITY)
    hypothesis = np.asarray(hypotheses)[column]
    tracks = {"px": t["px"][track], "py": t["py"][track], "pz": t["pz"][track],
              "e": np.hypot(p[track], SPECIES_MASS[hypothesis]), "charge": t["charge"][track],
              "pid": hypothesis.astype(np.int8), "track": track}
    track_event = np.repeat(np.arange(reco.n_events), reco.n_tracks)[track]
    photon_event = np.repeat(np.arange(reco.n_events), reco.n_photons)
    expanded = Reconstruction.from_objects(reco.n_events, tracks, track_event, reco.photons, photon_event)
    track = expanded.tracks["track"]
    efficiency = np.maximum(track_efficiency(pt[track], config), 0.0)  # 0 at (or, smeared, below) the threshold
    with np.errstate(divide="ignore"):
        log_weight = np.log(efficiency * probability[track, expanded.tracks["pid"]])
    photon_log_weight = np.full(len(reco.photons["e"]), np.log(config.photon_efficiency))
    s = SkimInput(expanded, beams, track_id=track, track_log_weight=log_weight, photon_log_weight=photon_log_weight,
                  windows=windows)
    counts = []
    for skim in skims:
        c = CANDIDATE_FUNCTIONS[skim](s)
        counts.append(np.bincount(c.event, weights=np.exp(c.log_weight), minlength=s.n))
    return np.stack(counts, axis=1).reshape(s.n, len(skims))


def expected_candidates_over_decays(table, draws, beams=Beams()):
    """Expected passing candidates of each exclusive skim, also over the in-flight decays.

    :func:`expected_candidates` on ``draws`` ideal reconstructions with
    ``expected_flight=True`` (seeds :data:`EMULATION_SEED` + 0, 1, ...), averaged: exact over
    the flight lengths (two products of one decay count as independent), a Monte Carlo average
    over the decay modes and angles.

    Args:
        table: :class:`~smartbkg.data.table.EventTable` as for :func:`skim_emulation`.
        draws: number of draws of the in-flight decays (>= 1).
        beams: :class:`~smartbkg.simulation.beams.Beams`.

    Returns:
        (n_events, len(CANDIDATE_FUNCTIONS)) float64.
    """
    return _mean_over_draws(final_state_table(table), draws, IDEAL_DETECTOR, beams, tuple(CANDIDATE_FUNCTIONS))


def _mean_over_draws(final_state, draws, detector, beams, skims):
    """(n_events, len(skims)) mean of :func:`expected_candidates` over ``draws`` reconstructions
    by ``detector`` with ``expected_flight=True`` (seeds :data:`EMULATION_SEED` + 0, 1, ...)."""
    total = np.zeros((len(final_state), len(skims)))
    for draw in range(draws):
        with np.errstate(over="ignore"):  # exp of the (unused) turn-on below the pT threshold
            reco = reconstruct(final_state, EMULATION_SEED + draw, detector, expected_flight=True)
        total += expected_candidates(reco, beams, skims=skims)
    return total / draws


def expected_candidates_smeared(final_state, beams, draws=SMEARED_DRAWS):
    """Expected passing candidates of exclusive skims, also over the resolution and the decays.

    The events with a candidate of a skim in :data:`LOOSE_WINDOWS` (:func:`expected_candidates`
    of the ideal reconstruction with ``expected_flight=True``) get the skim's mean of
    :func:`expected_candidates` over its number of reconstructions by :data:`SMEARING_DETECTOR`
    (seeds :data:`EMULATION_SEED` + 0, 1, ...; ``expected_flight=True``): a Monte Carlo average
    over the momentum and energy resolution and the in-flight decay modes and angles, exact over
    the flight lengths. So a candidate near a window's edge counts with the chance that it stays
    inside, and one just outside with the chance that the smearing brings it in. The others get 0
    (their candidates would need shifts of about four standard deviations, or another decay mode
    of a K_S0 or hyperon than the ideal reconstruction's).

    Args:
        final_state: :func:`final_state_table` of the events (lab frame, GeV).
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        draws: {exclusive skim: number of draws (>= 1)}, the skims in column order.

    Returns:
        (n_events, len(draws)) float64.
    """
    skims = tuple(draws)
    with np.errstate(over="ignore"):  # exp of the (unused) turn-on below the pT threshold
        ideal = reconstruct(final_state, EMULATION_SEED, IDEAL_DETECTOR, expected_flight=True)
    near = expected_candidates(ideal, beams, windows=LOOSE_WINDOWS, skims=skims) > 0
    out = np.zeros((len(final_state), len(skims)))
    for j, skim in enumerate(skims):
        events = np.flatnonzero(near[:, j])
        if len(events):
            out[events, j] = _mean_over_draws(final_state.take(events), draws[skim], SMEARING_DETECTOR, beams,
                                              (skim,))[:, 0]
    return out


def radiative_probability(final_state, beams, draws=RADIATIVE_DRAWS, config=DetectorConfig()):
    """Probability that the nominal detector's event passes the ``radiative`` skim.

    The skim's randomness given the record is mostly in the decays the detector model performs:
    which way a hard pi0 shares its energy between its photons (a hard photon whose partner is
    soft, outside the ECL or smeared out of the pi0 mass window escapes the veto), and whether a
    hard K_S0 or hyperon gives pi0s. These are averaged over ``draws`` ideal reconstructions
    (seeds :data:`EMULATION_SEED` + 0, 1, ...), only for the events with a photon source
    (:data:`PHOTON_SOURCES`) above :data:`RADIATIVE_SOURCE_MIN_E` (the others cannot pass: 0).
    Per draw the detector enters as probabilities: a barrel photon of E* passes with efficiency
    times P(window lower < E* s < window upper), s = 1 + sigma(E) z (:func:`ecl_resolution`),
    times the product over the other photons j of 1 - efficiency * P(the pair's mass m s_ij falls
    in the pi0 window of :data:`~smartbkg.simulation.skims.WINDOWS`), with s_ij ~ N(1, sqrt(sigma_i^2 + sigma_j^2) / 2); the event
    passes if any photon does (photons independent) and at least :data:`RADIATIVE_MIN_TRACKS`
    tracks are found (:func:`probability_at_least` of the tracks' efficiencies). Neglected: the
    correlation of a photon's smearing between its window and its pairs, photons smeared across
    the ECL thresholds.

    Args:
        final_state: :func:`final_state_table` of the events (lab frame, GeV).
        beams: :class:`~smartbkg.simulation.beams.Beams`.
        draws: number of draws of the decays (>= 1).
        config: the nominal :class:`~smartbkg.simulation.detector.DetectorConfig`.

    Returns:
        (n_events,) float64 in [0, 1].
    """
    p = final_state.particles
    energy = transform(beams.lab_to_cm(), p["energy"], p["px"], p["py"], p["pz"])[0]
    source = np.isin(np.abs(p["pdg"]), PHOTON_SOURCES) & (energy > RADIATIVE_SOURCE_MIN_E)
    events = np.unique(final_state.event_index()[source])
    out = np.zeros(len(final_state))
    if len(events):
        sources = final_state.take(events)
        out[events] = np.mean([_radiative_draw(sources, EMULATION_SEED + draw, beams, config)
                               for draw in range(draws)], axis=0)
    return out


def _radiative_draw(final_state, seed, beams, config):
    """(n_events,) :func:`radiative_probability` for one draw of the decays."""
    with np.errstate(over="ignore"):  # exp of the (unused) turn-on below the pT threshold
        reco = reconstruct(final_state, seed, IDEAL_DETECTOR)
    s = SkimInput(reco, beams)
    e_star, sigma = s.photon_p4[:, 0], ecl_resolution(reco.photons["e"], config)
    low, high = RADIATIVE_PHOTON_E
    window = ndtr((high / e_star - 1) / sigma) - ndtr((low / e_star - 1) / sigma)
    hard = np.flatnonzero(s.photon_in_barrel & (window > 0))
    passes = config.photon_efficiency * window[hard]
    pairs, first, second = combine(Candidates.singles(s.photon_event, s.photon_p4, kind="photon", rows=hard),
                                   s.photons, s.n, return_index=True)
    mass = pairs.mass
    width = 0.5 * np.hypot(sigma[hard[first]], sigma[s.photons.photons[second, 0]]) * np.maximum(mass, 1e-12)
    in_window = ndtr((WINDOWS.pi0[1] - mass) / width) - ndtr((WINDOWS.pi0[0] - mass) / width)
    np.multiply.at(passes, first, 1.0 - config.photon_efficiency * in_window)
    none = np.ones(s.n)
    np.multiply.at(none, s.photon_event[hard], 1.0 - passes)
    pt = np.hypot(reco.tracks["px"], reco.tracks["py"])
    tracks = probability_at_least(s.track_event, track_efficiency(pt, config), s.n, RADIATIVE_MIN_TRACKS)
    return (1.0 - none) * tracks


def probability_at_least(event, probability, n_events, k):
    """Probability of at least k successes per event among independent trials (Poisson binomial).

    Args:
        event: (n,) event of every trial, sorted.
        probability: (n,) success probability of every trial.
        n_events: number of events.
        k: successes needed (>= 1).

    Returns:
        (n_events,) float64.
    """
    rank = np.arange(len(event)) - np.searchsorted(event, event)
    below = np.zeros((n_events, k))  # P(c successes so far), c = 0 ... k - 1
    below[:, 0] = 1.0
    for r in range(int(rank.max(initial=-1)) + 1):
        at = rank == r
        e, q = event[at], probability[at][:, None]
        state = below[e]
        below[e] = state * (1.0 - q) + np.pad(state[:, :-1], ((0, 0), (1, 0))) * q
    return np.clip(1.0 - below.sum(axis=1), 0.0, 1.0)
