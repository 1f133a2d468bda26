"""Latent operator: z_t -> z_{t+dt} = z_t + s * f(z_t; nu, dt), a transformer over the latent tokens (token
mixing by attention or spectral, `model.operator.mixer`).

s (buffer `dz_scale`, per latent channel) is the RMS of the true one-step latent change on the training data,
fitted when the operator stage starts, so f works at unit scale however small dt makes the change."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usim_core.config import OperatorConfig
from usim_core.models.blocks import CondEmbed, TokenTransformer


class LatentOperator(nn.Module):
    def __init__(self, cfg: OperatorConfig, tokens: int, latent_dim: int) -> None:
        super().__init__()
        self.cond = CondEmbed(cfg.hidden_dim)
        self.net = TokenTransformer(latent_dim, latent_dim, cfg.hidden_dim, cfg.heads, cfg.depth, cfg.mlp_ratio,
                                    tokens, cfg.mixer)
        self.register_buffer("dz_scale", torch.ones(latent_dim))

    def forward(self, z: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        return z + self.dz_scale * self.net(z, self.cond(nu, dt))
