"""Event-level variables of a batch, computed from its generator record: what a DisCo term can
decorrelate the network output from (``loss.disco_variable``).

Computed per event from the batch contract (``x[:, 4:8]`` = (E, px, py, pz) in GeV, lab frame;
``pdg`` tokens; ``mother_index``). The *final state* is the set of particles without
daughters in the (preprocessed) decay tree. Neutrinos are nu_e, nu_mu, nu_tau and their
antiparticles; "visible" means "not a neutrino" (no detector acceptance is modelled).

===================  ========================================================================
name                 value per event
===================  ========================================================================
``n_particles``      particles in the event (nodes)
``n_final_state``    final-state particles
``total_energy``     sum of E over the final state [GeV, lab frame]
``visible_energy``   sum of E over the final state without neutrinos [GeV, lab frame]
``visible_mass``     invariant mass of the summed four-momenta of the final state without
                     neutrinos, sqrt(max(E^2 - abs(p)^2, 0)) [GeV]
``event_type``       the event type code
``weight``           the event weight
``event_id``         the event's identifier in its source (bookkeeping)
===================  ========================================================================

Without preprocessing losses the final state of an e+e- event carries the full beam
four-momentum, so ``total_energy`` is nearly the same for every event; the particles removed by
the preprocessing (e.g. outside the vertex cut) and, for the visible variables, the neutrinos
make them vary.
"""

import numpy as np
import torch

from ..data.features import FeatureBatch
from ..data.graphs import has_mother
from ..data.vocab import pdg_to_token
from ..errors import ConfigError, DataError

#: PDG ids of the neutrinos (left out of the visible variables).
NEUTRINOS = (12, -12, 14, -14, 16, -16)
#: Variables computed from the particles (see the module docstring).
COMPUTED = ("n_particles", "n_final_state", "total_energy", "visible_energy", "visible_mass")
#: Per-event attributes of the batch contract.
ATTRIBUTES = ("event_type", "weight", "event_id")
#: Every name :func:`event_variable` accepts.
EVENT_VARIABLES = COMPUTED + ATTRIBUTES

_NEUTRINO_TOKENS = torch.from_numpy(np.unique(pdg_to_token(np.array(NEUTRINOS))))


def check_variable(name):
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`EVENT_VARIABLES`."""
    if name not in EVENT_VARIABLES:
        raise ConfigError(f"loss.disco_variable {name!r} is not an event variable; choose one of "
                          f"{', '.join(EVENT_VARIABLES)}")


def event_variable(batch, name):
    """The variable ``name`` of every event of ``batch``: (B,) float32 on the batch's device.

    A :class:`~smartbkg.data.features.FeatureBatch` carries its own per-event variables
    (``batch.variables``); graph batches have those of :data:`EVENT_VARIABLES`.
    """
    if isinstance(batch, FeatureBatch):
        if name not in batch.variables:
            raise ConfigError(f"loss.disco_variable {name!r} is not a variable of the feature data; it has "
                              f"{', '.join(batch.variables) or 'none'}")
        return batch.variables[name].float()
    check_variable(name)
    if name in ATTRIBUTES:
        return getattr(batch, name).float()
    counts = torch.diff(batch.ptr)
    if name == "n_particles":
        return counts.float()
    final = final_state(batch.get("mother_index"))
    if name == "n_final_state":
        return _per_event(final.double(), batch).float()
    if name != "total_energy":
        final = final & ~torch.isin(batch.pdg, _NEUTRINO_TOKENS.to(batch.pdg.device))
    p4 = batch.x[:, 4:8].double() * final[:, None]
    if name in ("total_energy", "visible_energy"):
        return _per_event(p4[:, 0], batch).float()
    total = torch.stack([_per_event(p4[:, k], batch) for k in range(4)], dim=1)
    m2 = total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(1)
    return m2.clamp_min(0).sqrt().float()


def final_state(mother_index):
    """(N,) bool: True for particles without daughters.

    ``mother_index`` (N,) int64 of the batch contract (:mod:`smartbkg.data.graphs`): each
    particle's mother, the particle itself for a root. A batch without it (one not built by
    :mod:`smartbkg.data.graphs`) cannot tell mothers from daughters: :class:`DataError`.
    """
    if mother_index is None:
        raise DataError("the batch has no mother_index (the decay tree of the smartbkg.data.graphs batch contract), "
                        "so mothers cannot be told from daughters", field="mother_index")
    daughters = torch.zeros_like(mother_index).index_add_(0, mother_index, has_mother(mother_index).long())
    return daughters == 0


def _per_event(values, batch):
    """Sum of the node ``values`` (N,) over each event: (B,) float64."""
    out = torch.zeros(batch.num_graphs, dtype=torch.float64, device=values.device)
    return out.index_add_(0, batch.batch, values)
