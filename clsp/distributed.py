"""Process-group set-up and feature gathering for data-parallel contrastive training.

``init_distributed`` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) or, when
launched by ``srun`` without torchrun, SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
first host of SLURM_NODELIST as MASTER_ADDR). It uses NCCL on CUDA and gloo otherwise.

Gradient scaling: with the global loss, every rank computes the same full loss L, but the
gradient only flows into its own shard of the features. Summed over ranks these partial
gradients give dL/dtheta; DDP *averages* them, so the trainer multiplies the loss by the
world size before ``backward`` and the parameters see exactly dL/dtheta, the gradient a
single process would compute on the same global batch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def first_slurm_host(nodelist: str) -> str:
    """First host name of a SLURM node list such as ``gpu[03-05,9],cpu1`` -> ``gpu03``."""
    head = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if head is None:
        return nodelist
    prefix, ranges = head.group(1), head.group(3)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def env_dist_info(environ: dict[str, str] | None = None) -> DistInfo:
    """Rank/world/local rank from torchrun or SLURM variables (single process if neither)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group described by the environment; returns (info, device).
    ``ConfigError`` for ``device="cuda"`` where torch sees no CUDA device (rather than
    training on the CPU unasked)."""
    info = env_dist_info()
    if device == "cuda" and not torch.cuda.is_available():
        from clsp.errors import ConfigError

        raise ConfigError("device=cuda: torch sees no CUDA device here (torch.cuda.is_available() is false); "
                          "use device=auto or device=cpu")
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    dev = torch.device("cuda", info.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if not info.enabled:
        return info, dev
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = first_slurm_host(os.environ.get("SLURM_NODELIST", "127.0.0.1"))
    os.environ.setdefault("MASTER_PORT", "29500")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
    return DistInfo(info.rank, info.world_size, info.local_rank, backend), dev


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, world_size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_sizes(n: int, device: torch.device) -> list[int]:
    """First-dimension sizes of every rank's shard."""
    rank, size = world()
    if size == 1:
        return [n]
    t = torch.tensor([n], dtype=torch.int64, device=device)
    out = [torch.zeros_like(t) for _ in range(size)]
    dist.all_gather(out, t)
    return [int(x.item()) for x in out]


def _all_gather_padded(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    longest = max(sizes)
    pad = x.new_zeros((longest - x.shape[0],) + tuple(x.shape[1:]))
    padded = torch.cat([x, pad]).contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return [p[:s] for p, s in zip(parts, sizes)]


class _GatherShards(torch.autograd.Function):
    """All-gather along dim 0 with uneven shard sizes. Backward returns the gradient of
    this rank's own slice, summed over ranks when ``reduce_grads`` (exact local loss)."""

    @staticmethod
    def forward(ctx, x, sizes, reduce_grads):  # type: ignore[override]
        rank, _ = world()
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        ctx.reduce_grads = reduce_grads
        return torch.cat(_all_gather_padded(x.detach(), sizes))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        if ctx.reduce_grads:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
        return grad[ctx.start:ctx.stop], None, None


def gather_features(x: torch.Tensor, sizes: list[int] | None = None, reduce_grads: bool = False) -> torch.Tensor:
    """Concatenate every rank's (n_r, ...) shard in rank order.

    Other ranks' shards carry no gradient; this rank's shard keeps its own. With
    ``reduce_grads`` the gradients that other ranks' losses put on this rank's shard are
    summed back to it (needed when each rank computes only its rows of the loss).
    """
    rank, size = world()
    if size == 1:
        return x
    sizes = sizes if sizes is not None else gather_sizes(x.shape[0], x.device)
    return _GatherShards.apply(x, sizes, reduce_grads)


def all_reduce_flag(flag: bool, op: str, device: torch.device) -> bool:
    """Combine a boolean across ranks: op 'any' or 'all'."""
    _, size = world()
    if size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "any" else dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (returns a new tensor)."""
    _, size = world()
    out = values.detach().clone()
    if size > 1:
        dist.all_reduce(out)
    return out


def barrier() -> None:
    _, size = world()
    if size > 1:
        dist.barrier()
