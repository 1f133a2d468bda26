"""Trained codec: encoder grid field -> (latent_tokens, latent_dim), any-point decoder tokens -> field.
Both work on the normalised field; the Surrogate handles physical units."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usim_core.models.blocks import CondEmbed, fourier_features

N_FREQ = 32  # coordinate frequencies: enough for the steep fronts of Burgers at 256 points


def codec_heads(hidden: int) -> int:
    return 4 if hidden % 4 == 0 else 1


class Encoder(nn.Module):
    """Conv stem over the field with Fourier coordinates, patch-pooled to T tokens (a direct local path), then
    refined by cross-attention from those tokens (plus learned queries conditioned on nu) to the grid."""

    def __init__(self, tokens: int, latent_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.lift = nn.Linear(1 + 2 * N_FREQ, hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=2, padding_mode="circular") for _ in range(depth))
        self.queries = nn.Parameter(torch.randn(tokens, hidden) * 0.02)
        self.cond = CondEmbed(hidden)
        self.pool = nn.MultiheadAttention(hidden, codec_heads(hidden), batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))

    def forward(self, u: Tensor, x: Tensor, nu: Tensor) -> Tensor:
        b = u.shape[0]
        feats = torch.cat([u[..., None], fourier_features(x, N_FREQ).expand(b, -1, -1)], dim=-1)
        h = self.lift(feats).transpose(1, 2)  # (B, H, nx)
        for conv in self.convs:
            h = h + torch.nn.functional.gelu(conv(h))
        h = h.transpose(1, 2)
        patches = torch.nn.functional.adaptive_avg_pool1d(h.transpose(1, 2), self.queries.shape[0]).transpose(1, 2)
        q = patches + self.queries[None] + self.cond(nu, torch.ones_like(nu))[:, None]
        pooled, _ = self.pool(q, h, h, need_weights=False)
        return self.head(self.norm(pooled + q))


class Decoder(nn.Module):
    """Any-point decoder: Fourier features of query coordinates cross-attend to the tokens, MLP to a value."""

    def __init__(self, tokens: int, latent_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.kv = nn.Linear(latent_dim, hidden)
        # token centres embedded like the queries: attention starts out local (query near token centre)
        self.register_buffer("centres", (torch.arange(tokens, dtype=torch.float32) + 0.5) / tokens)
        self.query = nn.Linear(2 * N_FREQ, hidden)
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(hidden, codec_heads(hidden), batch_first=True) for _ in range(depth))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(2 * depth))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
            for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        b = z.shape[0]
        kv = self.kv(z) + self.query(fourier_features(self.centres, N_FREQ))
        q = self.query(fourier_features(x, N_FREQ)).expand(b, -1, -1)
        for i, (attn, mlp) in enumerate(zip(self.attn, self.mlps, strict=True)):
            a, _ = attn(self.norms[2 * i](q), kv, kv, need_weights=False)
            q = q + a
            q = q + mlp(self.norms[2 * i + 1](q))
        return self.out(q)[..., 0]
