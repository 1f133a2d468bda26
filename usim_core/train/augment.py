"""Symmetries of viscous Burgers on a periodic domain, used to augment training windows: every transformed window
is another exact solution of the same PDE at the same nu, so the model sees each initial shape in more of the
states it can meet (a steep packet at another mean, or mirrored) without new data.

- reflection: x -> -x, u -> -u (u_t + u u_x = nu u_xx is unchanged); on the cell-centred periodic grid this is
  the index flip i -> nx - 1 - i;
- Galilean boost by c: u'(x, t) = u(x - c t, t) + c; frame k of a window (time k dt after its first) is shifted
  by c k dt, exactly, as a Fourier phase (the fields are resolved on their grid), and raised by c.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from usim_core.train.parallel import Part, whole


def reflect(u: Tensor, mask: Tensor) -> Tensor:
    """u (B, H, nx) with the rows where mask (B,) is True mirrored: u(x) -> -u(-x)."""
    return torch.where(mask[:, None, None], -u.flip(-1), u)


def galilean(u: Tensor, c: Tensor, dt: Tensor, length: float) -> Tensor:
    """u (B, H, nx) windows of frames dt (B,) apart on a period of `length`, boosted by c (B,) (physical units)."""
    nx = u.shape[-1]
    k = torch.arange(u.shape[1], dtype=torch.float64, device=u.device)
    shift = c.double()[:, None] * k * dt.double()[:, None] / length  # (B, H), in periods
    modes = torch.arange(nx // 2 + 1, dtype=torch.float64, device=u.device)
    spec = torch.fft.rfft(u.double(), dim=-1) * torch.exp(-2j * math.pi * modes * shift[..., None])
    return (torch.fft.irfft(spec, n=nx, dim=-1) + c.double()[:, None, None]).to(u.dtype)


def augment(u: Tensor, dt: Tensor, length: float, gen: torch.Generator, reflect_half: bool,
            galilean_max: float, part: Part | None = None) -> Tensor:
    """Each window mirrored with probability 1/2 (if reflect_half) and boosted by c ~ U(-galilean_max,
    galilean_max) (if > 0); all randomness from gen, so an epoch stays reproducible from its seed. `part`: this
    process's rows of the batch (the draws are the whole batch's; None: u is the whole batch)."""
    part = part or whole(u)
    b = u.shape[0]
    if reflect_half:
        u = reflect(u, (part.rand((b,), gen) < 0.5).to(u.device))
    if galilean_max > 0:
        c = (part.rand((b,), gen, dtype=torch.float64) * 2 - 1) * galilean_max
        u = galilean(u, c.to(u.device), dt, length)
    return u
