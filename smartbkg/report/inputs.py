"""What an evaluation report starts from: a finished run folder and labelled events.

:func:`load_run` reads a run folder written by ``smartbkg-train`` (the best checkpoint, its
configuration and ``calibration.json``); :func:`load_inputs` reads the events to evaluate on,
preprocesses them as the run did, computes the network's logits and the generator-level event
variables (:mod:`smartbkg.data.event_variables`) of every event, aligned row by row.

The calibration of a run is fitted on its validation split; give data the run did not train or
calibrate on (e.g. a sample generated with another seed) for an unbiased report.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import prepare_events
from ..data.event_variables import event_variables
from ..data.graphs import GraphStore
from ..data.readers import read_events
from ..errors import ConfigError, DataError
from ..sampling import Calibration
from ..train.checkpoint import load_checkpoint
from ..train.config import RunConfig
from ..train.data import _preprocess_config
from ..train.loop import _instantiate

CALIBRATION_FILE = "calibration.json"
CHECKPOINT = Path("checkpoints") / "best.pt"


@dataclass
class Run:
    """A finished training run.

    Attributes:
        path: the run folder; config: its :class:`~smartbkg.train.config.RunConfig`;
        model: the best model (eval mode, CPU); model_info: its architecture, skims, event types;
        calibrations: {skim: :class:`~smartbkg.sampling.Calibration`}.
    """

    path: Path
    config: RunConfig
    model: torch.nn.Module
    model_info: dict
    calibrations: dict

    @property
    def skims(self):
        return tuple(self.model_info["skims"])

    @property
    def timings(self):
        """The run's times per event in ms, a dict with the keys t_fast, t_nn and t_slow."""
        t = self.config.train
        return {"t_fast": t.t_fast, "t_nn": t.t_nn, "t_slow": t.t_slow}


def load_run(run_dir):
    """The :class:`Run` in ``run_dir``.

    Raises:
        smartbkg.errors.ConfigError: no such folder, or no ``calibration.json`` (a run that did not finish), a
            calibration of other skims than the network's.
        smartbkg.errors.DataError: a missing or unreadable checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    calibration_path = run_dir / CALIBRATION_FILE
    if not calibration_path.is_file():
        raise ConfigError(f"run folder {run_dir} has no {CALIBRATION_FILE}: the run has not finished "
                          "(training fits the calibration at the end)")
    try:
        data = json.loads(calibration_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{calibration_path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{calibration_path}: expected an object skim -> calibration")
    calibrations = {skim: Calibration.from_dict(entry) for skim, entry in data.items()}
    state = load_checkpoint(run_dir / CHECKPOINT)
    info = state["model_info"]
    if sorted(calibrations) != sorted(info["skims"]):
        raise ConfigError(f"{calibration_path} calibrates skims {sorted(calibrations)}, the network predicts "
                          f"{list(info['skims'])}: the calibration belongs to another run")
    model = _instantiate(info)
    model.load_state_dict(state["model"])
    return Run(run_dir, RunConfig.from_dict(state["config"]), model.eval(), info, calibrations)


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
        run: :class:`Run`.
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
    prepared, good, _, _ = prepare_events(table, preprocess=_preprocess_config(run.config.data.preprocess),
                                          strict=False, validate=False)
    logits = _logits(run.model, GraphStore(prepared), batch_size)
    columns = [run.skims.index(s) for s in skims]
    raw = table[np.flatnonzero(good)]
    y = raw.labels[:, columns].astype(np.float64)
    for j, skim in enumerate(skims):
        n_pass = int(y[:, j].sum())
        if n_pass in (0, len(y)):
            raise DataError(f"the data has no {'passing' if n_pass == 0 else 'failing'} events of skim {skim!r} "
                            f"({len(y)} events)", field=skim)
    weight = np.ones(len(raw)) if raw.weight is None else raw.weight.astype(np.float64)
    return Inputs(skims, logits[:, columns], y, weight, event_variables(raw), read_report.read,
                  read_report.read - len(table), int((~good).sum()))


@torch.no_grad()
def _logits(model, store, batch_size):
    """(n, S) float64 logits of every event of ``store``, in order."""
    n = len(store)
    groups = [torch.arange(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]
    parts = [model(batch).double().numpy() for batch in store.batches(groups)]
    if not parts:
        raise DataError("no event to evaluate (none has particles after the preprocessing)")
    return np.concatenate(parts)
