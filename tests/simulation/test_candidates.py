import itertools

import numpy as np
import pytest

from smartbkg.simulation.candidates import Candidates, combine, concat, thrust, within_event_pairs


def random_singles(rng, n_events, kind="track", max_per_event=5):
    counts = rng.integers(0, max_per_event + 1, n_events)
    event = np.repeat(np.arange(n_events), counts)
    p = rng.normal(size=(len(event), 3))
    p4 = np.concatenate([np.linalg.norm(p, axis=1, keepdims=True) + 0.1, p], axis=1)
    charge = rng.choice([-1, 1], len(event))
    return Candidates.singles(event, p4, charge, kind, tag=charge)


def as_set(c):
    return {(int(e), tuple(int(x) for x in t), tuple(int(x) for x in g))
            for e, t, g in zip(c.event, c.tracks, c.photons)}


def test_combine_matches_brute_force():
    rng = np.random.default_rng(0)
    tracks = random_singles(rng, 40)
    photons = random_singles(rng, 40, "photon")
    pairs = combine(tracks, tracks, 40)
    expected = {(int(e), (int(i), int(j)), ()) for e in range(40)
                for i, j in itertools.permutations(np.flatnonzero(tracks.event == e), 2)}
    assert as_set(pairs) == expected and len(pairs) == len(expected)
    unordered = combine(tracks, tracks, 40, same=True)
    assert {(e, tuple(sorted(t)), g) for e, t, g in as_set(unordered)} == {(e, tuple(sorted(t)), g) for e, t, g in expected}
    assert len(unordered) == len(expected) // 2
    # Three objects, two kinds: no track used twice, every photon combined with every pair.
    triples, ia, ib = combine(unordered, photons, 40, return_index=True)
    assert len(triples) == sum(np.sum(unordered.event == e) * np.sum(photons.event == e) for e in range(40))
    np.testing.assert_allclose(triples.p4, unordered.p4[ia] + photons.p4[ib])
    np.testing.assert_array_equal(triples.charge, unordered.charge[ia] + photons.charge[ib])
    assert (np.diff(triples.event) >= 0).all()
    quads = combine(unordered, unordered, 40)
    assert all(len(set(t)) == 4 for t in quads.tracks.tolist())


def test_combine_within_a_window_is_the_cut_on_all_pairs():
    """The sorted search keeps exactly the pairs that the cut low < value < high keeps of all
    pairs, in event order, also with empty events, values at the bounds and bounds beyond the range."""
    rng = np.random.default_rng(3)
    a, b = random_singles(rng, 60), random_singles(rng, 60, "photon")
    value = np.round(b.p4[:, 0], 1)  # ties with the bounds
    low = np.round(rng.uniform(-1, 4, len(a)), 1)
    high = low + rng.choice([0.0, 0.3, 1.0, 10.0], len(a))
    every, ia, ib = combine(a, b, 60, return_index=True)
    cut = every.take((low[ia] < value[ib]) & (value[ib] < high[ia]))
    within, ja, jb = combine(a, b, 60, return_index=True, window=(value, low, high))
    assert as_set(within) == as_set(cut) and len(within) == len(cut) > 20
    assert np.all((low[ja] < value[jb]) & (value[jb] < high[ja])) and (np.diff(within.event) >= 0).all()
    empty = a.take(np.zeros(len(a), dtype=bool))
    assert len(combine(empty, b, 60, window=(value, low[:0], high[:0]))) == 0


def test_concat_pads_and_keeps_event_order():
    rng = np.random.default_rng(1)
    singles = random_singles(rng, 10)
    pairs = combine(singles, singles, 10, same=True)
    merged = concat([pairs, singles])
    assert merged.tracks.shape[1] == 2 and len(merged) == len(pairs) + len(singles)
    assert (np.diff(merged.event) >= 0).all()
    assert (merged.tracks[:, 1] == -1).sum() == len(singles)
    # Padding never counts as a shared object.
    again = combine(merged, singles, 10)
    assert len(again) == sum(np.sum(merged.event == e) * np.sum(singles.event == e) for e in range(10)) - \
        sum(int(np.isin(singles.tracks[:, 0], t[t >= 0]).sum()) for t in merged.tracks)


def test_object_ids_and_log_weights():
    """Rows with one object id (two hypotheses of one track) never combine; log weights add up."""
    event = np.array([0, 0, 0, 1])
    p4 = np.tile([1.0, 0.1, 0.2, 0.3], (4, 1))
    object_id = np.array([7, 7, 8, 9])  # rows 0 and 1 are the same track
    log_weight = np.log([0.5, 0.25, 0.1, 0.9])
    singles = Candidates.singles(event, p4, object_id=object_id, log_weight=log_weight)
    np.testing.assert_array_equal(singles.tracks[:, 0], object_id)
    pairs = combine(singles, singles, 2, same=True)
    assert sorted(map(tuple, pairs.tracks.tolist())) == [(7, 8), (7, 8)]
    np.testing.assert_allclose(np.sort(np.exp(pairs.log_weight)), [0.025, 0.05])
    merged = concat([pairs, singles])
    np.testing.assert_allclose(np.exp(merged.log_weight).sum(), 0.075 + 1.75)
    np.testing.assert_allclose(merged.take(merged.event == 1).log_weight, [np.log(0.9)])
    assert np.all(Candidates.singles(event, p4).log_weight == 0)


def test_within_event_pairs():
    i, j = within_event_pairs(np.array([0, 2, 2, 5]))
    assert list(zip(i.tolist(), j.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)] + \
        [(a, b) for a in (2, 3, 4) for b in (2, 3, 4)]


def exact_thrust(p):
    best = 0.0
    for signs in itertools.product((-1, 1), repeat=len(p) - 1):
        s = np.array((1,) + signs)
        best = max(best, np.linalg.norm((s[:, None] * p).sum(0)))
    return best / np.linalg.norm(p, axis=1).sum()


def test_thrust():
    rng = np.random.default_rng(2)
    events, momenta, exact, jetty = [], [], [], []
    for e in range(60):
        n = int(rng.integers(2, 9))
        two_jets = e % 2 == 0
        if two_jets:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            p = np.outer(rng.choice([-1, 1], n) * rng.uniform(0.5, 2, n), axis) + 0.15 * rng.normal(size=(n, 3))
        else:
            p = rng.normal(size=(n, 3))
        events += [e] * n
        momenta.append(p)
        exact.append(exact_thrust(p))
        jetty.append(two_jets)
    value, axis = thrust(np.array(events), np.concatenate(momenta), 61)
    exact, jetty = np.array(exact), np.array(jetty)
    assert (value[:60] <= exact + 1e-12).all()
    np.testing.assert_allclose(value[:60][jetty], exact[jetty], rtol=0.01)
    assert value[60] == 0 and (axis[60] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(axis[:60], axis=1), 1.0)
    # Back to back: T = 1 along the pair.
    v, a = thrust(np.array([0, 0]), np.array([[0.0, 3, 0], [0, -2, 0]]), 1)
    assert v[0] == pytest.approx(1.0) and abs(a[0, 1]) == pytest.approx(1.0)
