"""The embedded default sample: Pythia 8 Belle II-like events, fast detector response, skims.

``generate(n_events, seed=..., types=..., workers=...)`` returns an
:class:`~smartbkg.data.table.EventTable` with one label column per skim; ``produce(...)`` (and the
``smartbkg-generate`` command) writes parquet shards with ``metadata.json``.
"""

from .beams import Beams
from .detector import DetectorConfig, Reconstruction, reconstruct
from .event_types import EVENT_TYPE_SPECS, events_per_type
from .production import SampleConfig, generate, produce
from .skims import SKIMS, apply_skims

__all__ = ["EVENT_TYPE_SPECS", "SKIMS", "Beams", "DetectorConfig", "Reconstruction", "SampleConfig",
           "apply_skims", "events_per_type", "generate", "produce", "reconstruct"]
