"""Counter-based random numbers: each value depends only on (seed, stream, event, index).

The fast detector response must give an event the same smearing whatever chunk, worker or
subset it is processed in, and it works on the flat particle arrays of many events at once.
A numpy ``Generator`` per event would cost more than the physics, so random numbers are made
by hashing a counter instead: the key of particle ``index`` of the event with identifier
``event_id`` in ``stream`` goes through the SplitMix64 finaliser (a bijection of 64-bit
integers with good avalanche), and the top 53 bits become a uniform double in [0, 1).
"""

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    """SplitMix64 finaliser of a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


class CounterRNG:
    """Random numbers addressed by (stream, event id, index) under one seed.

    Args:
        seed: non-negative integer.
    """

    def __init__(self, seed):
        self.seed = int(seed)

    def _stream_key(self, stream):
        return splitmix64(np.array([self.seed ^ (zlib.crc32(stream.encode()) << 32)], dtype=np.uint64))[0]

    def uniform(self, stream, event_id, index=0):
        """Uniform doubles in [0, 1).

        Args:
            stream: name of the use (different names give independent numbers).
            event_id: (k,) int64 event identifier of each value.
            index: (k,) int64 (or scalar) position of the value within its event.

        Returns:
            (k,) float64.
        """
        event_id = np.asarray(event_id, dtype=np.int64).astype(np.uint64)
        index = np.asarray(index, dtype=np.int64).astype(np.uint64)
        key = splitmix64(splitmix64(event_id ^ self._stream_key(stream)) ^ index)
        return (key >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)

    def normal(self, stream, event_id, index=0):
        """Standard normal deviates (Box-Muller), same addressing as :meth:`uniform`."""
        u1 = self.uniform(stream + "/r", event_id, index)
        u2 = self.uniform(stream + "/phi", event_id, index)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

    def exponential(self, stream, event_id, index=0):
        """Exponential deviates of mean 1."""
        return -np.log1p(-self.uniform(stream, event_id, index))
