"""Training on several processes (GPUs or CPU cores) with torchrun and DistributedDataParallel.

``torchrun --nproc-per-node N -m toolkit train RECIPE`` (or ``toolkit train --nproc N``) starts
N processes. Each holds the whole model and data set, takes its share of the global batch
(``optim.batch_size`` split evenly), and DDP averages the gradients, so the run follows the
same path as one process with the same global batch:

- every process draws the same global batch (indices and prior codes come from generators
  seeded alike) and keeps its slice;
- BatchNorm layers normalise over the global batch (:class:`GlobalBatchNorm`: sums all-reduced
  with autograd, so gradients match too); it works on CPU (gloo) and CUDA (NCCL), where
  ``nn.SyncBatchNorm`` is CUDA-only;
- only rank 0 writes checkpoints, samples, logs and evaluations; the others wait.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .errors import ToolkitError


@dataclass(frozen=True)
class World:
    """Where this process stands: rank, number of processes, its device name."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The World torchrun describes in the environment (one process when it does not)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ToolkitError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)") from None
    return World(rank, size, local)


def init(world: World, device: torch.device) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA) unless running alone."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                            timeout=datetime.timedelta(minutes=60))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def pick_device(name: str) -> torch.device:
    """The device a user named: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ToolkitError(f"device '{name}' asked for, but CUDA is not available here (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ToolkitError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from None


def device_for(world: World, name: str) -> str:
    """Each process on its own GPU: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    if world.distributed and name in ("auto", "cuda") and torch.cuda.is_available():
        if world.local_rank >= torch.cuda.device_count():
            raise ToolkitError(f"process {world.local_rank} of this machine has no GPU: it has "
                               f"{torch.cuda.device_count()}; start at most that many processes per machine")
        return f"cuda:{world.local_rank}"
    return name


def broadcast_object(value, world: World):
    """Rank 0's ``value`` on every rank."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_mean(values: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of ``values`` over the ranks (no autograd)."""
    if not world.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / world.size


def any_rank(flag: bool, device: torch.device, world: World) -> bool:
    """True on every rank when ``flag`` is true on one of them (one small collective)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# -- BatchNorm over the global batch -------------------------------------------------------
class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover the batch of every rank.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm1d/2d``; alone (or with
    ``sync = False``, as in inference copies) it is plain BatchNorm. Sums are all-reduced by a
    differentiable all-reduce, so gradients cross the ranks as they would cross one batch.
    """

    sync = True

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"GlobalBatchNorm expects 2-D or 4-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.sync and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        count = x.numel() // x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_tensor([float(count)])])
        total = _AllReduceSum.apply(local)
        c = self.num_features
        n = total[2 * c]
        mean = total[:c] / n
        var = (total[c: 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), factor)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; the gradient of each rank's input is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` under DistributedDataParallel (buffers are not re-broadcast: BatchNorm
    statistics are already global, see :class:`GlobalBatchNorm`)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, **sync)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a GlobalBatchNorm holding its state."""
    for name, child in list(module.named_children()):
        if isinstance(child, _BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(next(child.buffers(), torch.empty(0)).device)
            new.train(child.training)
            setattr(module, name, new)
        else:
            global_batchnorm(child)
    return module


def unsynced(module: nn.Module) -> nn.Module:
    """Turn off the cross-rank statistics of every GlobalBatchNorm (for rank-local inference)."""
    for m in module.modules():
        if isinstance(m, GlobalBatchNorm):
            m.sync = False
    return module
