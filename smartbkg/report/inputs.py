"""What an evaluation report starts from: a finished run folder and labelled events.

:func:`smartbkg.train.run_folder.load_run` reads a run folder written by
``smartbkg-train`` (the best checkpoint, its configuration and ``calibration.json``);
:func:`load_inputs` reads the events to evaluate on, preprocesses and scores them as the filter
does (:class:`smartbkg.filter.Filter`), and computes the generator-level event variables
(:mod:`smartbkg.data.event_variables`) of every event, aligned row by row.

The calibration of a run is fitted on its validation split; give data the run did not train or
calibrate on (e.g. a sample generated with another seed) for an unbiased report.
"""

from dataclasses import dataclass

import numpy as np

from ..data.event_variables import event_variables
from ..data.readers import read_events
from ..errors import ConfigError, DataError
from ..filter import Filter


@dataclass
class Inputs:
    """Evaluation events of one run, row-aligned.

    Attributes:
        skims: the evaluated skims (columns of ``logits`` and ``y``).
        logits: (n, S) float64 network logits; y: (n, S) float64 skim flags 0/1;
        weight: (n,) float64 event weights (ones when the data has none).
        variables: {name: (n,) array} event variables (:data:`smartbkg.data.event_variables.VARIABLES`).
        events_read: events read; events_invalid: events the validation of the readers skipped
            (:class:`~smartbkg.data.checks.ReadReport`); events_dropped: events left without
            particles by the preprocessing (no graph, not evaluated).
    """

    skims: tuple
    logits: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    variables: dict
    events_read: int
    events_invalid: int
    events_dropped: int


def load_inputs(run, data, *, skims=None, batch_size=512):
    """Read, preprocess and score the events ``data`` with the network of ``run``.

    Args:
        run: :class:`~smartbkg.train.run_folder.Run` (:func:`~smartbkg.train.run_folder.load_run`).
        data: event files or folders (any format :func:`~smartbkg.data.read_events` reads) with
            skim labels.
        skims: skims to evaluate (default every skim of the run).
        batch_size: events per network call.

    Raises:
        smartbkg.errors.ConfigError: a skim the run did not train.
        smartbkg.errors.DataError: data without the labels of an evaluated skim, of other event types than the
            run's, or without passing and failing events of a skim.
    """
    skims = run.skims if skims is None else tuple(skims)
    untrained = [s for s in skims if s not in run.skims]
    if untrained or not skims:
        raise ConfigError(f"skim(s) {untrained or list(skims)} were not trained by the run; it predicts "
                          f"{list(run.skims)}")
    table, read_report = read_events(data, return_report=True)
    missing = [s for s in run.skims if s not in table.skims]
    if missing:
        raise DataError(f"the data has no labels of skim(s) {missing} (it has {list(table.skims)}); "
                        "evaluation needs the skim decisions")
    if tuple(table.event_types) != tuple(run.model_info["event_types"]):
        raise DataError(f"the data's event types {list(table.event_types)} differ from the run's "
                        f"{list(run.model_info['event_types'])}")
    table = table.select_skims(run.skims)
    scorer = Filter.of_run(run, skims=skims, batch_size=batch_size)
    store, good = scorer.prepare(table)
    if not len(store):
        raise DataError("no event to evaluate (none has particles after the preprocessing)")
    logits = scorer.logits_of_store(store).astype(np.float64)
    raw = table[np.flatnonzero(good)]
    y = raw.labels[:, scorer.columns].astype(np.float64)
    for j, skim in enumerate(skims):
        n_pass = int(y[:, j].sum())
        if n_pass in (0, len(y)):
            raise DataError(f"the data has no {'passing' if n_pass == 0 else 'failing'} events of skim {skim!r} "
                            f"({len(y)} events)", field=skim)
    weight = np.ones(len(raw)) if raw.weight is None else raw.weight.astype(np.float64)
    return Inputs(skims, logits, y, weight, event_variables(raw), read_report.read,
                  read_report.read - len(table), int((~good).sum()))

