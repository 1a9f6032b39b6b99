"""Distributed training set-up (``torchrun``, DistributedDataParallel) and collectives.

Launch with ``torchrun --nproc-per-node K [--nnodes N --node-rank R --rdzv-endpoint HOST:PORT]
-m smartbkg.train.cli ...``: torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`setup_distributed` joins the process group
(NCCL on GPUs, gloo on CPU). Without those variables everything runs in one process.

Equivalence with one process: every rank sees its share of the same global batch (the loader
splits one seeded permutation), the loss is computed on the global batch gathered from all ranks
(:func:`global_loss`), and metrics are computed from predictions gathered over all ranks, so a
run on K processes follows the same trajectory as one on a single process (up to float rounding
of the summation order, and dropout masks drawn per rank).
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``device`` and the backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def setup_distributed(device="auto"):
    """Join the process group described by the torchrun environment variables, if any.

    Args:
        device: ``auto`` (this rank's GPU when CUDA is available, else CPU), ``cpu``,
            ``cuda`` or ``cuda:N``.

    Returns:
        :class:`DistContext`.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world_size > 1 and device.startswith("cuda:"):
        raise ConfigError(f"option train.device = {device!r} puts all {world_size} ranks on one GPU; "
                          "use cuda or auto, and each rank takes the GPU of its LOCAL_RANK")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"option train.device = {device!r} but no CUDA device is available")
        device = torch.device(device if ":" in device else f"cuda:{local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size == 1:
        return DistContext(device=device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    return DistContext(rank, world_size, local_rank, device, backend)


def cleanup_distributed(ctx):
    """Leave the process group (no-op for one process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather_rows(tensor, ctx):
    """Concatenate ``tensor`` (first dimension may differ per rank) over ranks, in rank order.

    Args:
        tensor: (n_local, ...) on ``ctx.device``.

    Returns:
        (sum of n_local, ...) identical on every rank; ``tensor`` itself for one process.
    """
    return _gather_with_sizes(tensor, ctx)[0]


def _gather_with_sizes(tensor, ctx):
    if not ctx.distributed:
        return tensor, [tensor.shape[0]]
    tensor = tensor.contiguous()
    sizes = [torch.zeros(1, dtype=torch.int64, device=tensor.device) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device))
    sizes = [int(s.item()) for s in sizes]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)]), sizes


def global_loss(loss_fn, logits, targets, ctx):
    """The loss of the global batch, with gradients for this rank's logits only.

    For one process this is ``loss_fn(logits, *targets)``. With K ranks, the logits and targets
    of all ranks are gathered and the loss evaluated on the whole batch (so batch-level losses
    such as the speedup loss or DisCo see the same events as in one process); the returned
    surrogate has, for this rank's logits, the gradient ``K * dL/dlogits_local`` so that DDP's
    averaging over ranks yields exactly ``dL/dparameters`` of the global batch.

    Args:
        loss_fn: ``loss_fn(logits, *targets) -> scalar``.
        logits: (B_local, S) this rank's output.
        targets: tensors with first dimension B_local (labels, weights ...), or ``None``.

    Returns:
        (value, surrogate): the global loss (detached, identical on every rank) and the scalar
        to call ``backward`` on.
    """
    if not ctx.distributed:
        value = loss_fn(logits, *targets)
        return value.detach(), value
    all_logits, sizes = _gather_with_sizes(logits.detach(), ctx)
    all_logits.requires_grad_(True)
    all_targets = [None if t is None else gather_rows(t, ctx) for t in targets]
    value = loss_fn(all_logits, *all_targets)
    (grad,) = torch.autograd.grad(value, all_logits)
    start = sum(sizes[: ctx.rank])
    mine = grad[start:start + logits.shape[0]]
    surrogate = (logits * mine).sum() * ctx.world_size
    return value.detach(), surrogate


def any_rank(flag, ctx):
    """A () bool tensor, true where ``flag`` is true on any rank (e.g. a 'skip this step' flag);
    reduced on the device, so the host does not wait for it."""
    if not ctx.distributed:
        return flag
    tensor = flag.to(torch.uint8)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.bool()


def all_sum(value, ctx):
    """The sum of a python number over ranks."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return type(value)(tensor.item())


def barrier(ctx):
    if ctx.distributed:
        dist.barrier()
