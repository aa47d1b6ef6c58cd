"""Scale-out through torch.distributed (launched by `torchrun`): process group set-up, rank helpers, DDP wrapping,
and how a global batch is split across ranks. With one process (no torchrun) every helper is a no-op.

The rules every trainer follows (see docs/architecture.md):
- the global batch stays the configured one: each rank draws the same global batch from (seed, step) and keeps its
  slice `local_slice(batch)`, so the data seen is the same for any world size;
- gradients are averaged by DDP; a loss normalised by a count (pixels, samples) divides by the *global* count
  times 1 / world_size (`global_mean`), so the gradient equals the single-process one;
- rank 0 alone writes run files, checkpoints and samples (`is_main`); every rank restores the same state.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from synthlabel.errors import ConfigError


def launched() -> bool:
    """True when started by torchrun (or another launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as the launcher set it (0 without one), known before the process group exists."""
    return int(os.environ.get("RANK", "0"))


def init(device: torch.device | str = "cpu") -> bool:
    """Join the process group torchrun described (gloo on CPU, nccl on CUDA); True when distributed.

    Idempotent; does nothing in a single process. On CUDA each rank takes the GPU of its LOCAL_RANK."""
    if not launched():
        return False
    if dist.is_initialized():
        return True
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """True on the rank that writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def local_device(device: torch.device) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK under torchrun on CUDA, else `device`."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def check_batch(batch_size: int, what: str = "train.batch_size") -> int:
    """The per-rank batch; raises ConfigError when the global batch does not split evenly across ranks."""
    world = world_size()
    if batch_size % world:
        raise ConfigError(f"{what}={batch_size} does not split across {world} processes; use a multiple of {world}")
    return batch_size // world


def local_slice(batch_size: int) -> slice:
    """Rows of the global batch this rank trains on (contiguous, equal-sized)."""
    per_rank = check_batch(batch_size)
    return slice(rank() * per_rank, (rank() + 1) * per_rank)


def shard(items: list) -> list:
    """This rank's share of a list of work items (round-robin: item i goes to rank i % world)."""
    return items[rank() :: world_size()]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around `model` when distributed (SyncBatchNorm on CUDA; on CPU batch norm uses per-rank statistics,
    which torch's SyncBatchNorm does not support), the model itself otherwise."""
    if not active():
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (what is saved and rendered with)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(value: float) -> float:
    """The mean of a scalar over ranks (for logged statistics); the value itself in one process."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def sync_gradients(module: nn.Module) -> None:
    """Average the gradients of `module` over ranks in one all-reduce (StyleGAN2-ADA's way for GAN phases, whose
    several forwards per backward and R1's double backward do not suit DDP's hooks). No-op in one process."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def global_mean(local_sum: torch.Tensor, global_count: float) -> torch.Tensor:
    """A loss whose gradient, once averaged over ranks, equals that of (global sum / global count): every rank
    knows the global count because it draws the same global batch."""
    return local_sum * (world_size() / max(float(global_count), 1.0))


def broadcast_object(obj):
    """rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
