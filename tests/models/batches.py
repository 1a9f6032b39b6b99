"""Batches of synthetic decay trees for the model tests, built through the data layer."""

import torch

from smartbkg.data.graphs import GraphStore
from smartbkg.data.synthetic import decay_trees


def synthetic_batch(num_events, *, vocab_size=None, **options):
    """A ``Batch`` (batch contract) of :func:`~smartbkg.data.synthetic.decay_trees` events.

    Args:
        num_events: number of events B.
        vocab_size: None for the tokens of the shipped vocabulary; a number V maps every PDG id
            to a token in [1, V) by a fixed function (tiny models have tiny embeddings).
        options: keyword arguments of ``decay_trees`` (num_particles, num_skims, seed ...).
    """
    table = decay_trees(num_events, **options)
    batch = GraphStore(table).batch(range(num_events))
    if vocab_size is not None:
        pdg = torch.from_numpy(table.particles["pdg"]).long()
        batch.pdg = (pdg.abs() * 7 + (pdg < 0)) % (vocab_size - 1) + 1
    return batch
