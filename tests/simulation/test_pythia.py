"""Generated records: bindings read-out, conservation laws, Belle II conventions, units."""

import tempfile

import numpy as np
import pytest
from particle import Particle

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


def _charges(pdg):
    unique = np.unique(pdg)
    table = {int(p): float(Particle.from_pdgid(int(p)).charge) for p in unique}
    return np.array([table[int(p)] for p in pdg])


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
