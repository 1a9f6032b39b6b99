"""Generated records: bindings read-out, conservation laws, Belle II conventions, units."""

import tempfile

import numpy as np
import pytest
from particle.pdgid import is_hadron, three_charge

from smartbkg.data.table import EVENT_TYPES
from smartbkg.simulation import Beams, generate
from smartbkg.simulation.beams import SPEED_OF_LIGHT
from smartbkg.simulation.detector import final_state_mask
from smartbkg.simulation.pythia import PythiaGenerator, pythia_settings, write_upsilon_lhe

pythia8mc = pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def sample():
    """100 events of each type, generator level."""
    return generate(700, seed=11, mix="equal", chunk_size=100)


@pytest.mark.parametrize("event_type", ["ccbar", "mixed"])
def test_batch_readout_equals_particle_by_particle(event_type, tmp_path):
    n, seed = 5, 4321
    batch = PythiaGenerator(event_type, 10.58, max_batch=n)
    offsets, cols = batch.generate(n, seed)
    lhe = tmp_path / "upsilon.lhe"
    write_upsilon_lhe(lhe, 10.58, n)
    reference = pythia8mc.Pythia("", False)
    for setting in batch.settings:
        assert reference.readString(setting.replace(PythiaGenerator.LHE_PLACEHOLDER, str(lhe)))
    reference.init()
    reference.rndm.init(seed)
    for i in range(n):
        assert reference.next()
        ev = reference.event
        lo, hi = offsets[i], offsets[i + 1]
        assert hi - lo == ev.size()
        q = [ev[j] for j in range(ev.size())]
        np.testing.assert_array_equal(cols["id"][lo:hi], [x.id() for x in q])
        np.testing.assert_array_equal(cols["mother1"][lo:hi], [x.mother1() for x in q])
        np.testing.assert_array_equal(cols["daughter2"][lo:hi], [x.daughter2() for x in q])
        np.testing.assert_allclose(cols["pz"][lo:hi], [x.pz() for x in q], rtol=1e-12)
        np.testing.assert_allclose(cols["z"][lo:hi], [x.zProd() for x in q], rtol=1e-12)
        np.testing.assert_allclose(cols["t"][lo:hi], [x.tProd() for x in q], rtol=1e-12)


def test_no_temporary_file_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gen = PythiaGenerator("charged", 10.58, max_batch=3)
    offsets, _ = gen.generate(3, 1)
    assert len(offsets) == 4 and list(tmp_path.iterdir()) == []


def _by_pdg(function, pdg):
    """(n,) values of ``function(pdg id)``, computed once per distinct id."""
    unique, inverse = np.unique(pdg, return_inverse=True)
    return np.array([function(int(p)) for p in unique])[inverse]


def _charges(pdg):
    """(n,) electric charges in units of e: three times them, exactly, from the quark content."""
    return _by_pdg(three_charge, pdg) / 3.0


def test_charge_and_four_momentum_conservation(sample):
    fs = final_state_mask(sample)
    event = sample.event_index()[fs]
    p = sample.particles
    n = len(sample)
    total = np.stack([np.bincount(event, weights=p[k][fs].astype(float), minlength=n)
                      for k in ("energy", "px", "py", "pz")], axis=1)
    np.testing.assert_allclose(total, np.broadcast_to(Beams().total, total.shape), atol=2e-5)
    charge = np.bincount(event, weights=_charges(p["pdg"][fs]), minlength=n)
    np.testing.assert_array_equal(charge, 0)
    # The beams are the initial particles, the first two of every event.
    first = sample.offsets[:-1]
    np.testing.assert_array_equal(p["pdg"][first], 11)
    np.testing.assert_array_equal(p["pdg"][first + 1], -11)
    assert p["initial"].sum() == 2 * n and p["initial"][first].all() and p["initial"][first + 1].all()


def _vertex_sums(table):
    """Four-momenta (n, 4) of all particles, summed four-momenta (n, 4) and charges (n,) of each
    particle's daughters, and its number of daughters (float64 from the float32 columns)."""
    p = table.particles
    gm = table.global_mother()
    has = gm >= 0
    p4 = np.stack([p[k] for k in ("energy", "px", "py", "pz")], 1).astype(float)
    sums = np.zeros_like(p4)
    np.add.at(sums, gm[has], p4[has])
    charge = np.bincount(gm[has], weights=_charges(p["pdg"][has]), minlength=len(gm))
    return p4, sums, charge, np.bincount(gm[has], minlength=len(gm))


def test_every_hadron_and_tau_decay_conserves_four_momentum_and_charge(sample):
    """Vertex by vertex: the daughters of every decayed hadron (Upsilon(4S), B, D, pi0 ...) and
    tau sum to its four-momentum and charge (float32 columns: 1e-5 GeV). A tau that radiated a
    photon decays with its momentum after the emission; a B0 that oscillated has one daughter,
    its anti-particle."""
    p4, sums, charge, n_daughters = _vertex_sums(sample)
    pdg = sample.particles["pdg"]
    decayed = np.flatnonzero((n_daughters > 0) & (_by_pdg(is_hadron, pdg).astype(bool) | (np.abs(pdg) == 15)))
    assert len(decayed) > 6000 and (np.abs(pdg[decayed]) == 15).sum() >= 200   # and taus from B, D_s decays
    np.testing.assert_allclose(sums[decayed], p4[decayed], atol=1e-5)
    np.testing.assert_array_equal(charge[decayed], _charges(pdg[decayed]))


def test_virtual_photon_conserves_with_shower_emissions_as_daughters(sample):
    """The vpho's daughters are the fermion pair and the partons and photons radiated in the
    final-state shower; together they carry its four-momentum (no charge)."""
    p4, sums, charge, n_daughters = _vertex_sums(sample)
    pdg = sample.particles["pdg"]
    vpho = np.flatnonzero(pdg == 10022)
    assert len(vpho) == 500 and (n_daughters[vpho] > 2).mean() > 0.3
    np.testing.assert_allclose(sums[vpho], p4[vpho], atol=1e-5)
    np.testing.assert_array_equal(charge[vpho], 0)
    # A tau that radiated is one particle (no tau -> tau gamma).
    gm = sample.global_mother()
    assert not ((np.abs(pdg) == 15) & (gm >= 0) & (np.abs(pdg[np.maximum(gm, 0)]) == 15)).any()
    taupair = sample.event_type[sample.event_index()] == EVENT_TYPES.index("taupair")
    assert ((pdg == 22) & taupair & (pdg[np.maximum(gm, 0)] == 10022)).sum() > 10


def test_b0_mixing_is_an_anti_b_daughter(sample):
    """Time-integrated mixing probability chi_d = 0.1858 (PDG 2024, Pythia's xd = 0.770): about
    37 of the 200 B0 / anti-B0 from the Upsilon(4S) oscillate. The inserted anti-particle has the
    B's four-momentum and starts where the B decays (where its decay products start)."""
    p = sample.particles
    gm = sample.global_mother()
    pdg = p["pdg"]
    b0 = np.flatnonzero((np.abs(pdg) == 511) & (gm >= 0) & (pdg[np.maximum(gm, 0)] == 300553))
    flip = np.flatnonzero((gm >= 0) & (np.abs(pdg[np.maximum(gm, 0)]) == 511))
    flip = flip[np.abs(pdg[flip]) == 511]
    assert len(b0) == 200 and np.isin(gm[flip], b0).all()
    assert abs(len(flip) / len(b0) - 0.1858) < 4 * np.sqrt(0.1858 * 0.8142 / len(b0))
    np.testing.assert_array_equal(pdg[flip], -pdg[gm[flip]])
    for name in ("energy", "px", "py", "pz"):
        np.testing.assert_array_equal(p[name][flip], p[name][gm[flip]])
    child = np.flatnonzero(np.isin(gm, flip))
    mother, first = np.unique(gm[child], return_index=True)
    assert len(mother) == len(flip)
    for name in ("prodTime", "x", "y", "z"):
        np.testing.assert_array_equal(p[name][child[first]], p[name][mother])
    assert (p["prodTime"][flip] > p["prodTime"][gm[flip]]).all()


def test_b_mesons_only_in_upsilon_events(sample):
    p = sample.particles
    a = np.abs(p["pdg"])
    b_meson = (a < 1000) & ((a // 100) % 10 == 5)
    event = sample.event_index()
    names = np.asarray(EVENT_TYPES)[sample.event_type[event]]
    assert not b_meson[~np.isin(names, ["charged", "mixed"])].any()
    gm = sample.global_mother()
    from_ups = (gm >= 0) & (p["pdg"][np.maximum(gm, 0)] == 300553)
    for name, b in (("charged", 521), ("mixed", 511)):
        rows = from_ups & (names == name)
        pairs = np.sort(p["pdg"][rows].reshape(-1, 2), axis=1)
        np.testing.assert_array_equal(pairs, np.broadcast_to([-b, b], pairs.shape))
    assert from_ups.sum() == 2 * 200


def test_upsilon_boost_and_continuum_photon(sample):
    p = sample.particles
    ups = p["pdg"] == 300553
    assert ups.sum() == 200
    mom = np.stack([p["energy"], p["px"], p["py"], p["pz"]], 1)[ups].astype(float)
    np.testing.assert_allclose(mom, np.broadcast_to(Beams().total, mom.shape), rtol=2e-6)
    bg = np.linalg.norm(mom[:, 1:], axis=1) / np.sqrt(mom[:, 0] ** 2 - np.sum(mom[:, 1:] ** 2, axis=1))
    np.testing.assert_allclose(bg, 0.2873, atol=2e-4)
    names = np.asarray(EVENT_TYPES)[sample.event_type]
    vpho = np.bincount(sample.event_index()[p["pdg"] == 10022], minlength=len(sample))
    np.testing.assert_array_equal(vpho, np.isin(names, ["uubar", "ddbar", "ssbar", "ccbar", "taupair"]))


def test_decay_lengths_match_lifetimes_in_cm_and_ns(sample):
    """Daughters start at the mother's decay vertex: L = beta gamma c tau on average, L / t = beta c."""
    p = sample.particles
    gm = sample.global_mother()
    for pdg, ctau in ((421, 0.01229), (411, 0.03118), (521, 0.04911)):  # c*tau [cm], PDG
        child = np.flatnonzero((gm >= 0) & (np.abs(p["pdg"][np.maximum(gm, 0)]) == pdg))
        mother, first = np.unique(gm[child], return_index=True)
        child = child[first]
        d = np.stack([p[k][child] - p[k][mother] for k in ("x", "y", "z")], 1).astype(float)
        length = np.linalg.norm(d, axis=1)
        dt = (p["prodTime"][child] - p["prodTime"][mother]).astype(float)
        mom = np.stack([p[k][mother] for k in ("px", "py", "pz")], 1).astype(float)
        pabs = np.linalg.norm(mom, axis=1)
        mass = np.sqrt(p["energy"][mother].astype(float) ** 2 - pabs**2)
        ratio = length / (pabs / mass * ctau)
        assert len(mother) > 50
        assert ratio.mean() == pytest.approx(1.0, abs=4 / np.sqrt(len(mother)))
        speed = length / dt / (pabs / p["energy"][mother])
        np.testing.assert_allclose(speed[dt > 1e-4], SPEED_OF_LIGHT, rtol=2e-2)


def test_long_lived_particles_left_undecayed(sample):
    p = sample.particles
    gm = sample.global_mother()
    has_daughter = np.zeros(len(gm), bool)
    has_daughter[gm[gm >= 0]] = True
    for pdg in (310, 3122, 130, 211, 321):
        rows = np.abs(p["pdg"]) == pdg
        assert rows.any() and not has_daughter[rows].any()
    assert has_daughter[p["pdg"] == 111].all()


def test_settings_name_the_process():
    assert "23:onIfAny = 4" in pythia_settings("ccbar", 10.58)
    assert "300553:oneChannel = 1 1.0 0 511 -511" in pythia_settings("mixed", 10.58, "x.lhe")
