"""A smartbkg graph model as the classifier between two samples of decay trees.

Sample A gets the label 1, sample B 0, as a one-column label ``sample_a``; the model trains on
the one training loop (:class:`smartbkg.train.Trainer`, entropy loss, early stopping on the
validation loss of a seeded fifth of the training events) and its sigmoid output is
q = P(A | decay tree).
"""

import tempfile

import numpy as np
import torch

from ..data.dataset import EventGraphDataset
from ..data.loader import GraphLoader
from ..data.table import EventTable
from ..errors import DataError
from ..train import RunConfig, Trainer
from ..train.data import Splits

#: The label column of the classifier: 1 for sample A, 0 for sample B.
LABEL = "sample_a"


def _labelled(table, value):
    return table.replace(labels=np.full((len(table), 1), bool(value)), skims=(LABEL,))


def graph_classifier_q(train_a, train_b, events, *, model="deepsets", options=None, epochs=8, ensemble=1, seed=0,
                       batch_size=256, lr=1e-3):
    """Train ``ensemble`` graph classifiers of A against B and return q = P(A | x) of ``events``.

    Args:
        train_a, train_b: :class:`~smartbkg.data.table.EventTable` training events of A and B.
        events: the events to score (e.g. B's test events).
        model, options: registry name and options of the graph model.

    Returns:
        (len(events),) float64, the mean of the members' sigmoid outputs.
    """
    table = EventTable.concat([_labelled(train_a, 1), _labelled(train_b, 0)])
    dataset = EventGraphDataset(table, skims=[LABEL])
    scored = EventGraphDataset(_labelled(events, 0), skims=[LABEL])
    if len(dataset) != len(table) or len(scored) != len(events):
        raise DataError("graph reweighting needs events with particles after the preprocessing; some have none")
    order = np.random.default_rng([seed, 3]).permutation(len(dataset))
    n_val = max(len(dataset) // 5, 1)
    train, val = dataset[np.sort(order[n_val:])], dataset[np.sort(order[:n_val])]
    splits = Splits(train, val, None, (LABEL,), tuple(dataset.event_types), dataset.vocab_size, dict(train.retention))
    outputs = []
    with tempfile.TemporaryDirectory(prefix="smartbkg-reweight-") as folder:
        for k in range(ensemble):
            config = RunConfig.from_dict({
                "data": {"batch_size": batch_size},
                "model": {"name": model, "options": dict(options or {})},
                "loss": {"name": "entropy"},
                "train": {"epochs": epochs, "lr": lr, "seed": seed + k, "silent": True, "device": "cpu",
                          "monitor": "val_loss", "calibrate_every_epoch": False},
                "out": f"{folder}/member_{k}",
            })
            trainer = Trainer(config, splits=splits)
            trainer.fit()
            trainer.model.eval()
            with torch.no_grad():
                logits = torch.cat([trainer.model(batch) for batch in GraphLoader(scored, 1024, shuffle=False)])
            outputs.append(torch.sigmoid(logits[:, 0].double()).numpy())
    return np.mean(outputs, axis=0)
