"""What a trial optimises, how it trains (the one training loop) and how it is pruned.

Objectives (:data:`~smartbkg.tune.objective.OBJECTIVES`), each a number per trial:

* ``speedup`` (default, maximise): the validation speedup of importance sampling with the
  calibrated probabilities (``val/speedup``, :mod:`smartbkg.train.evaluation`) at the best epoch;
* ``auc``, ``significance`` (maximise), ``val_loss`` (minimise): the other validation monitors;
* ``speedup_measured`` (maximise): the validation speedup with the network time t_NN of the
  formula (:mod:`smartbkg.metrics`) replaced by the time per event measured for the trial's own
  model (``train.t_nn`` of the trial's config is set to it, so every speedup of the run, the
  calibration and a speedup loss use it): larger networks must buy their time with quality;
* ``oracle_fraction`` (maximise): the validation speedup of each counted skim divided by that
  skim's Bayes limit (``oracle``: {skim: speedup}, e.g. from ``benchmarks/oracle.py``,
  :func:`read_oracle`), averaged over the skims: unlike the mean speedup, a skim with a large
  possible speedup does not outweigh the others;
* ``t_nn`` (minimise): the measured network time per event in ms, as a second objective next
  to one of the above (``("speedup", "t_nn")``: a Pareto front of quality against cost).

The first objective that is a validation metric is also the run's ``train.monitor`` (early
stopping and best checkpoint follow it) and is reported to the trial after every epoch for
pruning; the trial's value is that metric at the best epoch. With several skims the metric is
their mean (the averaged names of :mod:`smartbkg.train.evaluation`), or the one of ``skim``.
Multi-objective studies are not pruned (Optuna prunes single-objective studies only).

The time per event is always measured and recorded (trial attribute ``t_nn_ms``): the median of
``repeat`` forward passes (inference mode, eval mode, after one warm-up pass) over a fixed batch
of the first ``timing_events`` validation events, on the training device, as
``benchmarks/models.py`` measures inference. It depends on the machine and its load.
"""

import json
import math
import statistics
import time
from pathlib import Path

import optuna
import torch

from ..data.loader import GraphLoader
from ..errors import ConfigError, DataError
from ..locking import run_folder_lock
from ..train.loop import Trainer, data_model_info, instantiate_model

#: name -> (training monitor or None, direction).
OBJECTIVES = {
    "speedup": ("speedup", "maximize"),
    "auc": ("auc", "maximize"),
    "significance": ("significance", "maximize"),
    "val_loss": ("val_loss", "minimize"),
    "speedup_measured": ("speedup", "maximize"),
    "oracle_fraction": ("speedup", "maximize"),
    "t_nn": (None, "minimize"),
}


def check_objectives(objectives):
    """The objectives as a tuple of names (``ConfigError`` for unknown, repeated or time-only ones)."""
    objectives = tuple(objectives)
    unknown = [name for name in objectives if name not in OBJECTIVES]
    if unknown or not objectives or len(set(objectives)) != len(objectives):
        raise ConfigError(f"objectives must be distinct names among {', '.join(OBJECTIVES)}, got {list(objectives)}")
    if all(OBJECTIVES[name][0] is None for name in objectives):
        raise ConfigError("t_nn alone is no objective: add a quality objective, e.g. speedup,t_nn")
    speedups = [name for name in ("speedup", "speedup_measured", "oracle_fraction") if name in objectives]
    if len(speedups) > 1:
        raise ConfigError(f"choose one of {', '.join(speedups)}")
    return objectives


def read_oracle(path):
    """{skim: Bayes-limit speedup} from a JSON file: the results of ``benchmarks/oracle.py``
    (``{"skims": {skim: {"speedup": x, ...}}}``) or a plain ``{skim: x}``.

    Raises:
        DataError: unreadable file, or a value that is not a positive number.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the oracle speedups: {exc}", path=path) from None
    skims = data.get("skims", data) if isinstance(data, dict) else None
    if not isinstance(skims, dict):
        raise DataError("the oracle file must map skims to speedups", path=path)
    out = {}
    for skim, value in skims.items():
        value = value.get("speedup") if isinstance(value, dict) else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise DataError(f"skim {skim!r}: the oracle speedup must be a positive number, got {value!r}", path=path)
        out[skim] = float(value)
    return out


def directions(objectives):
    """Optuna's study directions of ``objectives``."""
    return [OBJECTIVES[name][1] for name in objectives]


def monitor_of(objectives):
    """The training monitor: that of the first objective that is a validation metric."""
    return next(OBJECTIVES[name][0] for name in objectives if OBJECTIVES[name][0] is not None)


def metric_key(monitor, skim=None):
    """The record key of a monitor, e.g. ``val/speedup`` or ``val/auc/tau_generic``."""
    if monitor == "val_loss":
        return "val/loss"
    return f"val/{monitor}" + (f"/{skim}" if skim else "")


def measure_inference_time(model, batch, *, repeat=5):
    """Network time per event in ms: median of ``repeat`` timed forward passes over ``batch``.

    Args:
        model: any smartbkg model (put in eval mode; its weights do not matter for the time).
        batch: a PyG ``Batch`` on the model's device (B events).
        repeat: timed passes after one untimed warm-up pass.
    """
    model.eval()
    device = next(model.parameters()).device
    times = []
    with torch.inference_mode():
        for i in range(repeat + 1):
            start = time.perf_counter()
            model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times) / batch.num_graphs


class PruningCallback:
    """Trainer callback: report ``value_of(record)`` of every epoch to an Optuna trial and stop a
    pruned one (``name`` says what the value is).

    Raises ``optuna.TrialPruned`` (after the epoch's checkpoint is written) when the study's
    pruner says so, except after the last epoch (the trial is then complete); the epoch and value
    are recorded as the trial's ``pruned`` attribute.
    """

    def __init__(self, trial, value_of, name):
        self.trial, self.value_of, self.name = trial, value_of, name

    def on_epoch_end(self, trainer, epoch, record):
        value = self.value_of(record)
        self.trial.report(value, epoch)
        if epoch < trainer.config.train.epochs and self.trial.should_prune():
            reason = f"after epoch {epoch}: {self.name} = {value:.4g}"
            self.trial.set_user_attr("pruned", reason)
            raise optuna.TrialPruned(reason)
        return False


class TrialObjective:
    """The objective function of a study: one trial = one ordinary run of the training loop.

    Args:
        base: :class:`~smartbkg.train.config.RunConfig` the trials start from.
        space: :class:`~smartbkg.tune.space.SearchSpace`.
        objectives: names of :data:`~smartbkg.tune.objective.OBJECTIVES`.
        study_dir: the study folder; trial n trains in ``study_dir/trial_000n``.
        splits, ctx: the data and process context shared by all trials of this process.
        skim: the skim whose metrics count (default: the mean over the trained skims).
        slot: callable(trial number) -> whether the trial may run (the study's trial budget);
            a trial that may not is failed at once with the attribute ``surplus``.
        timing_events, repeat: the batch and repetitions of the t_NN measurement.
        oracle: {skim: Bayes-limit speedup} of every counted skim (objective ``oracle_fraction``).
    """

    def __init__(self, base, space, objectives, study_dir, splits, ctx, *, skim=None, slot=None,
                 timing_events=256, repeat=5, oracle=None):
        self.base, self.space, self.objectives = base, space, check_objectives(objectives)
        self.study_dir, self.splits, self.ctx, self.skim, self.slot = study_dir, splits, ctx, skim, slot
        self.key = metric_key(monitor_of(self.objectives), skim)
        self.oracle = None
        if "oracle_fraction" in self.objectives:
            counted = [skim] if skim else list(splits.skims)
            missing = [s for s in counted if s not in (oracle or {})]
            if missing:
                raise ConfigError(f"objective oracle_fraction needs the oracle speedup of skim(s) {missing} "
                                  "(--oracle FILE, e.g. benchmarks/results/oracle.json)")
            self.oracle = {s: oracle[s] for s in counted}
        self.prune = len(self.objectives) == 1
        loader = GraphLoader(splits.val, min(timing_events, len(splits.val)), shuffle=False)
        self.timing_batch = next(iter(loader)).to(ctx.device)
        self.repeat = repeat

    def __call__(self, trial):
        if self.slot is not None and not self.slot(trial.number):
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"trial {trial.number} is beyond the study's number of trials")
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}".splitlines()[0])
            raise

    def trial_dir(self, number):
        return self.study_dir / f"trial_{number:04d}"

    def _run(self, trial):
        out = self.trial_dir(trial.number)
        if (out / "checkpoints" / "last.pt").exists():
            raise ConfigError(f"{out} already holds a run (the study folder belongs to another storage?)")
        overrides = self.space.suggest(trial)
        overrides.update({"train.monitor": monitor_of(self.objectives), "train.monitor_skim": self.skim,
                          "out": str(out)})
        config = self.base.with_overrides(overrides)
        t_nn = self._time_per_event(config)
        trial.set_user_attr("t_nn_ms", t_nn)
        trial.set_user_attr("run_dir", str(out))
        if "speedup_measured" in self.objectives:
            config = config.with_overrides({"train.t_nn": t_nn})
        name = "oracle_fraction" if self.oracle else self.key
        callbacks = [PruningCallback(trial, self.quality, name)] if self.prune else []
        with run_folder_lock(out):  # one writer per trial folder
            trainer = Trainer(config, splits=self.splits, ctx=self.ctx, callbacks=callbacks)
            try:
                summary = trainer.fit()
            finally:
                trainer.close()
        if summary["best_epoch"] == 0:
            raise ConfigError(f"no epoch of the trial had a finite {self.key}")
        record = trainer.history[summary["best_epoch"] - 1]
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        trial.set_user_attr("epochs_run", summary["epochs_run"])
        values = [t_nn if OBJECTIVES[name][0] is None else self.quality(record) for name in self.objectives]
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"the trial's objective values are not finite: {values}")
        return values[0] if len(values) == 1 else values

    def quality(self, record):
        """The quality objective of an epoch's record: the monitored metric, or the mean
        fraction of the oracle speedup (``oracle_fraction``)."""
        if self.oracle is None:
            return record[self.key]
        return statistics.fmean(record[f"val/speedup/{s}"] / limit for s, limit in self.oracle.items())

    def _time_per_event(self, config):
        """t_NN in ms of a freshly initialised model of ``config`` on the fixed timing batch."""
        info = {"name": config.model.name, "options": dict(config.model.options),
                **data_model_info(config, self.splits)}
        model = instantiate_model(info).to(self.ctx.device)
        return measure_inference_time(model, self.timing_batch, repeat=self.repeat)


class SurplusTrial(Exception):
    """A trial asked for when the study already had its number of trials (it is failed, not counted)."""
