"""Burgers' invariants imposed by construction on decoded fields.

Viscous periodic Burgers conserves the spatial mean (mass) exactly and never increases the energy. The
surrogate carries the mean outside its latent (it is known from u0) and restores it exactly on every decoded
frame; in a rollout the fluctuation's energy is also capped at the previous frame's, which the true solution
obeys too (with the mean fixed, mean(u^2) = mean^2 + mean((u - mean)^2)). Computed in float64, so the mass
holds to round-off of the output dtype.
"""

from __future__ import annotations

from torch import Tensor


def restore_mean(u: Tensor, mean: Tensor) -> Tensor:
    """u (B, nx) with its spatial mean replaced by `mean` (B,)."""
    u64 = u.double()
    return (u64 - u64.mean(-1, keepdim=True) + mean.double()[:, None]).to(u.dtype)


def cap_energy(u: Tensor, prev: Tensor) -> Tensor:
    """u (B, nx) with its fluctuation scaled down where its energy exceeds prev's; the mean is kept."""
    u64, p64 = u.double(), prev.double()
    m = u64.mean(-1, keepdim=True)
    v = u64 - m
    e = v.pow(2).mean(-1, keepdim=True)
    e_prev = (p64 - p64.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True)
    factor = (e_prev / e.clamp_min(1e-300)).clamp(max=1.0).sqrt()
    return (m + v * factor).to(u.dtype)
