"""The one training loop shared by every model and loss: :class:`Trainer`.

One epoch: shuffle (seeded by ``train.seed`` and the epoch), forward under bf16 autocast on GPU,
the loss on the global batch (gathered over DDP ranks, see
:func:`~smartbkg.train.distributed.global_loss`), backward, gradient clipping, AdamW step; a
step whose loss or gradient norm is not finite is skipped (the same on every rank) and counted.
Then validation: predictions gathered over ranks, the validation loss (the training loss, but
only the speedup part of ``entropeedup``: it must not depend on the epoch), AUC, raw and calibrated speedup
against the perfect-classifier limit, binned significance; early stopping and the best
checkpoint follow ``train.monitor``. After training the best model is evaluated, the calibration
is fitted on the validation set and applied to the test set (or the validation set when there
is none), and a summary is written.

Run folder (``config.out``)::

    config.yaml            the resolved configuration: every option, with the skims trained on,
                           the retention eps of each skim (data.retention) and every option of
                           the loss (loss.options) filled in
    metrics.json/.csv      one record per epoch
    checkpoints/last.pt    everything needed to resume (written atomically every epoch)
    checkpoints/best.pt    the best model by the monitor (+ its calibration after training)
    tensorboard/           scalars per epoch, PR and ROC curves, hparams with the final metrics;
                           tensorboard/steps: loss and learning rate per optimiser step
    calibration.json       the sampling calibration of the best model, per skim
    summary.json           final metrics (AUC, speedup, perfect limit, N_eff ...), run facts and
                           warnings (splits with too few passing events)
"""

import contextlib
import inspect
import io
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.features import FeatureDataset
from ..data.skim_emulation import FEATURES as EMULATION_FEATURES
from ..errors import ConfigError, DataError
from ..losses import SAMPLING_CONTEXT, build_loss, list_losses
from ..models import build_model, list_models, model_class
from ..registry import import_modules
from .checkpoint import (FORMAT_VERSION, load_checkpoint, load_model_state, rng_state, save_checkpoint,
                         set_rng_state)
from .config import MONITORS, ModelConfig, RunConfig
from .data import build_splits, dataset_size, labels, make_loader
from .distributed import (all_sum, any_rank, barrier, cleanup_distributed, gather_rows, global_loss,
                          setup_distributed)
from .evaluation import Predictions, Timings, check_both_classes, fit_calibrations, skim_metrics
from .logging import RunLogger, write_json
from .schedule import EarlyStopping, build_optimizer, build_scheduler
from .variables import check_variable, event_variable

#: Steps between two reads of the running loss for the progress bar (each read waits for the device).
PROGRESS_EVERY = 100
#: Fewest passing events per training batch, on average, for the batch speedup loss: below it most
#: batches hold no passing event of the skim, and the filters collapsed where this was measured
#: (multi-label runs at batch 128: skims with 0.1-0.4 passing events per batch reached 0-3 % of
#: their oracle, those with 1.6 and more trained normally).
MIN_PASSING_PER_BATCH = 1.0


class Trainer:
    """Train one filter network as described by a :class:`~smartbkg.train.config.RunConfig`.

    Args:
        config: the run configuration; ``config.out`` is the run folder (required).
        splits: pre-built :class:`~smartbkg.train.data.Splits` (default: built from ``config.data``).
        ctx: :class:`~smartbkg.train.distributed.DistContext` (default: from the torchrun
            environment, one process without it).
        callbacks: objects with a method ``on_epoch_end(trainer, epoch, record)``, called in order
            after every epoch's validation, checkpoints and logging (``record``: the epoch's
            metrics, as in ``metrics.json``; the same on every DDP rank). A callback that returns
            True ends training after this epoch as early stopping would (:meth:`finish` runs and
            the summary is returned; the stop is not stored in the checkpoint). An exception
            raised by a callback, e.g. ``optuna.TrialPruned``, ends :meth:`fit` at once and
            propagates; the run folder then holds this epoch's ``last.pt`` and can be resumed.

    Use :meth:`fit` to train, :meth:`resume` to continue a run folder.
    """

    def __init__(self, config, *, splits=None, ctx=None, model_info=None, callbacks=()):
        if config.out is None:
            raise ConfigError("option out (the run folder) is required")
        config = self.config = RunConfig.from_dict(config.to_dict())  # a private copy
        _check_names(config, feature_data=isinstance(getattr(splits, "train", None), FeatureDataset))
        self.ctx = ctx or setup_distributed(config.train.device)
        self.device = self.ctx.device
        self.run_dir = Path(config.out)
        t = config.train
        self.splits = splits or build_splits(config.data, self.run_dir, ctx=self.ctx, quiet=self.quiet)
        self.skims = list(self.splits.skims)
        config.data.skims = list(self.skims)  # the resolved config names the skims trained on
        _check_skim(t.monitor_skim, self.skims)
        check_both_classes(labels(self.splits.val), self.skims, "validation")
        self.retention = self.splits.retention
        self.timings = Timings(t.t_fast, t.t_nn, t.t_slow)
        self.monitor_mode = MONITORS[t.monitor]

        torch.manual_seed(t.seed)
        self.model, self.model_info = self._build_model(model_info)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model, t)
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.ddp_model = self._wrap(self.model)
        # Dropout and other in-training randomness: one stream per rank, after the shared init.
        torch.manual_seed(t.seed + 1_000_003 * self.ctx.rank)

        self.train_loader = make_loader(self.splits.train, config.data, t.seed, self.ctx, train=True)
        self.val_loader = make_loader(self.splits.val, config.data, t.seed, self.ctx, train=False)
        self.test_loader = (make_loader(self.splits.test, config.data, t.seed, self.ctx, train=False)
                            if self.splits.test is not None else None)
        self.scheduler = build_scheduler(self.optimizer, t, len(self.train_loader), self.monitor_mode)
        self.loss = build_loss(config.loss.name, **self._loss_options())
        self.validation_loss = self.loss.validation_loss()
        # The resolved config holds what the run really used: the retention of every skim and
        # every option of the loss (its sampling context lives in data.retention and train).
        config.data.retention = {skim: float(self.retention[skim]) for skim in self.skims}
        config.loss.options = {k: v for k, v in self.loss.config.items() if k != "name" and k not in SAMPLING_CONTEXT}
        self.early = EarlyStopping(self.monitor_mode, t.patience, t.min_delta)
        # auto: bf16 where the GPU computes it natively (Ampere and later); older GPUs emulate it
        # slowly, so they train in float32
        self.amp = t.amp == "bf16" or (t.amp == "auto" and self.device.type == "cuda"
                                       and torch.cuda.is_bf16_supported(including_emulation=False))
        self.epoch = 0
        self.step = 0
        self.skipped_steps = 0
        self.stopped = False
        self.history = []
        self.logger = None
        self.callbacks = list(callbacks)
        if not self.quiet:
            for warning in self.loss_warnings():
                print(f"warning: {warning}", file=sys.stderr)

    # ------------------------------------------------------------------ construction
    @property
    def quiet(self):
        """No progress bar or epoch lines (``train.quiet`` or ``train.silent``, or not the main rank)."""
        return self.config.train.quiet or self.config.train.silent or not self.ctx.is_main

    def _build_model(self, model_info=None):
        """The model: from ``model_info`` (resume), from ``train.init_from`` (fine-tuning) or fresh.

        Fine-tuning takes the architecture from the checkpoint and re-initialises the output
        head (``model.head``, a linear layer) when the skims differ or ``train.reset_head`` says so.
        """
        t = self.config.train
        if model_info is not None:
            return instantiate_model(model_info), model_info
        data = data_model_info(self.config, self.splits)
        if t.init_from is None:
            info = {"name": self.config.model.name, "options": dict(self.config.model.options), **data}
            return instantiate_model(info), info
        source = load_checkpoint(t.init_from)
        info = dict(source["model_info"])
        if info["event_types"] != data["event_types"] or info["vocab_size"] != data["vocab_size"]:
            raise ConfigError(f"train.init_from {t.init_from}: the checkpoint was trained with event types "
                              f"{info['event_types']} and vocabulary {info['vocab_size']}, the data has "
                              f"{data['event_types']} and {data['vocab_size']}")
        if info.get("num_event_features", 0) != data["num_event_features"]:
            raise ConfigError(f"train.init_from {t.init_from}: the checkpoint was trained with "
                              f"{info.get('num_event_features', 0)} event features, the run has "
                              f"{data['num_event_features']} (data.event_features must match)")
        model = instantiate_model(info)
        load_model_state(model, source["model"], t.init_from)
        reset = t.reset_head if t.reset_head is not None else info["skims"] != self.skims
        if not reset and info["skims"] != self.skims:
            raise ConfigError(f"train.init_from {t.init_from} predicts skims {info['skims']}, the run asks "
                              f"for {self.skims}: set train.reset_head")
        if reset:
            head = getattr(model, "head", None)
            if not isinstance(head, torch.nn.Linear):
                raise ConfigError(f"model {info['name']!r} has no linear 'head' to re-initialise for new skims")
            model.head = torch.nn.Linear(head.in_features, len(self.skims))
        # The run trains the checkpoint's architecture: record it as the run's model.
        self.config.model = ModelConfig(info["name"], dict(info["options"]))
        return model, {**info, "skims": self.skims}

    def _wrap(self, model):
        if not self.ctx.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=self.config.train.find_unused_parameters)

    def _loss_options(self):
        options = dict(self.config.loss.options)
        clash = sorted(set(options) & set(SAMPLING_CONTEXT))
        if clash:
            raise ConfigError(f"loss.options {clash}: the retention comes from data.retention and the "
                              "timings and max_weight from train.t_fast/t_nn/t_slow/max_weight")
        eps = torch.tensor([self.retention[s] for s in self.skims], dtype=torch.float32)
        return {**options, "eps": eps, "max_weight": self.config.train.max_weight,
                **self.timings.as_kwargs()}

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(cls, run_dir, *, splits=None, ctx=None, overrides=None):
        """Continue the run in ``run_dir`` from ``checkpoints/last.pt``.

        Model, optimiser, scheduler, early stopping, RNG states, history and epoch are restored,
        so the continued run ends exactly as an uninterrupted one would (bit for bit on CPU; to
        float rounding on a GPU, whose atomic scatters are not deterministic). A run killed before its
        first checkpoint (only ``config.yaml`` written) starts again from its configuration.

        Args:
            run_dir: a run folder written by :class:`Trainer`.
            overrides: {"section.option": value} changes of the options in
                :data:`smartbkg.train.cli.RESUMABLE` (e.g. ``{"train.quiet": True}`` or
                ``{"train.epochs": 20}``). More epochs extend the run: with the ``cosine``
                schedule the remaining steps follow the schedule of the new number of epochs
                (:class:`~smartbkg.train.schedule.WarmupCosineLR`).
        """
        run_dir = Path(run_dir)
        last = run_dir / "checkpoints" / "last.pt"
        state = None
        if last.is_file() or not (run_dir / "config.yaml").is_file():
            state = load_checkpoint(last)
            config = RunConfig.from_dict(state["config"])
        else:
            config = RunConfig.from_file(run_dir / "config.yaml")
        config.out = str(run_dir)
        if overrides:
            config = config.with_overrides(overrides)
        if state is None:
            return cls(config, splits=splits, ctx=ctx)
        trainer = cls(config, splits=splits, ctx=ctx, model_info=state["model_info"])
        trainer.load_state(state)
        return trainer

    def load_state(self, state):
        """Restore a checkpoint written by :meth:`state_dict`."""
        load_model_state(self.model, state["model"], self.run_dir / "checkpoints" / "last.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.early.load_state_dict(state["early_stopping"])
        self.epoch, self.step = state["epoch"], state["step"]
        # Early stopping is judged with this run's patience: a resumed run whose patience was
        # raised continues where it had stopped (the same decision as saved when it is unchanged).
        self.skipped_steps, self.stopped = state["skipped_steps"], self.early.should_stop
        self.history = list(state["history"])
        set_rng_state(state["rng"][self.ctx.rank] if self.ctx.rank < len(state["rng"]) else state["rng"][0],
                      self.ctx.device)

    def state_dict(self, rng_states):
        """Everything needed to resume (see :mod:`smartbkg.train.checkpoint`)."""
        return {
            "format": FORMAT_VERSION,
            "epoch": self.epoch,
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "stopped": self.stopped,
            "model": self.model.state_dict(),
            "model_info": self.model_info,
            "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {} if self.scheduler is None else self.scheduler.state_dict(),
            "early_stopping": self.early.state_dict(),
            "history": self.history,
            "rng": rng_states,
            "retention": dict(self.retention),
        }

    # ------------------------------------------------------------------ training
    def fit(self, *, stop_after=None):
        """Train until ``train.epochs``, early stopping, or ``stop_after`` epochs (then return None).

        ``stop_after`` leaves a resumable run folder, as a job killed after that epoch would;
        otherwise training ends with :meth:`finish` and its summary is returned.
        """
        t = self.config.train
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.to_yaml(self.run_dir / "config.yaml")
        self.logger = RunLogger(self.run_dir, enabled=self.ctx.is_main, purge_step=self.epoch + 1,
                                purge_optimizer_step=self.step + 1)
        if self.epoch > 0 and (self.stopped or self.epoch >= t.epochs) and self.ctx.is_main and not t.silent:
            print(f"{self.run_dir}: {self._nothing_to_train()}", file=sys.stderr)
        try:
            while self.epoch < t.epochs and not self.stopped:
                self._run_epoch(self.epoch + 1)
                if stop_after is not None and self.epoch >= stop_after and self.epoch < t.epochs:
                    return None
            return self.finish()
        finally:
            self.logger.close()

    def loss_warnings(self):
        """One message per skim that the speedup loss sees fewer than :data:`MIN_PASSING_PER_BATCH`
        times per training batch on average (retention x batch size)."""
        if self.config.loss.name != "speedup":
            return []
        batch = self.config.data.batch_size
        return [f"loss speedup: {skim} passes {self.retention[skim]:.2%} of events, {self.retention[skim] * batch:.2f} "
                f"per training batch of {batch} on average; with fewer than {MIN_PASSING_PER_BATCH:g} per batch the "
                "batch speedup rarely sees a passing event and the filter can collapse: use the entropy or "
                "entropeedup loss, or a larger --batch-size"
                for skim in self.skims if self.retention[skim] * batch < MIN_PASSING_PER_BATCH]

    def _nothing_to_train(self):
        """Why a resumed run trains no further epoch, and how to continue it (one line)."""
        t = self.config.train
        if not self.stopped:
            return (f"the run has already completed its {t.epochs} epochs; nothing to train (resume with a "
                    "larger --epochs to continue); re-evaluating the best checkpoint")
        return (f"the run early-stopped after epoch {self.epoch} of {t.epochs}: {t.monitor} did not improve "
                f"by more than {t.min_delta:g} for {self.early.bad_epochs} epochs since epoch "
                f"{self.early.best_epoch} (patience {t.patience}); nothing to train (resume with a larger "
                f"--patience, e.g. --patience {self.early.bad_epochs + 3}, to continue); "
                "re-evaluating the best checkpoint")

    def _run_epoch(self, epoch):
        t = self.config.train
        train_stats = self.train_epoch(epoch)
        pred = self.predict(self.val_loader)
        calibrations = self._calibrations(pred) if t.calibrate_every_epoch else None
        metrics = skim_metrics(pred, self.skims, self.retention, self.timings, t.max_weight, calibrations,
                               significance_bins=t.significance_bins)
        monitor = self._monitor_value(pred.loss, metrics)
        record = {"epoch": epoch, **train_stats, "val/loss": pred.loss, **metrics}
        improved = self.early.update(monitor, epoch)
        if self.scheduler is not None and not self.scheduler.per_step:
            self.scheduler.step(monitor)
        self.epoch = epoch
        self.stopped = self.early.should_stop
        self.history.append(record)
        self._save(improved)
        self.logger.log_epoch(record, self.history)
        for j, skim in enumerate(self.skims):
            self.logger.pr_curve(f"val/pr/{skim}", pred.y[:, j], torch.sigmoid(pred.logits[:, j]),
                                 pred.weight, epoch)
        if not self.quiet:
            tqdm.write(_epoch_line(record, self.skims, t.monitor, improved))
        for callback in self.callbacks:
            if callback.on_epoch_end(self, epoch, record):
                self.stopped = True

    def train_epoch(self, epoch):
        """One pass over the training set; returns {"train/loss", "train/lr", ...}.

        The loop does not wait for the device: whether a step is finite is decided on the device
        (a 0/1 flag, the maximum over ranks) and handed to the fused AdamW step, which leaves
        parameters and optimiser state untouched when the flag is set (the mechanism of
        ``torch.amp.GradScaler``). Losses and skip counts are summed on the device and read once
        per epoch, together with the per-step losses that go to TensorBoard
        (``train/step_loss``, ``train/step_lr``); the progress bar reads the running loss
        every :data:`PROGRESS_EVERY` steps.
        """
        t = self.config.train
        self.ddp_model.train()
        self.train_loader.set_epoch(epoch)
        zero = torch.zeros((), device=self.device)
        total, steps, skipped, step_losses, step_lrs = zero, zero, zero, [], []
        events, first_step = 0, self.step + 1
        start = time.perf_counter()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{t.epochs}", disable=self.quiet, leave=False,
                   dynamic_ncols=True)
        for batch in bar:
            batch = self._to_device(batch)
            with self._autocast():
                logits = self.ddp_model(batch)
            value, surrogate = global_loss(_loss_fn(self.loss, epoch), logits.float(), self._targets(batch), self.ctx)
            self.optimizer.zero_grad(set_to_none=True)
            surrogate.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.trainable, t.clip_grad_norm or math.inf)
            bad = any_rank(~(torch.isfinite(value) & torch.isfinite(norm)), self.ctx)
            self.optimizer.found_inf = bad.float()
            self.optimizer.step()
            value = torch.where(bad, torch.nan, value.detach().float())
            total, steps, skipped = total + value.nan_to_num(0.0), steps + ~bad, skipped + bad
            step_losses.append(value)
            step_lrs.append([g["lr"] for g in self.optimizer.param_groups])
            self.step += 1
            if self.scheduler is not None and self.scheduler.per_step:
                self.scheduler.step()
            events += batch.num_graphs
            if not self.quiet and self.step % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{(total / steps.clamp(min=1)).item():.4g}", skipped=int(skipped.item()),
                                refresh=False)
        elapsed = time.perf_counter() - start
        total, steps, skipped = total.item(), int(steps.item()), int(skipped.item())
        self.skipped_steps += skipped
        if self.logger is not None:  # set by fit(); a bare train_epoch() call logs nothing
            self.logger.log_steps(first_step, torch.stack(step_losses).cpu().tolist() if step_losses else [],
                                  step_lrs, [g["name"] for g in self.optimizer.param_groups])
        events = all_sum(events, self.ctx)
        lrs = {f"train/lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}
        return {"train/loss": total / steps if steps else math.nan, "train/skipped_steps": skipped,
                "train/events_per_s": events / elapsed if elapsed > 0 else math.nan, **lrs}

    def _to_device(self, batch):
        """``batch`` on the training device; on CUDA from pinned host memory, so the copy is
        asynchronous (the loader's worker processes pin streamed batches already)."""
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)

    @torch.no_grad()
    def predict(self, loader):
        """Logits of ``loader``'s events, gathered over ranks, and the validation loss per global batch.

        The loss is :meth:`smartbkg.losses.Loss.validation_loss` of the training loss: the same
        loss, except for ``entropeedup``, whose epoch-dependent entropy term is left out (its
        validation loss is the speedup part), so that the validation loss of an unchanged model
        is the same every epoch.

        Returns:
            :class:`~smartbkg.train.evaluation.Predictions` (identical on every rank).
        """
        self.model.eval()
        loss_fn = _loss_fn(self.validation_loss, epoch=1)
        parts, loss_sum = [], 0.0
        for batch in loader:
            batch = self._to_device(batch)
            with self._autocast():
                logits = self.model(batch)
            logits = gather_rows(logits.float(), self.ctx)
            targets = [None if v is None else gather_rows(v, self.ctx) for v in self._targets(batch)]
            loss_sum += loss_fn(logits, *targets).item() * logits.shape[0]
            event_type = gather_rows(batch.event_type, self.ctx)
            parts.append((logits, targets[0], targets[1], event_type))
        if not parts:
            raise DataError("the evaluation set is empty")
        logits, y, weight, event_type = (torch.cat(p).cpu() for p in zip(*parts))
        weight = torch.ones(len(y)) if weight is None else weight
        return Predictions(logits, y, weight.float(), event_type, loss_sum / len(y))

    def _targets(self, batch):
        """(y (B, S), weight (B,) or None, DisCo variable (B,) or None) of a batch."""
        name = self.config.loss.disco_variable
        disco_var = None if name is None else event_variable(batch, name)
        return batch.y.float(), getattr(batch, "weight", None), disco_var

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _calibrations(self, pred):
        t = self.config.train
        return fit_calibrations(pred, self.skims, self.retention, self.timings, t.max_weight)

    def _monitor_value(self, val_loss, metrics):
        t = self.config.train
        if t.monitor == "val_loss":
            return val_loss
        return metrics[f"val/{t.monitor}" + (f"/{t.monitor_skim}" if t.monitor_skim else "")]

    def _save(self, improved):
        """Write last.pt (and best.pt when the monitor improved) on the main rank."""
        rngs = _gather_rng(self.ctx)
        if self.ctx.is_main:
            state = self.state_dict(rngs)
            if improved:
                save_checkpoint(state, self.run_dir / "checkpoints" / "best.pt")
            save_checkpoint(state, self.run_dir / "checkpoints" / "last.pt")
        barrier(self.ctx)

    # ------------------------------------------------------------------ the end
    def close(self):
        """Leave the process group (nothing to do for one process).

        The DDP wrapper is dropped first: a DDP model that outlives its gloo process group can
        keep the process from exiting.
        """
        self.ddp_model = self.model
        cleanup_distributed(self.ctx)

    def finish(self):
        """Evaluate the best model, fit its calibration, write the summary; returns the summary dict."""
        t = self.config.train
        best_path = self.run_dir / "checkpoints" / "best.pt"
        barrier(self.ctx)
        best_epoch = 0
        if best_path.is_file():
            best = load_checkpoint(best_path, map_location=self.device)
            load_model_state(self.model, best["model"], best_path)
            best_epoch = best["epoch"]
        val = self.predict(self.val_loader)
        calibrations = self._calibrations(val)
        evaluated_on = "test" if self.test_loader is not None else "val"
        pred = self.predict(self.test_loader) if self.test_loader is not None else val
        if evaluated_on == "test":
            check_both_classes(pred.y, self.skims, "test")
        metrics = skim_metrics(pred, self.skims, self.retention, self.timings, t.max_weight, calibrations,
                               significance_bins=t.significance_bins, prefix=evaluated_on)
        final = {k.split("/", 1)[1]: v for k, v in metrics.items()}
        summary = {
            "evaluated_on": evaluated_on,
            "events": {"train": dataset_size(self.splits.train), "val": len(self.splits.val),
                       "test": 0 if self.splits.test is None else len(self.splits.test)},
            "skims": self.skims,
            "retention": dict(self.retention),
            "best_epoch": best_epoch,
            "epochs_run": self.epoch,
            "early_stopped": self.stopped and self.epoch < t.epochs,
            "skipped_steps": self.skipped_steps,
            "monitor": t.monitor,
            "model": self.model_info["name"],
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "loss": self.config.loss.name,
            "world_size": self.ctx.world_size,
            **final,
            f"{evaluated_on}_loss": pred.loss,
            "warnings": self.splits.few_passing_warnings() + self.loss_warnings(),
        }
        calibration = {skim: c.to_dict() for skim, c in calibrations.items()}
        if self.ctx.is_main:
            write_json(self.run_dir / "calibration.json", calibration)
            write_json(self.run_dir / "summary.json", summary)
            if best_path.is_file():
                best["calibration"] = calibration
                save_checkpoint(best, best_path)
            for j, skim in enumerate(self.skims):
                self.logger.pr_curve(f"{evaluated_on}/pr/{skim}", pred.y[:, j],
                                     torch.sigmoid(pred.logits[:, j]), pred.weight, max(best_epoch, 1))
            self.logger.hparams(self.config.to_dict(), final)
        if not self.config.train.silent and self.ctx.is_main:
            for warning in summary["warnings"]:
                print(f"warning: {warning}", file=sys.stderr)
            print(final_line(summary))
        barrier(self.ctx)
        return summary


def train(config, *, splits=None, ctx=None):
    """Train as configured and return the summary (see :meth:`Trainer.finish`)."""
    return Trainer(config, splits=splits, ctx=ctx).fit()


# ---------------------------------------------------------------------- helpers
def _loss_fn(loss, epoch):
    """``loss`` as ``f(logits, y, weight, disco_var) -> scalar`` at (1-based) ``epoch``."""
    def loss_fn(logits, y, weight, disco_var):
        return loss(logits, y, weight=weight, epoch=epoch - 1, disco_var=disco_var)
    return loss_fn


def data_model_info(config, splits):
    """The entries of a checkpoint's ``model_info`` that the data fixes: ``skims``,
    ``event_types``, ``num_event_types``, ``vocab_size`` and ``num_event_features`` (0 without
    ``data.event_features``), for a run ``config`` on its :class:`~smartbkg.train.data.Splits`."""
    return {"skims": list(splits.skims), "event_types": list(splits.event_types),
            "num_event_types": len(splits.event_types), "vocab_size": splits.vocab_size,
            "num_event_features": len(EMULATION_FEATURES) if config.data.event_features else 0}


def instantiate_model(info):
    """A fresh (untrained) model of the architecture a checkpoint's ``model_info`` describes.

    Args:
        info: the ``model_info`` dict of a checkpoint: ``name`` (registered model), ``options``
            (its keyword arguments), ``skims`` (one output per skim), ``num_event_types``,
            ``vocab_size`` and ``num_event_features`` (absent or 0: none).

    Returns:
        the :class:`torch.nn.Module` built by :func:`smartbkg.models.build_model`; load the
        weights into it.
    """
    extra = {"num_event_features": info["num_event_features"]} if info.get("num_event_features") else {}
    return build_model(info["name"], num_skims=len(info["skims"]), num_event_types=info["num_event_types"],
                       vocab_size=info["vocab_size"], **extra, **info["options"])


def _check_names(config, feature_data=False):
    """Import the run's modules (``imports``); then unknown model, loss or DisCo variable names
    fail before any data is read (the DisCo variable of feature data is checked against the
    data's variables at the first batch)."""
    import_modules(config.imports)
    if config.train.init_from is None and config.model.name not in list_models():
        raise ConfigError(f"unknown model {config.model.name!r}; known: {', '.join(list_models())}")
    if (config.data.event_features and config.train.init_from is None
            and "num_event_features" not in inspect.signature(model_class(config.model.name)).parameters):
        takes = [m for m in list_models() if "num_event_features" in inspect.signature(model_class(m)).parameters]
        raise ConfigError(f"data.event_features: model {config.model.name!r} does not take event features "
                          f"(these do: {', '.join(takes)})")
    if config.loss.name not in list_losses():
        raise ConfigError(f"unknown loss {config.loss.name!r}; known: {', '.join(list_losses())}")
    if config.loss.disco_variable is not None and not feature_data:
        check_variable(config.loss.disco_variable)


def _check_skim(skim, skims):
    if skim is not None and skim not in skims:
        raise ConfigError(f"option train.monitor_skim = {skim!r} is not among the trained skims {skims}")


def _gather_rng(ctx):
    """The RNG states of every rank (a list indexed by rank), on the main rank."""
    state = rng_state(ctx.device)
    if not ctx.distributed:
        return [state]
    import torch.distributed as dist

    buffer = io.BytesIO()
    torch.save(state, buffer)  # gather_object cannot carry tensors: send them serialised
    states = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(buffer.getvalue(), states, dst=0)
    return [torch.load(io.BytesIO(s), weights_only=True) for s in states] if ctx.is_main else None


def _epoch_line(record, skims, monitor, improved):
    parts = [f"epoch {record['epoch']}", f"train loss {record['train/loss']:.4g}",
             f"val loss {record['val/loss']:.4g}", f"AUC {record['val/auc']:.4f}",
             f"speedup {record['val/speedup']:.3g} (raw {record['val/speedup_raw']:.3g}, "
             f"perfect {record['val/speedup_perfect']:.3g})"]
    if record.get("train/skipped_steps"):
        parts.append(f"skipped {record['train/skipped_steps']} steps")
    return ", ".join(parts) + (f"  * best {monitor}" if improved else "")


def final_line(summary):
    """One line with the final AUC and speedup of each skim, saying so where the filter is not
    better than no filter (calibrated speedup <= 1: simulating every event is as fast)."""
    split = summary["evaluated_on"]
    per_skim = [f"{s}: AUC {summary[f'auc/{s}']:.4f}, speedup {summary[f'speedup/{s}']:.3g} "
                f"(perfect {summary[f'speedup_perfect/{s}']:.3g}, limit {summary[f'speedup_limit/{s}']:.3g}), "
                f"N_eff/N_pass {summary[f'a_eff/{s}']:.3f}"
                + (" - NOT better than no filter" if not summary[f"speedup/{s}"] > 1 else "")
                for s in summary["skims"]]
    return f"final ({split} set, best epoch {summary['best_epoch']}): " + "; ".join(per_skim)
