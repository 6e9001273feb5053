"""Process-group plumbing for data-parallel training under torchrun (torch.distributed + DDP).

`torchrun --nproc_per_node N -m core.cli train WS ...` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; `init()` then joins the group (backend nccl on CUDA, gloo on
CPU). Without those variables everything here is a no-op for one process (rank 0 of 1).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


def launched() -> bool:
    """True when started by torchrun with more than one process, or with an explicit group."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str = "auto") -> None:
    """Join the torchrun process group once; on CUDA each process takes its LOCAL_RANK GPU."""
    if not launched() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if cuda else "gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collectives' tensors live: the current GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of `values` over ranks (a new tensor, on the caller's device)."""
    if not active():
        return values
    t = values.detach().to(_device(), torch.float64).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.to(values.device)


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (a stop request seen by one)."""
    if not active():
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)]))[0] > 0)


def all_gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `t` along dim 0, in rank order, keeping autograd.

    Sizes may differ between ranks (rows are padded to the largest, then trimmed).
    The gather is torch.distributed.nn.functional.all_gather, whose backward sends each
    rank the sum over ranks of the gradients of its own rows."""
    if not active():
        return t
    from torch.distributed.nn.functional import all_gather as ag_autograd
    n = torch.tensor([t.shape[0]], device=_device())
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    width = max(sizes)
    x = t.to(_device()) if t.device != _device() else t
    if x.shape[0] < width:
        x = torch.cat([x, x.new_zeros((width - x.shape[0],) + tuple(x.shape[1:]))])
    with warnings.catch_warnings():  # deprecated in favour of a private API; still the public one
        warnings.simplefilter("ignore", FutureWarning)
        parts = ag_autograd(x)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(t.device)


@dataclass(frozen=True)
class Shard:
    """This rank's rows [start, stop) of a global batch of `total` rows.

    Random draws made per row (mixup swaps, query positions) are drawn for all `total`
    rows from the generator every rank shares, then cut to [start, stop): every rank,
    and one process with the same global batch, draws exactly the same numbers."""
    start: int
    stop: int
    total: int

    def rand(self, shape, gen: torch.Generator | None) -> torch.Tensor:
        return torch.rand((self.total,) + tuple(shape[1:]), generator=gen)[self.start:self.stop]


def shard_of(total: int) -> Shard:
    """Contiguous, near-equal split of a global batch (sizes differ by at most one row)."""
    w, r = world_size(), rank()
    base, extra = divmod(total, w)
    start = r * base + min(r, extra)
    return Shard(start, start + base + (1 if r < extra else 0), total)
