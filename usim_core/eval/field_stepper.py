"""The baselines' common shape: a network that steps the normalised field itself,
u' = u + net([u, log10(nu) + 2]). It implements the rollout Stepper protocol (latent = normalised field), so eval
rolls it out with the very same loop and metrics as the surrogate; it is deterministic (mode 'operator' only)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class FieldStepper(nn.Module):
    def __init__(self, mean: float, std: float, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("u_mean", torch.tensor(float(mean)))
        self.register_buffer("u_std", torch.tensor(max(float(std), 1e-8)))

    def encode(self, u: Tensor, nu: Tensor) -> Tensor:
        return (u - self.u_mean) / self.u_std

    def decode(self, z: Tensor) -> Tensor:
        return z * self.u_std + self.u_mean

    def step(self, z: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        feat = (torch.log10(nu.clamp_min(1e-12)) + 2.0)[:, None].expand_as(z)
        return z + self.net(torch.stack([z, feat], dim=1))[:, 0]

    def sample_residual(self, *args: Any, **kwargs: Any) -> Tensor:
        raise ValueError(f"the {type(self).__name__} baseline is deterministic: evaluate it in mode 'operator'")
