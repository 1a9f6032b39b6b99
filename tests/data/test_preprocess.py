import numpy as np
import pytest
import yaml

from smartbkg.data.checks import ReadReport
from smartbkg.data.preprocess import PreprocessConfig, PreprocessStats, preprocess, preprocess_with_mask
from smartbkg.data.table import EventTable
from smartbkg.errors import ConfigError, DataError

SKIMS = ("a", "b")


def particles(pdg, mother, initial=None, x=None, z=None, time=None):
    """One event's particle fields; y is 0, momenta and energies are index-dependent numbers."""
    n = len(pdg)
    idx = np.arange(n, dtype=np.float32)
    return {"pdg": pdg, "mother": mother, "initial": np.zeros(n, bool) if initial is None else initial,
            "prodTime": idx if time is None else time, "x": np.zeros(n) if x is None else x, "y": np.zeros(n),
            "z": np.zeros(n) if z is None else z, "px": idx + 0.5, "py": -idx, "pz": 2 * idx, "energy": 3 * idx + 1}


def continuum_event():
    """e+ e- -> vpho -> u ubar; hadrons hang from quarks and a gluon; K_S0 -> pi+ (at x = 12 cm) -> gamma.

    index: 0 e-, 1 e+ (initial), 2 vpho, 3 u, 4 ubar, 5 g (from u), 6 pi+ (from g), 7 pi- (from ubar),
    8 K_S0 (from vpho), 9 pi+ (from K_S0, produced at x = 12 cm), 10 gamma (from 9, back inside).
    """
    pdg = [11, -11, 10022, 2, -2, 21, 211, -211, 310, 211, 22]
    mother = [-1, -1, -1, 2, 2, 3, 5, 4, 2, 8, 9]
    initial = [True, True] + [False] * 9
    x = [0, 0, 0, 0, 0, 0, 0.1, -0.2, 0, 12.0, 5.0]
    time = [0.5, 0.5, 1.0, 1.0, 1.0, 1.1, 1.2, 1.3, 1.5, 2.0, 2.5]
    return particles(pdg, mother, initial, x=x, time=time)


def orphan_event():
    """0 e- (initial), 1 d quark (a root), 2 pi0 (from the quark), 3 and 4 photons (from the pi0)."""
    return particles([11, 1, 111, 22, 22], [-1, -1, 1, 2, 2], [True, False, False, False, False],
                     time=[0.0, 2.0, 2.0, 2.25, 2.5])


def empty_event():
    """Only beam particles and gluons: nothing survives."""
    return particles([11, -11, 21, 21], [-1, -1, -1, 2], [True, True, False, False])


def table_of(*events, labels=None):
    labels = np.zeros((len(events), 2), bool) if labels is None else labels
    return EventTable.from_events(list(events), labels, SKIMS, "uubar", event_id=np.arange(len(events)) + 100)


def test_continuum_event_by_hand():
    out, stats = preprocess(table_of(continuum_event()))
    ev = out.event(0)
    # kept: vpho, pi+, pi-, K_S0, gamma -> new indices 0..4
    np.testing.assert_array_equal(ev["pdg"], [10022, 211, -211, 310, 22])
    np.testing.assert_array_equal(ev["mother"], [-1, 0, 0, 0, 3])  # gamma re-linked past the pi+ at 12 cm
    np.testing.assert_allclose(ev["prodTime"], [0.0, 0.2, 0.3, 0.5, 1.5], rtol=1e-6)
    np.testing.assert_array_equal(ev["x"], np.float32([0, 0.1, -0.2, 0, 5.0]))
    np.testing.assert_array_equal(ev["px"], np.float32([2.5, 6.5, 7.5, 8.5, 10.5]))
    assert not ev["initial"].any()
    assert stats.dropped_particles == {"initial state": 2, "outside vertex box": 1, "quark or gluon": 3}
    assert (stats.particles_in, stats.particles_out, stats.events_in, stats.events_out) == (11, 5, 1, 1)


def test_orphans_become_roots_and_time_is_relative_to_first_kept():
    out, _ = preprocess(table_of(orphan_event()))
    ev = out.event(0)
    np.testing.assert_array_equal(ev["pdg"], [111, 22, 22])
    np.testing.assert_array_equal(ev["mother"], [-1, 0, 0])
    np.testing.assert_array_equal(ev["prodTime"], np.float32([0.0, 0.25, 0.5]))


def test_long_chain_of_dropped_particles():
    # Upsilon(4S) -> 40 gluons in a chain -> pi+; the pion's nearest kept ancestor is the Upsilon(4S).
    n = 42
    event = particles([300553] + [21] * 40 + [211], list(range(-1, n - 1)))
    ev = preprocess(table_of(event))[0].event(0)
    np.testing.assert_array_equal(ev["pdg"], [300553, 211])
    np.testing.assert_array_equal(ev["mother"], [-1, 0])


def test_empty_events_are_removed_and_counted_with_their_labels():
    labels = np.array([[1, 0], [1, 1], [0, 1]], bool)
    table = table_of(continuum_event(), empty_event(), orphan_event(), labels=labels)
    out, stats, nonempty = preprocess_with_mask(table)
    np.testing.assert_array_equal(nonempty, [True, False, True])
    np.testing.assert_array_equal(out.event_id, [100, 102])
    np.testing.assert_array_equal(out.labels, labels[[0, 2]])
    np.testing.assert_array_equal(out.counts, [5, 3])
    assert stats.empty_events == 1 and stats.events_out == 2
    assert stats.empty_passing == {"a": 1, "b": 1}
    report = ReadReport(read=3, kept=3)
    stats.add_to_report(report)
    assert report.kept == 2 and report.skipped == {"empty after preprocessing": 1}
    assert report.notes["particles dropped by preprocessing (quark or gluon)"] == 3 + 2 + 1


@pytest.mark.parametrize("config, kept_pdg", [
    (PreprocessConfig(drop_initial=False), [11, -11, 10022, 211, -211, 310, 22]),
    (PreprocessConfig(vertex_cut=None), [10022, 211, -211, 310, 211, 22]),
    (PreprocessConfig(vertex_cut=0.15), [10022, 211, 310]),
    (PreprocessConfig(drop_abs_pdg=()), [10022, 2, -2, 21, 211, -211, 310, 22]),
    (PreprocessConfig(drop_abs_pdg=(21, 310)), [10022, 2, -2, 211, -211, 22]),
])
def test_each_step_is_configurable(config, kept_pdg):
    out, _ = preprocess(table_of(continuum_event()), config)
    np.testing.assert_array_equal(out.event(0)["pdg"], kept_pdg)


def test_mothers_when_quarks_are_kept():
    out, _ = preprocess(table_of(continuum_event()), PreprocessConfig(drop_abs_pdg=()))
    # vpho, u, ubar, g, pi+, pi-, K_S0, gamma: the gluon keeps its quark, the gamma goes to K_S0
    np.testing.assert_array_equal(out.event(0)["mother"], [-1, 0, 0, 1, 3, 2, 0, 6])


def test_relative_time_off_keeps_times():
    out, _ = preprocess(table_of(orphan_event()), PreprocessConfig(relative_time=False))
    np.testing.assert_array_equal(out.event(0)["prodTime"], np.float32([2.0, 2.25, 2.5]))


def test_vertex_box_is_strict_and_symmetric():
    event = particles([22] * 5, [-1] * 5, x=[0, 9.99, 10.0, -10.0, 0], z=[0, 0, 0, 0, -11])
    out, stats = preprocess(table_of(event))
    np.testing.assert_array_equal(out.event(0)["x"], np.float32([0, 9.99]))
    assert stats.dropped_particles["outside vertex box"] == 3


def test_idempotent():
    table = table_of(continuum_event(), orphan_event(), empty_event())
    once, _ = preprocess(table)
    twice, stats = preprocess(once)
    for name in once.particles:
        np.testing.assert_array_equal(once.particles[name], twice.particles[name], err_msg=name)
    np.testing.assert_array_equal(once.offsets, twice.offsets)
    assert sum(stats.dropped_particles.values()) == 0 and stats.empty_events == 0


def reference_preprocess(event, config):
    """Straightforward per-event implementation: walk up the mothers of each kept particle."""
    p = event
    keep = np.ones(len(p["pdg"]), bool)
    if config.drop_initial:
        keep &= ~p["initial"]
    if config.vertex_cut is not None:
        keep &= (np.abs(p["x"]) < config.vertex_cut) & (np.abs(p["y"]) < config.vertex_cut) \
            & (np.abs(p["z"]) < config.vertex_cut)
    keep &= ~np.isin(np.abs(p["pdg"]), config.drop_abs_pdg)
    new_index = np.cumsum(keep) - 1
    mothers = []
    for i in np.flatnonzero(keep):
        m = p["mother"][i]
        while m >= 0 and not keep[m]:
            m = p["mother"][m]
        mothers.append(new_index[m] if m >= 0 else -1)
    time = p["prodTime"][keep]
    if config.relative_time and len(time):
        time = time - time[0]
    return p["pdg"][keep], np.array(mothers, dtype=np.int64), time


@pytest.mark.parametrize("config", [PreprocessConfig(), PreprocessConfig(vertex_cut=0.5, drop_abs_pdg=(22, 111))])
def test_random_trees_against_reference(random_table, config):
    table = random_table(150, seed=4)
    rng = np.random.default_rng(1)
    p = dict(table.particles)
    p["pdg"] = np.where(rng.random(table.n_particles) < 0.25, rng.choice([1, -2, 3, 21], table.n_particles), p["pdg"])
    p["initial"] = rng.random(table.n_particles) < 0.05
    table = table.replace(particles=p)
    out, stats, nonempty = preprocess_with_mask(table, config)
    kept_events = np.flatnonzero(nonempty)
    assert stats.empty_events == len(table) - len(kept_events)
    for j, i in enumerate(kept_events):
        pdg, mother, time = reference_preprocess(table.event(i), config)
        ev = out.event(j)
        np.testing.assert_array_equal(ev["pdg"], pdg)
        np.testing.assert_array_equal(ev["mother"], mother)
        np.testing.assert_array_equal(ev["prodTime"], time)
    for i in np.flatnonzero(~nonempty):
        assert len(reference_preprocess(table.event(i), config)[0]) == 0


def test_cycle_among_dropped_particles_is_an_error():
    event = particles([211, 21, 21, 211], [-1, 2, 1, 1])  # the two gluons are each other's mother
    with pytest.raises(DataError, match="event 100.*cyclic"):
        preprocess(table_of(event))


def test_stats_add_up():
    a = preprocess(table_of(continuum_event()))[1]
    b = preprocess(table_of(empty_event()))[1]
    total = PreprocessStats()
    total += a
    total += b
    assert total.events_in == 2 and total.events_out == 1 and total.empty_events == 1
    assert total.dropped_particles["quark or gluon"] == 5
    assert total.to_dict()["particles_in"] == 15


def test_config_checks_and_round_trip():
    config = PreprocessConfig(vertex_cut=5.0, drop_abs_pdg=[21, 1, 1])
    assert config.drop_abs_pdg == (1, 21)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError):
        PreprocessConfig(vertex_cut=-1)
    with pytest.raises(ConfigError):
        PreprocessConfig(drop_abs_pdg=(-21,))
    with pytest.raises(ConfigError, match="unknown preprocessing option"):
        PreprocessConfig.from_dict({"cut": 3})


@pytest.mark.parametrize("text, message", [
    ("drop_abs_pdg: 5", "drop_abs_pdg must be a list of absolute PDG ids (integers), got 5"),
    ("drop_abs_pdg: '21'", "drop_abs_pdg must be a list of absolute PDG ids (integers), got '21'"),
    ("drop_abs_pdg: [21, 1.5]", "drop_abs_pdg must be a list of absolute PDG ids (integers), got [21, 1.5]"),
    ("drop_abs_pdg: [true]", "drop_abs_pdg must be a list"),
    ("vertex_cut: abc", "vertex_cut must be a positive number (cm) or null, got 'abc'"),
    ("vertex_cut: true", "vertex_cut must be a positive number (cm) or null, got True"),
    ("vertex_cut: .nan", "vertex_cut must be a positive number (cm) or null, got nan"),
    ("relative_time: 'no'", "relative_time must be true or false, got 'no'"),
    ("drop_initial: 1", "drop_initial must be true or false, got 1"),
])
def test_config_values_of_the_wrong_type_are_one_line_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        PreprocessConfig.from_dict(yaml.safe_load(text))
    assert str(caught.value).startswith(f"preprocessing option {message}") and "\n" not in str(caught.value)


def test_config_values_of_the_right_types_are_taken():
    config = PreprocessConfig.from_dict(yaml.safe_load("relative_time: no\nvertex_cut: 5\ndrop_abs_pdg: [21, 5]"))
    assert config == PreprocessConfig(relative_time=False, vertex_cut=5, drop_abs_pdg=(5, 21))
    assert config.relative_time is False and config.drop_initial is True
    assert PreprocessConfig(drop_abs_pdg=np.array([21, 1]), drop_initial=np.bool_(False)).drop_initial is False
