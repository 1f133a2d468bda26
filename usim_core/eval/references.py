"""References that learn nothing, each a rollout of frames 1..T from u0 (B, nx), physical:
persistence (u0 held), the mean field (u0's spatial mean everywhere: what a field relaxed to its conserved mean
looks like), the heat step (viscosity alone, exact per Fourier mode: the linear part of Burgers), and the
project's own solver on a grid of nx points (coarse.solve_coarse)."""

from __future__ import annotations

import torch
from torch import Tensor

from usim_core.models.viscous import viscous_factors


def persistence(u0: Tensor, steps: int) -> Tensor:
    return u0[:, None].expand(-1, steps, -1).clone()


def mean_field(u0: Tensor, steps: int) -> Tensor:
    return u0.mean(-1, keepdim=True)[:, None].expand(-1, steps, u0.shape[-1]).clone()


def heat(u0: Tensor, nu: Tensor, dt: float, steps: int, length: float) -> Tensor:
    """u0 diffused with coefficient nu/pi (Burgers' own viscosity) without the advection."""
    e, _ = viscous_factors(u0.shape[-1], nu.double(), torch.full_like(nu, dt, dtype=torch.float64), length)
    k = torch.arange(1, steps + 1, dtype=torch.float64)
    spec = torch.fft.rfft(u0.double(), dim=-1)[:, None] * e[:, None] ** k[None, :, None]
    return torch.fft.irfft(spec, n=u0.shape[-1], dim=-1).to(u0.dtype)
