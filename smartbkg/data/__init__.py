"""Data layer: event tables, readers and writers, preprocessing, graphs, datasets, loaders."""

from .checks import ReadReport, drop_bad_events, find_bad_events
from .hdf5 import read_hdf5, write_hdf5
from .hepmc import iter_hepmc, read_hepmc, write_hepmc
from .parquet import read_parquet, write_parquet
from .readers import detect_format, iter_events, read_events
from .table import EVENT_TYPES, NODE_FEATURES, PARTICLE_FIELDS, EventTable

__all__ = ["EVENT_TYPES", "NODE_FEATURES", "PARTICLE_FIELDS", "EventTable", "ReadReport",
           "drop_bad_events", "find_bad_events", "read_parquet", "write_parquet",
           "detect_format", "iter_events", "iter_hepmc", "read_events", "read_hdf5", "read_hepmc",
           "write_hdf5", "write_hepmc"]
