"""SuperKEKB beams: four-momenta, centre-of-mass energy and the Lorentz transformation to the lab.

Coordinates follow Belle II: z along the solenoid axis, the 7 GeV electron (HER) beam goes
towards +z, the 4 GeV positron (LER) beam towards -z, and the two beams cross at an angle
``crossing_angle`` in the x-z plane (each tilted by half of it towards +x, so the boost of the
centre-of-mass system has a small x component). Nominal values: HER 7.007 GeV, LER 4.000 GeV,
83 mrad, giving sqrt(s) = 10.579 GeV (the Upsilon(4S) mass) and beta*gamma = 0.287.

Events are generated in the centre-of-mass frame with the e- along +z; :meth:`Beams.cm_to_lab`
is the 4x4 matrix that takes any four-vector (E, px, py, pz) or space-time point (ct, x, y, z)
from there to the lab: a rotation of the z axis onto the e- direction in the CM frame, then the
boost. Units GeV (and any common length unit for space-time points).
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError

#: Electron mass [GeV] (PDG 2024).
ELECTRON_MASS = 0.51099895e-3
#: Speed of light [cm/ns].
SPEED_OF_LIGHT = 29.9792458


@dataclass(frozen=True)
class Beams:
    """Beam energies [GeV], full crossing angle [rad] and Gaussian sizes of the luminous region [cm].

    The luminous region (SuperKEKB nano-beam scheme, roughly): sigma_x = 10 um, sigma_y = 0.2 um,
    sigma_z = 350 um; each event's primary vertex is drawn from it.
    """

    e_minus: float = 7.007
    e_plus: float = 4.000
    crossing_angle: float = 0.083
    spot_x: float = 10.0e-4
    spot_y: float = 0.2e-4
    spot_z: float = 350.0e-4

    def __post_init__(self):
        if not (self.e_minus > ELECTRON_MASS and self.e_plus > ELECTRON_MASS):
            raise ConfigError(f"beam energies must exceed the electron mass, got {self.e_minus}, {self.e_plus} GeV")
        if not 0.0 <= self.crossing_angle < 0.5:
            raise ConfigError(f"crossing angle must be in [0, 0.5) rad, got {self.crossing_angle}")
        if min(self.spot_size) < 0:
            raise ConfigError(f"beam-spot sizes must be >= 0 cm, got {self.spot_size}")

    @property
    def spot_size(self):
        """(sigma_x, sigma_y, sigma_z) of the luminous region [cm]."""
        return (self.spot_x, self.spot_y, self.spot_z)

    def four_momenta(self):
        """(2, 4) array: rows e-, e+; columns (E, px, py, pz) [GeV] in the lab."""
        half = 0.5 * self.crossing_angle
        rows = []
        for energy, sign in ((self.e_minus, 1.0), (self.e_plus, -1.0)):
            p = np.sqrt(energy**2 - ELECTRON_MASS**2)
            rows.append([energy, p * np.sin(half), 0.0, sign * p * np.cos(half)])
        return np.array(rows)

    @property
    def total(self):
        """(4,) total four-momentum of the two beams [GeV]."""
        return self.four_momenta().sum(axis=0)

    @property
    def e_cm(self):
        """Centre-of-mass energy sqrt(s) [GeV]."""
        t = self.total
        return float(np.sqrt(t[0] ** 2 - t[1:] @ t[1:]))

    @property
    def beta_gamma(self):
        """abs(p) / sqrt(s) of the centre-of-mass system in the lab."""
        t = self.total
        return float(np.linalg.norm(t[1:]) / self.e_cm)

    def cm_to_lab(self):
        """(4, 4) Lorentz matrix taking CM-frame four-vectors (e- along +z) to the lab."""
        t = self.total
        beta = t[1:] / t[0]
        e_minus_cm = boost_matrix(-beta) @ self.four_momenta()[0]
        axis = e_minus_cm[1:] / np.linalg.norm(e_minus_cm[1:])
        rotation = np.eye(4)
        rotation[1:, 1:] = rotation_onto(np.array([0.0, 0.0, 1.0]), axis)
        return boost_matrix(beta) @ rotation

    def lab_to_cm(self):
        """(4, 4) inverse of :meth:`cm_to_lab`."""
        return np.linalg.inv(self.cm_to_lab())

    def to_dict(self):
        return {**asdict(self), "e_cm": self.e_cm, "beta_gamma": self.beta_gamma}


def boost_matrix(beta):
    """(4, 4) pure boost giving a particle at rest the velocity ``beta`` (3-vector, abs(beta) < 1)."""
    beta = np.asarray(beta, dtype=np.float64)
    b2 = float(beta @ beta)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    m = np.eye(4)
    m[0, 0] = gamma
    m[0, 1:] = m[1:, 0] = gamma * beta
    if b2 > 0:
        m[1:, 1:] += (gamma - 1.0) * np.outer(beta, beta) / b2
    return m


def rotation_onto(u, v):
    """(3, 3) rotation taking unit vector ``u`` onto unit vector ``v`` (about the axis u x v)."""
    axis = np.cross(u, v)
    s = np.linalg.norm(axis)
    c = float(u @ v)
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Antiparallel: half turn about any axis perpendicular to u.
        k = np.cross(u, np.eye(3)[np.argmin(np.abs(u))])
        k /= np.linalg.norm(k)
        return 2.0 * np.outer(k, k) - np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def transform(matrix, t, x, y, z):
    """Apply a 4x4 Lorentz matrix to four-vectors given as four (n,) arrays; returns four arrays."""
    stacked = np.stack([t, x, y, z]).astype(np.float64, copy=False)
    out = matrix @ stacked
    return out[0], out[1], out[2], out[3]
