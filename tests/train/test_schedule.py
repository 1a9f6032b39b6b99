"""Optimiser groups, learning-rate schedules and early stopping."""

import math

import pytest
import torch

from smartbkg.errors import ConfigError
from smartbkg.train.config import TrainConfig
from smartbkg.train.schedule import EarlyStopping, WarmupCosine, build_optimizer, build_scheduler


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)


def test_warmup_cosine_factors():
    f = WarmupCosine(warmup=4, total=12, floor=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(8) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert f(12) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)


def test_cosine_scheduler_per_step_with_min_lr():
    model = Net()
    cfg = TrainConfig(schedule="cosine", lr=1e-2, warmup_epochs=1, epochs=3, min_lr=1e-4)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5, mode="min")
    assert sched.per_step
    lrs = []
    for _ in range(15):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2e-3) and lrs[4] == pytest.approx(1e-2)
    assert lrs[-1] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 9 / 10)))
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_plateau_scheduler_follows_the_monitor_direction():
    model = Net()
    cfg = TrainConfig(schedule="plateau", lr=1.0, plateau_patience=1, plateau_factor=0.5, min_delta=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5, mode="max")
    assert not sched.per_step
    for auc in (0.6, 0.7, 0.7, 0.7):  # improves, then two epochs flat: reduced after patience 1
        sched.step(auc)
    assert opt.param_groups[0]["lr"] == 0.5
    assert build_scheduler(opt, TrainConfig(schedule="constant"), 5, "max") is None


def test_separate_learning_rates_and_frozen_backbone():
    model = Net()
    opt = build_optimizer(model, TrainConfig(lr_backbone=1e-4, lr_head=5e-3, weight_decay=0.01))
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["backbone"]["lr"] == 1e-4 and groups["head"]["lr"] == 5e-3
    assert groups["head"]["weight_decay"] == 0.01
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in model.head.parameters()}
    frozen = Net()
    opt = build_optimizer(frozen, TrainConfig(freeze_backbone=True, init_from="x.pt", lr_head=5e-3))
    assert [g["name"] for g in opt.param_groups] == ["head"]
    assert not any(p.requires_grad for p in frozen.body.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())


def test_split_learning_rates_need_a_head():
    with pytest.raises(ConfigError, match="no 'head' submodule"):
        build_optimizer(torch.nn.Linear(2, 2), TrainConfig(lr_head=1e-3))


def test_early_stopping_patience_and_min_delta():
    stop = EarlyStopping("min", patience=2, min_delta=0.01)
    assert stop.update(1.0, 1)
    assert not stop.update(0.995, 2)  # smaller than min_delta: no improvement
    assert not stop.should_stop
    assert not stop.update(float("nan"), 3)
    assert stop.should_stop and stop.best == 1.0 and stop.best_epoch == 1
    resumed = EarlyStopping("min", patience=2, min_delta=0.01)
    resumed.load_state_dict(stop.state_dict())
    assert resumed.should_stop and resumed.best_epoch == 1


def test_early_stopping_max_mode_and_disabled():
    stop = EarlyStopping("max", patience=None)
    for epoch, auc in enumerate([0.7, 0.8, 0.75, 0.6, 0.5], start=1):
        stop.update(auc, epoch)
    assert stop.best == 0.8 and stop.best_epoch == 2 and not stop.should_stop
