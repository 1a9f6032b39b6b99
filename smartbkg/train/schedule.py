"""Optimiser, learning-rate schedules and early stopping.

* :func:`build_optimizer`: AdamW, optionally with separate learning rates for backbone and head
  (fine-tuning) or a frozen backbone.
* :func:`build_scheduler`: reduce-on-plateau (stepped once per epoch with the monitored value) or
  linear warm-up followed by cosine decay (stepped once per optimiser step; on resume with
  another number of epochs it follows the schedule of the new number, see
  :class:`WarmupCosineLR`).
* :class:`EarlyStopping`: patience and minimum improvement on the monitored value; its state
  goes into checkpoints so a resumed run stops where an uninterrupted one would.
"""

import math

import torch

from ..errors import ConfigError


def build_optimizer(model, train_cfg):
    """AdamW over the trainable parameters of ``model``.

    With ``lr_backbone`` or ``lr_head`` set, the head (``model.head``) and the rest form two
    parameter groups with their own learning rates; ``freeze_backbone`` sets
    ``requires_grad=False`` on everything but the head.

    Args:
        model: the bare model (not the DDP wrapper); fine-tuning needs a ``head`` submodule.
        train_cfg: :class:`~smartbkg.train.config.TrainConfig`.

    Returns:
        ``torch.optim.AdamW`` (the fused implementation: one kernel per step, and it can skip a
        step on the device, see :meth:`smartbkg.train.Trainer.train_epoch`); each group carries
        its ``name`` ("all", "backbone" or "head").
    """
    t = train_cfg
    split = t.freeze_backbone or t.lr_backbone is not None or t.lr_head is not None
    if not split:
        groups = [{"name": "all", "params": [p for p in model.parameters() if p.requires_grad], "lr": t.lr}]
    else:
        head = getattr(model, "head", None)
        if not isinstance(head, torch.nn.Module):
            raise ConfigError(f"model {type(model).__name__} has no 'head' submodule: separate "
                              "learning rates and a frozen backbone need one")
        head_ids = {id(p) for p in head.parameters()}
        backbone = [p for p in model.parameters() if id(p) not in head_ids]
        if t.freeze_backbone:
            for p in backbone:
                p.requires_grad_(False)
        groups = [{"name": "head", "params": list(head.parameters()), "lr": t.lr_head or t.lr}]
        if not t.freeze_backbone:
            groups.insert(0, {"name": "backbone", "params": backbone, "lr": t.lr_backbone or t.lr})
    return torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=True)


def build_scheduler(optimizer, train_cfg, steps_per_epoch, mode):
    """The learning-rate schedule, or ``None`` for a constant rate.

    Args:
        optimizer: from :func:`build_optimizer`.
        train_cfg: :class:`~smartbkg.train.config.TrainConfig`.
        steps_per_epoch: optimiser steps per epoch (global batches).
        mode: "min" or "max", the direction of the monitored value (reduce-on-plateau).

    Returns:
        A scheduler whose ``per_step`` attribute says whether it is stepped after every optimiser
        step (cosine) or once per epoch with the monitored value (plateau).
    """
    t = train_cfg
    if t.schedule == "constant":
        return None
    if t.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=t.plateau_factor, patience=t.plateau_patience,
            threshold=t.min_delta, threshold_mode="abs", min_lr=t.min_lr)
        scheduler.per_step = False
        return scheduler
    warmup = int(round(t.warmup_epochs * steps_per_epoch))
    total = max(t.epochs * steps_per_epoch, 1)
    lambdas = [WarmupCosine(warmup, total, t.min_lr / group["lr"]) for group in optimizer.param_groups]
    return WarmupCosineLR(optimizer, lambdas)


class WarmupCosineLR(torch.optim.lr_scheduler.LambdaLR):
    """Per-step :class:`WarmupCosine` schedule whose shape always comes from the configuration.

    ``load_state_dict`` restores the step count and the base rates of a checkpoint but keeps
    the warm-up, total and floor built from the *current* configuration, and sets every group's
    learning rate to ``base_lr * factor(step)``. With an unchanged configuration this is exactly
    the saved state (a resumed run continues bit for bit). When a resumed run changes
    ``train.epochs``, the remaining steps follow the warm-up + cosine schedule of the new number
    of epochs, i.e. they get the learning rates that the same steps of a run configured with the
    new number of epochs from the start would have had (extending a finished 2-epoch run to 4
    epochs continues at the rate the 4-epoch schedule has after epoch 2, then decays to
    ``min_lr`` at the new end). The saved factors of a finished run are ``min_lr`` (0 by default)
    for ever: restoring them would train the extension at a rate of 0.
    """

    per_step = True

    def load_state_dict(self, state_dict):
        state = {k: v for k, v in state_dict.items() if k != "lr_lambdas"}
        super().load_state_dict({**state, "lr_lambdas": [None] * len(self.lr_lambdas)})
        for group, base_lr, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            group["lr"] = base_lr * factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class WarmupCosine:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to ``floor``.

    factor(s) = (s + 1) / warmup for s < warmup, else
    floor + (1 - floor) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2.
    """

    def __init__(self, warmup, total, floor=0.0):
        self.warmup, self.total, self.floor = warmup, total, min(max(floor, 0.0), 1.0)

    def __call__(self, step):
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of more than ``min_delta``.

    Args:
        mode: "min" (e.g. validation loss) or "max" (AUC, speedup, significance).
        patience: epochs to wait; ``None`` never stops (the best epoch is still tracked).
        min_delta: the smallest change that counts as an improvement (absolute).
    """

    def __init__(self, mode, patience=None, min_delta=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode, self.patience, self.min_delta = mode, patience, min_delta
        self.best = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, value, epoch):
        """Record the monitored ``value`` of ``epoch``; returns True when it is a new best.

        A non-finite value never improves.
        """
        improved = math.isfinite(value) and (
            self.best is None
            or (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if improved:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self):
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
