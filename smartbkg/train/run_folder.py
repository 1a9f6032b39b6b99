"""A finished run folder read back: :func:`smartbkg.train.run_folder.load_run`.

A run folder written by ``smartbkg-train`` holds the best checkpoint ``checkpoints/best.pt``
(model weights and ``model_info``: architecture, skims, event types, vocabulary size), the
resolved configuration (in the checkpoint) and ``calibration.json`` (logit -> sampling
probability per skim, fitted at the end of training). :func:`load_run` loads them and checks
that they fit together and fit this installation (the PDG vocabulary); the filter
(:meth:`smartbkg.filter.Filter.from_run`) and the evaluation report start from it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.skim_emulation import FEATURES as EMULATION_FEATURES
from ..data.vocab import VOCAB_SIZE
from ..errors import ConfigError
from ..sampling import Calibration
from .checkpoint import load_checkpoint
from .config import RunConfig
from .data import preprocess_config
from .loop import instantiate_model

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
        """The skims the network predicts, in output order."""
        return tuple(self.model_info["skims"])

    @property
    def event_types(self):
        """The event type names the network was trained with (codes in this order)."""
        return tuple(self.model_info["event_types"])

    @property
    def preprocess(self):
        """The run's :class:`~smartbkg.data.preprocess.PreprocessConfig` (None: raw events)."""
        return preprocess_config(self.config.data.preprocess)

    @property
    def timings(self):
        """The run's times per event in ms, a dict with the keys t_fast, t_nn and t_slow."""
        t = self.config.train
        return {"t_fast": t.t_fast, "t_nn": t.t_nn, "t_slow": t.t_slow}


def load_run(run_dir):
    """The :class:`Run` in ``run_dir``, a folder written by ``smartbkg-train``.

    Raises:
        smartbkg.errors.ConfigError: no such folder, no ``calibration.json`` (a run that did not
            finish) or an unreadable one, a network trained with another PDG vocabulary or
            another number of skim-emulation features, a
            calibration of other skims than the network's, a checkpoint that does not fit its
            ``model_info``.
        smartbkg.errors.DataError: a missing or unreadable checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    calibration_path = run_dir / CALIBRATION_FILE
    if not calibration_path.is_file():
        raise ConfigError(f"run folder {run_dir} has no {CALIBRATION_FILE}: the run has not finished "
                          "(training fits the calibration at the end)")
    state = load_checkpoint(run_dir / CHECKPOINT)
    info = state["model_info"]
    if info["vocab_size"] != VOCAB_SIZE:
        raise ConfigError(f"run folder {run_dir}: the network was trained with a PDG vocabulary of "
                          f"{info['vocab_size']} tokens, this smartbkg has {VOCAB_SIZE}; use the smartbkg "
                          "version the run was trained with")
    if info.get("num_event_features", 0) not in (0, len(EMULATION_FEATURES)):
        raise ConfigError(f"run folder {run_dir}: the network was trained with {info['num_event_features']} "
                          f"skim-emulation features, this smartbkg computes {len(EMULATION_FEATURES)}; use the "
                          "smartbkg version the run was trained with, or train it again")
    calibrations = _read_calibrations(calibration_path)
    if sorted(calibrations) != sorted(info["skims"]):
        raise ConfigError(f"{calibration_path} calibrates skims {sorted(calibrations)}, the network predicts "
                          f"{list(info['skims'])}: the calibration belongs to another run")
    config = RunConfig.from_dict(state["config"])
    try:
        model = instantiate_model(info)
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ConfigError(f"run folder {run_dir}: the checkpoint does not fit its model_info "
                          f"({str(exc).splitlines()[0][:200]})") from None
    return Run(run_dir, config, model.eval(), info, calibrations)


def _read_calibrations(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path} holds no calibration (expected {{skim: calibration}})")
    return {skim: Calibration.from_dict(c) for skim, c in data.items()}
