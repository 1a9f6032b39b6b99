"""``--shard K/N``: split one production into N jobs that together cover every event once.

Shards are numbered 1..N (as job arrays count them: ``--shard $SLURM_ARRAY_TASK_ID/N`` with
``#SBATCH --array=1-N``). Which events shard K covers depends on the step:

* generation: tasks (fixed chunks of events of one type, see
  :meth:`smartbkg.simulation.production.SampleConfig.tasks`) ``[(K-1) T/N, K T/N)`` of the T tasks
  (rounded down), so no event is generated twice;
* files (convert, filter): event j of the input, counted over all inputs in order after the
  validation that skips bad events, belongs to shard ``j mod N + 1``. Every shard reads the
  inputs (cheap next to the filter network or the detector simulation) and processes only its
  events; the decisions of the filter depend on j, never on the shard, so the N shards together
  equal one unsharded run.
"""

import re
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError


class Shard(NamedTuple):
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self):
        return f"{self.index}/{self.count}"

    def span(self, total):
        """[lo, hi) of ``total`` items (tasks) that this shard takes."""
        return (self.index - 1) * total // self.count, self.index * total // self.count

    def rows(self, start, n):
        """Positions (within a chunk) of the events of this shard among events start..start+n-1."""
        first = (self.index - 1 - start) % self.count
        return np.arange(first, n, self.count, dtype=np.int64)


def parse_shard(text):
    """``"K/N"`` -> :class:`Shard`; None stays None.

    Raises:
        ConfigError: anything but two positive integers with K <= N.
    """
    if text is None or isinstance(text, Shard):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ConfigError(f"--shard takes K/N (shard K of N, 1 <= K <= N), got {text!r}")
    k, n = int(match[1]), int(match[2])
    if n < 1:
        raise ConfigError(f"--shard {text}: N must be a positive number of shards")
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {text}: K must lie in 1..N (shards are numbered 1 to {n})")
    return Shard(k, n)


def shard_chunks(chunks, shard):
    """The events of ``shard`` in a stream of ``(path, table)`` chunks (e.g. from
    :func:`~smartbkg.data.iter_events`).

    Yields:
        (path, table of the shard's events of the chunk, (k,) int64 positions of those events in
        the whole stream); every event when ``shard`` is None.
    """
    position = 0
    for path, table in chunks:
        n = len(table)
        rows = np.arange(n, dtype=np.int64) if shard is None else shard.rows(position, n)
        yield path, (table if shard is None else table.take(rows)), position + rows
        position += n
