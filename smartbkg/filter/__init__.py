"""The filter in production: a trained, calibrated run applied to new events.

* :class:`Filter` (:mod:`smartbkg.filter.filter`): built from a run folder; probabilities and
  keep decisions for event tables, graph batches or iterators of tables.
* :func:`shared_uniform` (:mod:`smartbkg.filter.decision`): one uniform number per event decides
  for every skim at once.
* :func:`apply_filter` (:mod:`smartbkg.filter.apply`): stream files of any format through a filter
  into parquet shards with ``p_<skim>`` and ``weight_<skim>`` columns (``smartbkg-filter``).
* :func:`parse_shard` (:mod:`smartbkg.filter.shard`): ``--shard K/N`` of generate, convert and filter.
* :mod:`smartbkg.filter.closure`: the closure test of a filtered production.
"""

from .apply import apply_filter, filter_uniforms
from .decision import Decision, shared_uniform
from .filter import Filter, TorchBackend
from .shard import Shard, parse_shard

__all__ = ["Decision", "Filter", "Shard", "TorchBackend", "apply_filter", "filter_uniforms", "parse_shard",
           "shared_uniform"]
