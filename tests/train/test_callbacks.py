"""Trainer callbacks: called after every epoch with the epoch's record; True stops like early
stopping, an exception ends fit and leaves a resumable run folder."""

import json

import pytest
import torch

from smartbkg.train.loop import Trainer


class Recorder:
    """Records every call and asks to stop after epoch ``stop_at`` (or raises there)."""

    def __init__(self, stop_at=None, error=None):
        self.calls, self.stop_at, self.error = [], stop_at, error

    def on_epoch_end(self, trainer, epoch, record):
        self.calls.append((epoch, dict(record), trainer.epoch, len(trainer.history)))
        if epoch == self.stop_at:
            if self.error is not None:
                raise self.error
            return True
        return None


def test_callbacks_see_every_epoch_and_a_true_return_stops_the_run(tiny_config, tmp_path):
    first, second = Recorder(stop_at=2), Recorder()
    out = tmp_path / "run"
    summary = Trainer(tiny_config(out, train={"epochs": 4}), callbacks=[first, second]).fit()
    history = json.loads((out / "metrics.json").read_text())
    # called after validation, checkpoint and logging: the record is the epoch's metrics.json entry
    assert [c[0] for c in first.calls] == [1, 2] and [c[0] for c in second.calls] == [1, 2]
    assert [c[2:] for c in first.calls] == [(1, 1), (2, 2)]
    assert [c[1]["val/auc"] for c in second.calls] == [r["val/auc"] for r in history]
    assert summary["epochs_run"] == 2 and summary["early_stopped"]
    assert (out / "summary.json").is_file()  # the run finished normally after the stop


def test_an_exception_from_a_callback_ends_fit_with_a_resumable_folder(tiny_config, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyError, match="stop here"):
        Trainer(tiny_config(out, train={"epochs": 3}), callbacks=[Recorder(stop_at=2, error=KeyError("stop here"))]).fit()
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    assert not (out / "summary.json").exists()
    resumed = Trainer.resume(out)
    summary = resumed.fit()  # no callbacks now: trains the third epoch and finishes
    assert summary["epochs_run"] == 3 and [r["epoch"] for r in resumed.history] == [1, 2, 3]
