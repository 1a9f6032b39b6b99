"""The keep decision for one or several skims: one shared uniform number per event.

Event i has a sampling probability p_is for each skim s. One uniform u_i in [0, 1) is drawn per
event; the event is kept (sent to the slow simulation) if u_i < max_s p_is, and it counts for
skim s, with the weight 1/p_is, if u_i < p_is. So every skim keeps its own marginal probability
P(u < p_s) = p_s (each skim's weighted sample is unbiased on its own), while the fraction of
events that must be simulated is E[max_s p_s], the least any rule with these marginals can
achieve. Independent draws per skim would simulate E[1 - prod_s (1 - p_s)] instead.
"""

from typing import NamedTuple

import numpy as np

from ..errors import DataError
from ..metrics import speedup_formula


class Decision(NamedTuple):
    """What the filter decided for n events and S skims.

    Fields (a named tuple):
        keep: (n,) bool, the event goes on to detector simulation and skims.
        counts: (n, S) bool, the event counts for skim s (u < p_s; implies ``keep``).
        p: (n, S) float64 sampling probabilities.
        weight: (n, S) float64, 1/p where the event counts for the skim, 0 elsewhere.
        skims: the S skim names.
    """

    keep: np.ndarray
    counts: np.ndarray
    p: np.ndarray
    weight: np.ndarray
    skims: tuple

    def columns(self):
        """The per-skim output columns ``p_<skim>`` and ``weight_<skim>`` ((n,) float64 each)."""
        out = {f"p_{s}": self.p[:, j] for j, s in enumerate(self.skims)}
        out.update({f"weight_{s}": self.weight[:, j] for j, s in enumerate(self.skims)})
        return out

    def take(self, rows):
        """The decision of the events ``rows`` (index array or bool mask)."""
        return Decision(self.keep[rows], self.counts[rows], self.p[rows], self.weight[rows], self.skims)


def shared_uniform(p, u, skims=None):
    """Apply the shared-uniform rule of the module docstring.

    Args:
        p: (n, S) sampling probabilities in (0, 1] (a (n,) array is one skim).
        u: (n,) uniform numbers in [0, 1), one per event.
        skims: S names (default ``skim_0`` ...).

    Returns:
        :class:`Decision`. For one skim and ``u = numpy.random.default_rng(seed).random(n)`` it
        equals :func:`smartbkg.sampling.sample` ``(p, seed)``.
    """
    p = np.asarray(p, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    u = np.asarray(u, dtype=np.float64)
    if p.ndim != 2 or u.shape != (p.shape[0],):
        raise DataError(f"probabilities of shape {p.shape} do not match {u.shape} uniform numbers", field="p")
    if not np.all((p > 0) & (p <= 1)):
        raise DataError("sampling probabilities must lie in (0, 1]", field="p")
    skims = tuple(skims) if skims is not None else tuple(f"skim_{j}" for j in range(p.shape[1]))
    counts = u[:, None] < p
    weight = np.where(counts, 1.0 / p, 0.0)
    return Decision(counts.any(axis=1), counts, p, weight, skims)


def union_speedup(kept_fraction, a_eff, *, t_fast, t_nn, t_slow):
    """Speedup of one skim when ``kept_fraction`` of the events is simulated (the union of all
    skims' decisions) and its passing events have the efficiency ``a_eff`` = 1/E[1/p | pass].

    t3 a_eff / (f t1 + (1 - f) t2): :func:`smartbkg.metrics.speedup_formula` with the kept
    fraction in place of eps f_TP + (1 - eps) f_FP (eps = 1, f_TP = f); for one skim the two agree.
    """
    return float(speedup_formula(1.0, kept_fraction, 0.0, a_eff, t_fast=t_fast, t_nn=t_nn, t_slow=t_slow))
