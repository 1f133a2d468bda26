"""Small building blocks: Fourier coordinate features, conditioning embeddings, an adaLN-Zero transformer
over latent tokens whose token mixing is attention with rotary token positions or spectral (FNO-style)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fourier_features(x: Tensor, n_freq: int) -> Tensor:
    """Periodic features of coordinates x in [0, 1): (..., 2 * n_freq)."""
    k = torch.arange(1, n_freq + 1, device=x.device, dtype=x.dtype)
    ang = 2 * math.pi * x[..., None] * k
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class CondEmbed(nn.Module):
    """Embeds the physical conditioning (log nu, log dt) into a width-`dim` vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, nu: Tensor, dt: Tensor) -> Tensor:
        feats = torch.stack([torch.log(nu.float()), torch.log(dt.float())], dim=-1)
        return self.net(feats.to(self.net[0].weight.dtype))


def rotary(x: Tensor) -> Tensor:
    """Rotary position embedding over the token axis of (B, heads, T, head_dim); head_dim must be even."""
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freqs = 1.0 / (100.0 ** (torch.arange(half, device=x.device, dtype=torch.float32) / half))
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * freqs
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class TokenAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class SpectralMix(nn.Module):
    """FNO-style token mixing over the periodic token axis: each Fourier mode of (B, T, C) mixes its C channels
    with its own complex weights. Tokens tile the periodic domain in order, so this is a global convolution:
    it commutes with a shift of the tokens (a translation of the field), as the PDE does. Measured on the quality
    bench (docs/eval.md), it beat attention at the same CPU on the Burgers operator."""

    def __init__(self, dim: int, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.weight = nn.Parameter(torch.randn(tokens // 2 + 1, dim, dim, 2) / dim)

    def forward(self, x: Tensor) -> Tensor:
        xf = torch.fft.rfft(x.float(), dim=1)  # (B, modes, C)
        yf = torch.einsum("bmc,mcd->bmd", xf, torch.view_as_complex(self.weight.float()))
        return torch.fft.irfft(yf, n=self.tokens, dim=1).to(x.dtype)


MIXERS = ("attention", "spectral")


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-Zero conditioning (identity at initialisation)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, mixer: str = "attention", tokens: int = 0) -> None:
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"token mixer must be one of {', '.join(MIXERS)}, got {mixer!r}")
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        # `attn` for either mixer: the name is in every saved checkpoint's keys
        self.attn = TokenAttention(dim, heads) if mixer == "attention" else SpectralMix(dim, tokens)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.mod = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        s1, b1, g1, s2, b2, g2 = self.mod(F.silu(c))[:, None].chunk(6, dim=-1)
        x = x + g1 * self.attn(self.norm1(x) * (1 + s1) + b1)
        return x + g2 * self.mlp(self.norm2(x) * (1 + s2) + b2)


class TokenTransformer(nn.Module):
    """(B, T, in_dim) tokens + a conditioning vector (B, dim) -> (B, T, out_dim). The output layer starts at
    zero, so a residual model built on it starts as the identity."""

    def __init__(self, in_dim: int, out_dim: int, dim: int, heads: int, depth: int, mlp_ratio: float,
                 tokens: int, mixer: str = "attention") -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, dim)
        self.pos = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, mixer, tokens) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_mod = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, out_dim)
        for lin in (self.final_mod, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.inp(x) + self.pos
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.final_mod(F.silu(c))[:, None].chunk(2, dim=-1)
        return self.out(self.norm(h) * (1 + scale) + shift)
