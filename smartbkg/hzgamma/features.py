"""Event-level features of selected l l gamma events, as in the H -> Z gamma classifier studies.

=======================  ==================================================================
name                     meaning
=======================  ==================================================================
``photon_eta``           pseudorapidity of the photon
``lminus_eta``           pseudorapidity of the negative lepton
``lplus_eta``            pseudorapidity of the positive lepton
``min_dr``               smallest DeltaR(lepton, photon)
``max_dr``               largest DeltaR(lepton, photon)
``flavour``              0 for e e, 1 for mu mu
``pt_over_m``            pT / m of the l l gamma system
``cos_big_theta``        cos Theta: production angle, the Z direction against the beam axis
                         in the l l gamma rest frame
``cos_theta``            cos theta: decay angle, the negative lepton in the Z rest frame against
                         the Z direction in the l l gamma frame
``phi``                  angle between the production plane (beam, Z) and the decay plane of
                         the leptons in the l l gamma rest frame [rad]
``photon_pt_over_m``     photon pT / m_llgamma
``lminus_pt``            transverse momentum of the negative lepton [GeV]
``lplus_pt``             transverse momentum of the positive lepton [GeV]
``photon_e_over_m``      photon energy / m_llgamma
=======================  ==================================================================

The angles follow "Kinematic discrimination of the Higgs boson decays to Z gamma" (J. S. Gainer
et al., arXiv:1108.2274). ``mass`` (m_llgamma, GeV) is returned separately: it is what the
analysis fits and what DisCo decorrelates the classifier from, not an input feature.
"""

import numpy as np

from .sample import _eta, _mass, _pt, _delta_r

#: Names of the event-level features of the H -> Z gamma classifier, in column order.
FEATURES = ("photon_eta", "lminus_eta", "lplus_eta", "min_dr", "max_dr", "flavour", "pt_over_m",
            "cos_big_theta", "cos_theta", "phi", "photon_pt_over_m", "lminus_pt", "lplus_pt", "photon_e_over_m")


def boost(p4, frame):
    """Four-vectors ``p4`` (n, 4) seen in the rest frame of ``frame`` (n, 4) (E, px, py, pz)."""
    beta = frame[:, 1:] / frame[:, :1]
    b2 = np.sum(beta**2, axis=1, keepdims=True)
    gamma = 1.0 / np.sqrt(np.maximum(1.0 - b2, 1e-12))
    bp = np.sum(beta * p4[:, 1:], axis=1, keepdims=True)
    factor = np.divide(gamma - 1.0, b2, out=np.zeros_like(b2), where=b2 > 0)
    space = p4[:, 1:] + factor * bp * beta - gamma * beta * p4[:, :1]
    return np.concatenate([gamma * (p4[:, :1] - bp), space], axis=1)


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def angles(lminus, lplus, photon):
    """(cos Theta, cos theta, phi) of l l gamma events, see the module docstring."""
    system = lminus + lplus + photon
    n = len(system)
    beam = np.tile([1.0, 0.0, 0.0, 1.0], (n, 1))
    lm, lp, beam_h = (boost(v, system) for v in (lminus, lplus, beam))
    z = lm + lp
    z_dir, beam_dir = _unit(z[:, 1:]), _unit(beam_h[:, 1:])
    cos_big_theta = np.sum(z_dir * beam_dir, axis=1)
    lm_z = boost(lm, z)
    cos_theta = np.sum(_unit(lm_z[:, 1:]) * z_dir, axis=1)
    n_production = _unit(np.cross(beam_dir, z_dir))
    n_decay = _unit(np.cross(lm[:, 1:], lp[:, 1:]))
    cos_phi = np.clip(np.sum(n_production * n_decay, axis=1), -1.0, 1.0)
    sign = np.sign(np.sum(z_dir * np.cross(n_production, n_decay), axis=1))
    return cos_big_theta, cos_theta, np.where(sign < 0, -1.0, 1.0) * np.arccos(cos_phi)


def event_features(events):
    """({name: (n,) float64} of :data:`FEATURES`, m_llgamma (n,) [GeV]) of selected events
    (the dict of :func:`smartbkg.hzgamma.sample.select`)."""
    lm, lp, ph = events["lminus"], events["lplus"], events["photon"]
    system = lm + lp + ph
    mass = _mass(system)
    dr = np.stack([_delta_r(lm, ph), _delta_r(lp, ph)], axis=1)
    cos_big_theta, cos_theta, phi = angles(lm, lp, ph)
    values = {
        "photon_eta": _eta(ph), "lminus_eta": _eta(lm), "lplus_eta": _eta(lp),
        "min_dr": dr.min(axis=1), "max_dr": dr.max(axis=1),
        "flavour": (events["flavour"] == 13).astype(np.float64),
        "pt_over_m": _pt(system) / mass, "cos_big_theta": cos_big_theta, "cos_theta": cos_theta, "phi": phi,
        "photon_pt_over_m": _pt(ph) / mass, "lminus_pt": _pt(lm), "lplus_pt": _pt(lp),
        "photon_e_over_m": ph[:, 0] / mass,
    }
    return {k: values[k] for k in FEATURES}, mass
