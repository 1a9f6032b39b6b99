"""The seven Belle II generic background types, their cross sections and the sample mix.

Cross sections at sqrt(s) = 10.58 GeV in nb, as used for Belle II generic MC (Belle II Physics
Book, arXiv:1808.10567, Table 1): e+e- -> Upsilon(4S) 1.05 nb split by B(Upsilon(4S) -> B+B-)
= 0.514 into charged 0.54 and mixed 0.51 nb; continuum u ubar 1.61, d dbar 0.40, s sbar 0.38,
c cbar 1.30 nb; tau+ tau- 0.919 nb.
"""

from dataclasses import dataclass

import numpy as np

from ..data.table import EVENT_TYPES
from ..errors import ConfigError


@dataclass(frozen=True)
class EventTypeSpec:
    """One background type.

    Args:
        name: Belle II name (``charged``, ``mixed``, ``uubar`` ...).
        cross_section: [nb] at 10.58 GeV.
        process: ``"upsilon4s"`` (e+e- -> Upsilon(4S) -> B Bbar) or ``"ffbar"`` (e+e- -> gamma* -> f fbar).
        daughter: PDG id of the particle of the produced pair: the B (521, 511), the quark (1-4)
            or the tau (15).
    """

    name: str
    cross_section: float
    process: str
    daughter: int


EVENT_TYPE_SPECS = {
    spec.name: spec
    for spec in (
        EventTypeSpec("charged", 0.54, "upsilon4s", 521),
        EventTypeSpec("mixed", 0.51, "upsilon4s", 511),
        EventTypeSpec("uubar", 1.61, "ffbar", 2),
        EventTypeSpec("ddbar", 0.40, "ffbar", 1),
        EventTypeSpec("ssbar", 0.38, "ffbar", 3),
        EventTypeSpec("ccbar", 1.30, "ffbar", 4),
        EventTypeSpec("taupair", 0.919, "ffbar", 15),
    )
}
assert tuple(EVENT_TYPE_SPECS) == EVENT_TYPES

#: How the events of a sample are shared among the types.
MIXES = ("cross-section", "equal")


def resolve_types(types):
    """Validate a list of event type names (None: all seven); returns a tuple in canonical order."""
    if types is None:
        return EVENT_TYPES
    types = [t.strip() for t in ([types] if isinstance(types, str) else types) if t.strip()]
    unknown = [t for t in types if t not in EVENT_TYPE_SPECS]
    if unknown or not types:
        raise ConfigError(f"unknown event type(s) {unknown or types}; choose from {list(EVENT_TYPES)}")
    return tuple(t for t in EVENT_TYPES if t in types)


def events_per_type(n_events, types=None, mix="cross-section"):
    """Split ``n_events`` among event types.

    Args:
        n_events: total number of events (>= 0).
        types: names of the types to generate (default all seven).
        mix: ``"cross-section"`` (in proportion to the cross sections) or ``"equal"``.

    Returns:
        dict type name -> number of events (largest-remainder rounding, summing to ``n_events``).
    """
    types = resolve_types(types)
    if mix not in MIXES:
        raise ConfigError(f"unknown mix {mix!r}; choose from {list(MIXES)}")
    if int(n_events) != n_events or n_events < 0:
        raise ConfigError(f"number of events must be a non-negative integer, got {n_events}")
    if mix == "equal":
        share = np.ones(len(types))
    else:
        share = np.array([EVENT_TYPE_SPECS[t].cross_section for t in types])
    exact = n_events * share / share.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = int(n_events - counts.sum())
    # Stable order: largest fractional part first, ties by canonical type order.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return dict(zip(types, counts.tolist()))
