"""Data layer: event tables, readers and writers, preprocessing, graphs, datasets, loaders."""

import importlib

from .checks import ReadReport, drop_bad_events, find_bad_events
from .hdf5 import read_hdf5, write_hdf5
from .hepmc import iter_hepmc, read_hepmc, write_hepmc
from .parquet import read_parquet, write_parquet
from .preprocess import PreprocessConfig, PreprocessStats
from .readers import detect_format, iter_events, read_events
from .table import EVENT_TYPES, NODE_FEATURES, PARTICLE_FIELDS, EventTable
from .vocab import VOCAB_SIZE, pdg_to_token

__all__ = ["EVENT_TYPES", "NODE_FEATURES", "PARTICLE_FIELDS", "EventTable", "ReadReport",
           "drop_bad_events", "find_bad_events", "read_parquet", "write_parquet",
           "detect_format", "iter_events", "iter_hepmc", "read_events", "read_hdf5", "read_hepmc",
           "write_hdf5", "write_hepmc",
           "EventGraphDataset", "GraphLoader", "GraphStore", "PreprocessConfig", "PreprocessStats",
           "StreamingEventGraphDataset", "VOCAB_SIZE", "event_data", "pdg_to_token", "plan_batches"]

#: Torch-based parts, imported on first use so that torch-free commands (smartbkg-convert) start fast.
_LAZY = {"EventGraphDataset": "dataset", "StreamingEventGraphDataset": "dataset", "GraphStore": "graphs",
         "event_data": "graphs", "GraphLoader": "loader", "plan_batches": "loader"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
