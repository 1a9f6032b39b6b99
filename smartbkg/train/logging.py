"""Run records: metrics per epoch as JSON and CSV, TensorBoard scalars, PR and ROC curves, hparams.

Metric names are flat strings ``"split/metric"`` or ``"split/metric/skim"``
(e.g. ``train/loss``, ``val/auc/hadronic``); the same names are the TensorBoard tags, the JSON
keys and the CSV columns. ``metrics.json`` and ``metrics.csv`` are rewritten from the full
history after every epoch (atomically), so after a resume they again hold exactly the epochs of
the checkpoint the run continued from.

The JSON files are strict JSON (RFC 8259): a number that is not finite (a NaN training loss
when every step of an epoch was skipped, an infinite significance ...) is written as ``null``.
The CSV file writes such numbers as ``nan``, ``inf`` or ``-inf`` (what ``float()`` reads back).
"""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from ..files import write_text_atomic


_TINY = 1e-30


class RunLogger:
    """Writes the records of one run folder; does nothing when ``enabled`` is false (other ranks).

    Args:
        run_dir: the run folder.
        enabled: write anything at all (true on the main rank only).
        purge_step: on resume, the first epoch to be written again (TensorBoard drops any
            later events left by the interrupted run).
        purge_optimizer_step: the same for the per-step scalars, which have their own writer
            (``tensorboard/steps``, counted in optimiser steps).
    """

    def __init__(self, run_dir, *, enabled=True, purge_step=None, purge_optimizer_step=None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = self.step_writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)
            self.step_writer = SummaryWriter(str(self.run_dir / "tensorboard" / "steps"),
                                             purge_step=purge_optimizer_step)

    def log_epoch(self, record, history):
        """Add one epoch's scalars to TensorBoard and rewrite the JSON/CSV files.

        Args:
            record: {"epoch": int, name: float ...} of the epoch just finished.
            history: all epoch records so far (``record`` included), in order.
        """
        if not self.enabled:
            return
        epoch = record["epoch"]
        for name, value in record.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, epoch)
        self.writer.flush()
        write_history(self.run_dir, history)

    def log_steps(self, first_step, losses, lrs, group_names):
        """Per-step scalars of one epoch: ``train/step_loss`` (skipped steps left out) and
        ``train/step_lr/<group>``, at the global optimiser steps ``first_step, first_step + 1, ...``.

        Args:
            losses: one float per step (nan for a skipped step).
            lrs: one list per step, the learning rate of each parameter group.
            group_names: the parameter groups' names, in the order of ``lrs``' lists.
        """
        if not self.enabled:
            return
        for k, (loss, rates) in enumerate(zip(losses, lrs)):
            if math.isfinite(loss):
                self.step_writer.add_scalar("train/step_loss", loss, first_step + k)
            for name, lr in zip(group_names, rates):
                self.step_writer.add_scalar(f"train/step_lr/{name}", lr, first_step + k)
        self.step_writer.flush()

    def pr_curve(self, tag, labels, scores, weights, epoch):
        """A precision-recall curve of ``scores`` in [0, 1] against 0/1 ``labels`` ((n,) tensors,
        ``weights`` (n,) or None), and next to it the ROC curve (:meth:`roc_curve`; the tag with
        ``/pr/`` replaced by ``/roc/``, e.g. ``val/roc/tau_generic``)."""
        if self.enabled and len(labels):
            self.writer.add_pr_curve(tag, labels.int().numpy(), scores.float().clamp(0, 1).numpy(), epoch,
                                     weights=None if weights is None else weights.float().numpy())
            self.roc_curve(tag.replace("/pr/", "/roc/"), labels, scores, weights, epoch)

    def roc_curve(self, tag, labels, scores, weights, epoch, num_thresholds=127):
        """The weighted ROC curve of ``scores`` in [0, 1] against 0/1 ``labels`` ((n,) tensors).

        TensorBoard has no ROC plot, so the curve goes to its PR-curve plugin with the true
        positive rate in place of precision and the false positive rate in place of recall: in
        the PR curves tab it reads TPR (vertical axis) against FPR (horizontal axis), one curve
        per epoch on the step slider. Thresholds ``k / (num_thresholds - 1)``; at threshold k
        the events with score >= threshold are selected (TP, FP; the counts are weighted).
        """
        if not (self.enabled and len(labels)):
            return
        y = labels.bool().numpy()
        w = np.ones(len(y)) if weights is None else weights.double().numpy()
        k = np.floor(scores.double().clamp(0, 1).numpy() * (num_thresholds - 1)).astype(np.int64)
        # selected at threshold k: the events of bins >= k
        tp, fp = (np.bincount(k, weights=w * mask, minlength=num_thresholds)[::-1].cumsum()[::-1]
                  for mask in (y, ~y))
        n_pass, n_fail = tp[0], fp[0]
        tpr, fpr = tp / max(n_pass, _TINY), fp / max(n_fail, _TINY)
        self.writer.add_pr_curve_raw(tag, tp, fp, n_fail - fp, n_pass - tp, tpr, fpr, epoch, num_thresholds)

    def hparams(self, config_dict, final_metrics):
        """Record the run's hyperparameters with its final metrics (TensorBoard HPARAMS tab)."""
        if not self.enabled:
            return
        hparams = {k: _hparam_value(v) for k, v in flatten(config_dict).items()}
        metrics = {f"final/{k}": float(v) for k, v in final_metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self.writer.add_hparams(hparams, metrics, run_name="hparams")
        self.writer.flush()

    def close(self):
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.close()


def write_history(run_dir, history):
    """Write ``metrics.json`` (list of records) and ``metrics.csv`` (one row per epoch)."""
    run_dir = Path(run_dir)
    write_json(run_dir / "metrics.json", history)
    columns = []
    for record in history:
        columns += [k for k in record if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(run_dir / "metrics.csv", buffer.getvalue())


def write_json(path, value):
    """Write ``value`` as indented strict JSON, atomically; non-finite numbers become ``null``."""
    write_text_atomic(path, json.dumps(finite_or_null(value), indent=1, allow_nan=False) + "\n")


def finite_or_null(value):
    """``value`` with every float that is not finite (nan, inf, -inf) replaced by None, recursively
    through dicts, lists and tuples (tuples become lists, as JSON has them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def flatten(values, prefix=""):
    """Nested dict -> {"a.b.c": leaf}."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _hparam_value(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return "none" if value is None else value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)
