import numpy as np

from smartbkg.simulation.rng import CounterRNG, splitmix64


def test_splitmix64_known_values():
    # The first two outputs of the SplitMix64 generator seeded with 0 (published reference values).
    assert int(splitmix64(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF
    golden = np.array([0x9E3779B97F4A7C15], np.uint64)
    assert int(splitmix64(golden)[0]) == 0x6E789E6AA1B965F4


def test_values_depend_only_on_their_address():
    rng = CounterRNG(7)
    events = np.array([5, 5, 9, 9], np.int64)
    index = np.array([0, 1, 0, 1], np.int64)
    full = rng.uniform("s", events, index)
    # Asking for a subset, in another order, gives the same numbers.
    np.testing.assert_array_equal(rng.uniform("s", events[[3, 0]], index[[3, 0]]), full[[3, 0]])
    assert len(np.unique(full)) == 4
    assert not np.array_equal(CounterRNG(8).uniform("s", events, index), full)
    assert not np.array_equal(rng.uniform("t", events, index), full)


def test_distributions():
    rng = CounterRNG(1)
    event = np.repeat(np.arange(2000), 50)
    index = np.tile(np.arange(50), 2000)
    u = rng.uniform("u", event, index)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.001
    # Neighbouring counters are uncorrelated.
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    z = rng.normal("z", event, index)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    x = rng.exponential("x", event, index)
    assert abs(x.mean() - 1) < 0.01 and x.min() >= 0
