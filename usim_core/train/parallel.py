"""Data parallelism under `torchrun`: DistributedDataParallel over one process per GPU (NCCL) or per CPU share
(gloo), arranged so that N processes train the same model as one.

The rule: a stage's `batch_size` is the global batch, and the learning rate is the config's, whatever N. Each
micro-batch is drawn from the epoch's shuffle as in one process and split into N contiguous parts; every rank
draws the whole batch's randomness (augmentation, noise levels, noise) from the same epoch generator and keeps its
rows' share (`Part`), batch statistics are reduced across ranks, and each rank's loss is weighted by its share of
rows, so DDP's gradient average is the gradient of the whole batch. N processes then follow one process's
trajectory up to float summation order, and a checkpoint (written by rank 0) resumes on any N.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from usim_core.train.ranks import Ranks

DEFAULT_TIMEOUT_S = 1800  # the longest a rank waits for the others (USIM_DIST_TIMEOUT_S) before the run fails


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the launch's process group (NCCL on CUDA, gloo on CPU); nothing in one process."""
    if not ranks.parallel or dist.is_initialized():
        return
    timeout = datetime.timedelta(seconds=float(os.environ.get("USIM_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S)))
    if device.type == "cuda":
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """The sums over ranks of a few numbers (the numbers themselves in one process)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@dataclass(frozen=True)
class Part:
    """This rank's rows [lo, hi) of a batch of `total` rows, split over `world` ranks.

    A rank whose share is empty (a batch smaller than the world) computes on the batch's first row with weight
    0, so that every rank runs the same forward and backward (DDP needs it)."""

    lo: int
    hi: int
    total: int
    world: int = 1

    @classmethod
    def of(cls, total: int, ranks: Ranks) -> Part:
        return cls(total * ranks.rank // ranks.world, total * (ranks.rank + 1) // ranks.world, total, ranks.world)

    @property
    def n(self) -> int:
        return self.hi - self.lo

    @property
    def weight(self) -> float:
        """Scales this rank's mean loss so that DDP's average over ranks is the whole batch's mean."""
        return self.n * self.world / self.total

    def take(self, x: Tensor, dim: int = 0) -> Tensor:
        """This rank's rows of a whole batch's tensor (the first row, when the share is empty)."""
        return x.narrow(dim, self.lo, self.n) if self.n else x.narrow(dim, 0, 1)

    def randn(self, shape: Sequence[int], gen: torch.Generator, dim: int = 0, **kw) -> Tensor:
        """Standard normal noise for this rank's rows, drawn as for the whole batch (`shape` is this rank's)."""
        return self.take(torch.randn(self._whole(shape, dim), generator=gen, **kw), dim)

    def rand(self, shape: Sequence[int], gen: torch.Generator, dim: int = 0, **kw) -> Tensor:
        return self.take(torch.rand(self._whole(shape, dim), generator=gen, **kw), dim)

    def randint(self, high: int, shape: Sequence[int], gen: torch.Generator, dim: int = 0) -> Tensor:
        return self.take(torch.randint(0, high, self._whole(shape, dim), generator=gen), dim)

    def mean(self, x: Tensor) -> Tensor:
        """The whole batch's mean of x (this rank's rows along dim 0); for statistics that carry no gradient."""
        if self.world == 1:
            return x.mean()
        own = x.narrow(0, 0, self.n)
        t = torch.stack([own.sum().double(), torch.tensor(float(own.numel()), dtype=torch.float64,
                                                          device=x.device)])
        dist.all_reduce(t)
        return (t[0] / t[1]).to(x.dtype)

    def _whole(self, shape: Sequence[int], dim: int) -> tuple[int, ...]:
        out = list(shape)
        out[dim] = self.total
        return tuple(out)


def whole(x: Tensor) -> Part:
    """The part that is a whole batch (one process)."""
    return Part(0, x.shape[0], x.shape[0])


class StageForward(torch.nn.Module):
    """The stage's loss as a module's forward, which DistributedDataParallel wraps (its gradient hooks fire for
    the parameters a forward used)."""

    def __init__(self, model: torch.nn.Module, loss_fn, cfg) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.cfg = cfg

    def forward(self, u: Tensor, nu: Tensor, dt: Tensor, gen: torch.Generator, part: Part) -> Tensor:
        return self.loss_fn(self.model, u, nu, dt, self.cfg, gen, part)


def wrap(forward: StageForward, device: torch.device) -> torch.nn.Module:
    """DDP around the stage's forward when a process group runs; the forward itself otherwise."""
    if not dist.is_initialized():
        return forward
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(forward, device_ids=ids, broadcast_buffers=False)
