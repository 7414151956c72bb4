"""Multi-process training: under ``torchrun --nproc_per_node=N`` every process trains a
DistributedDataParallel replica on its shard of each batch; gradients are averaged, so the replicas
stay identical. NCCL on GPUs, gloo on CPUs."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int, int]:
    """Join the process group when launched by torchrun; returns (rank, world_size, local_rank), (0, 1, 0) if not."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world_size, local_rank


def rank_seed(seed: int, rank: int) -> int:
    """A seed of process ``rank``'s own, derived from a shared ``seed`` (like nanoGPT's seed + rank): rank 0 keeps
    ``seed``. The offset is a large prime, since PyTorch's CPU generator uses only the low 32 bits of a seed."""
    return (seed + 1_000_003 * rank) % 2**32


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded ``seed``: what every process shares that epoch (the shuffle)."""
    return seed * 1000 + epoch


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(values)
    return values


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``values`` over all processes (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def cleanup_distributed() -> None:
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
