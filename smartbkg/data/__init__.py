"""Data layer: event tables, readers and writers, preprocessing, graphs, datasets, loaders."""

from .checks import ReadReport, drop_bad_events, find_bad_events
from .parquet import read_parquet, write_parquet
from .table import EVENT_TYPES, NODE_FEATURES, PARTICLE_FIELDS, EventTable

__all__ = ["EVENT_TYPES", "NODE_FEATURES", "PARTICLE_FIELDS", "EventTable", "ReadReport",
           "drop_bad_events", "find_bad_events", "read_parquet", "write_parquet"]
