"""The viscous part of a Burgers step, exact: first-order exponential time differencing (ETD1) in Fourier.

Burgers is u_t = N(u) + (nu/pi) u_xx. Over one frame dt, Fourier mode m of a domain of length L decays by
E = exp(-lam), lam = (nu/pi) (2 pi m / L)^2 dt. The operator's own prediction u_op stands for "u plus the
step's change"; the step keeps its nonlinear part and makes the viscous part exact:

    u' = E u + phi1(lam) (u_op - u),    phi1 = (1 - E) / lam  (1 at lam = 0)

which is ETD1 with the change held over the step. A pure heat step is exact with u_op = u, the mean (m = 0)
passes untouched, and the operator's fine-scale error is damped by phi1 ~ 1 / lam instead of being fed back
whole. That matters with an exact codec: without it, an operator on a lossless latent let its fine-scale error
compound over a rollout (docs/eval.md, "An exact codec, first without the viscous step").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def viscous_factors(nx: int, nu: Tensor, dt: Tensor, length: float) -> tuple[Tensor, Tensor]:
    """(E, phi1), each (B, nx // 2 + 1), for per-sample nu (B,) and dt (B,) on a periodic grid of nx points."""
    k = 2 * math.pi / length * torch.fft.rfftfreq(nx, d=1.0 / nx, dtype=torch.float64, device=nu.device)
    lam = (nu.double() / math.pi)[:, None] * k[None] ** 2 * dt.double().reshape(-1, 1)
    phi = torch.where(lam > 0, -torch.expm1(-lam) / lam.clamp_min(1e-300), torch.ones_like(lam))
    return torch.exp(-lam), phi


def viscous_step(u: Tensor, u_op: Tensor, nu: Tensor, dt: Tensor, length: float) -> Tensor:
    """u' = E u + phi1 (u_op - u) for fields u, u_op (B, nx) on the grid; linear, so it commutes with any
    affine normalisation u -> (u - c) / s (the mean mode is passed through)."""
    e, phi = viscous_factors(u.shape[-1], nu, dt, length)
    fu, fop = torch.fft.rfft(u.double()), torch.fft.rfft(u_op.double())
    return torch.fft.irfft(e * fu + phi * (fop - fu), n=u.shape[-1]).to(u.dtype)
