"""Collectives for DDP on CPU (gloo, 2 processes spawned here): gathering and the global-batch loss."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from smartbkg.errors import ConfigError
from smartbkg.losses import build_loss
from smartbkg.train.distributed import DistContext, cleanup_distributed, gather_rows, global_loss, setup_distributed

SIZES = (5, 3)  # uneven shares of one global batch of 8 events


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SIZES), 3, generator=g)
    y = torch.tensor([[1, 0], [0, 0], [0, 1], [1, 1], [0, 0], [0, 0], [1, 0], [0, 1]], dtype=torch.float32)
    weight = torch.rand(sum(SIZES), generator=g) + 0.5
    return x, y, weight


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _loss(logits, y, weight):
    return build_loss("speedup", eps=[0.1, 0.3], disco_lambda=0.5)(logits, y, weight=weight, disco_var=weight)


def _worker(rank, world_size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = setup_distributed("cpu")
    model = None
    try:
        x, y, weight = _batch()
        start = sum(SIZES[:rank])
        mine = slice(start, start + SIZES[rank])
        model = torch.nn.parallel.DistributedDataParallel(_model())
        value, surrogate = global_loss(lambda lg, yy, ww: _loss(lg, yy, ww), model(x[mine]),
                                       (y[mine], weight[mine]), ctx)
        surrogate.backward()
        gathered = gather_rows(torch.arange(SIZES[rank]) + 100 * rank, ctx)
        torch.save({"value": value, "grads": [p.grad for p in model.parameters()], "gathered": gathered},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        del model  # before its process group: a DDP model destroyed after it can hang the exit (gloo)
        cleanup_distributed(ctx)


def test_global_loss_on_two_ranks_equals_one_process(tmp_path):
    x, y, weight = _batch()
    model = _model()
    value, surrogate = global_loss(_loss, model(x), (y, weight), DistContext())
    surrogate.backward()
    expected = [p.grad for p in model.parameters()]

    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["value"].item() == pytest.approx(value.item(), rel=1e-6)
        for got, want in zip(result["grads"], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        assert result["gathered"].tolist() == [0, 1, 2, 3, 4, 100, 101, 102]


def _train_worker(rank, world_size, port, config_dict):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from smartbkg.train.config import RunConfig
    from smartbkg.train.loop import Trainer

    trainer = Trainer(RunConfig.from_dict(config_dict))
    try:
        trainer.fit()
    finally:
        trainer.close()


def test_training_on_two_ranks_equals_one_process(tiny_config, tmp_path):
    """Same global batches (uneven shares: 900 events in batches of 56 -> 53/52 events, 26/27 per
    rank), gradients of the global batch, metrics of all events: the same run up to float rounding."""
    import json

    settings = dict(model="deepsets", data={"batch_size": 56},
                    loss={"name": "entropeedup"}, train={"epochs": 2, "monitor": "speedup"})
    single = tiny_config(tmp_path / "one", **settings)
    from smartbkg.train.loop import Trainer

    one = Trainer(single).fit()
    double = tiny_config(tmp_path / "two", **settings)
    mp.spawn(_train_worker, args=(2, free_port(), double.to_dict()), nprocs=2, join=True)

    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2
    for key in ("auc", "speedup", "speedup_raw", "significance", "test_loss", "best_epoch"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    h1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    h2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for a, b in zip(h1, h2):
        for key in ("train/loss", "val/loss", "val/auc", "val/speedup"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    w1 = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)["model"]
    w2 = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5)


def test_one_named_gpu_for_several_ranks_is_refused(monkeypatch):
    """Under torchrun, cuda:N would put every rank on GPU N (NCCL then fails on a duplicate GPU):
    refused before any device or process group is touched."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match="'cuda:1' puts all 2 ranks on one GPU; use cuda or auto"):
        setup_distributed("cuda:1")
