"""Latent operator: z_t -> z_{t+dt} = z_t + f(z_t; nu, dt), a transformer over the latent tokens."""

from __future__ import annotations

from torch import Tensor, nn

from usim_core.config import OperatorConfig
from usim_core.models.blocks import CondEmbed, TokenTransformer


class LatentOperator(nn.Module):
    def __init__(self, cfg: OperatorConfig, tokens: int, latent_dim: int) -> None:
        super().__init__()
        self.cond = CondEmbed(cfg.hidden_dim)
        self.net = TokenTransformer(latent_dim, latent_dim, cfg.hidden_dim, cfg.heads, cfg.depth, cfg.mlp_ratio,
                                    tokens)

    def forward(self, z: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        return z + self.net(z, self.cond(nu, dt))
