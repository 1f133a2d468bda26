"""Trained codec: encoder grid field -> (latent_tokens, latent_dim), any-point decoder tokens -> field.
Both work on the normalised field; the Surrogate handles physical units.

Token j owns the interval [j/T, (j+1)/T) of the periodic domain. Both halves are local on purpose: the earlier
codec average-pooled each patch and decoded with global cross-attention from coordinate features, which
plateaued at ~0.2 reconstruction nRMSE (a patch mean plus a few attention picks cannot place a steep Burgers
front inside its patch). Now the encoder reads the patch's P sub-point features in order (position is kept)
and the decoder is a local implicit MLP: value at x = MLP(tokens around x, x's offset inside its token).

Linear path (`linear_path`): beside those, token j's latent holds a linear map of its patch's P values, and the
decoder reads them back with the transposed map (linear interpolation between the patch points at any x). The
pair starts orthonormal, so the codec is exact at initialisation whenever latent_dim >= P, and the learned parts
start at zero and learn only what the linear pair misses. Without it the learned codec had to discover that
near-identity itself, and its floor fell only as steps^-0.7 (docs/eval.md, "The codec's floor against its budget").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usim_core.models.blocks import CondEmbed, fourier_features

N_FREQ = 32  # global coordinate frequencies of the encoder's conv stem
LOCAL_FREQ = 16  # offset features sin/cos(2 pi k off / 2): up to 8 cycles per token (P = 16 points)
NEIGHBOURS = (-1, 0, 1)  # tokens the decoder reads around a query (periodic)


def codec_heads(hidden: int) -> int:
    return 4 if hidden % 4 == 0 else 1


def periodic_sample(h: Tensor, pos: Tensor) -> Tensor:
    """Linear interpolation of (B, n, C) samples on the periodic grid i/n at coordinates pos (M,) -> (B, M, C)."""
    n = h.shape[1]
    s = pos * n
    i0 = torch.floor(s)
    w = (s - i0)[None, :, None].to(h.dtype)
    i0 = i0.long() % n
    return h[:, i0] * (1 - w) + h[:, (i0 + 1) % n] * w


def patch_points(tokens: int, nx: int) -> tuple[int, Tensor]:
    """(P, coordinates (T * P,)): P sub-points per token, P = ceil(nx / T); exact grid points when T divides nx."""
    p = math.ceil(nx / tokens)
    return p, torch.arange(tokens * p, dtype=torch.float32) / (tokens * p)


def linear_pair(patch: int, latent_dim: int) -> tuple[nn.Linear, nn.Linear]:
    """Patch -> latent and latent -> patch maps, orthonormal and each other's transpose: exact when D >= P, an
    orthogonal projection onto D of the P directions otherwise."""
    enc, dec = nn.Linear(patch, latent_dim, bias=False), nn.Linear(latent_dim, patch, bias=False)
    nn.init.orthogonal_(enc.weight)
    with torch.no_grad():
        dec.weight.copy_(enc.weight.T)
    return enc, dec


def zero_(layer: nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


class Encoder(nn.Module):
    """Circular conv stem over [u, Fourier(x)], each token's patch of P sub-point features flattened in order
    and projected (keeps where inside the patch things happen), then refined by cross-attention from the tokens
    (plus learned queries conditioned on nu) to the whole grid."""

    def __init__(self, tokens: int, latent_dim: int, hidden: int, depth: int, nx: int,
                 linear: nn.Linear | None = None) -> None:
        super().__init__()
        self.tokens = tokens
        self.linear = linear
        self.patch, pts = patch_points(tokens, nx)
        self.register_buffer("points", pts, persistent=False)
        self.lift = nn.Linear(1 + 2 * N_FREQ, hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=2, padding_mode="circular") for _ in range(depth))
        self.embed = nn.Linear(self.patch * (hidden + 1), hidden)
        self.queries = nn.Parameter(torch.randn(tokens, hidden) * 0.02)
        self.cond = CondEmbed(hidden)
        self.pool = nn.MultiheadAttention(hidden, codec_heads(hidden), batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))
        if linear is not None:
            zero_(self.head[-1])

    def forward(self, u: Tensor, x: Tensor, nu: Tensor) -> Tensor:
        b = u.shape[0]
        # lift([u, Fourier(x)]) with the coordinate part computed once, not once per field of the batch
        w = self.lift.weight
        coords = F.linear(fourier_features(x, N_FREQ).to(w.dtype), w[:, 1:], self.lift.bias)  # (nx, H)
        h = (u[..., None] * w[:, 0] + coords).transpose(1, 2)  # (B, H, nx)
        for conv in self.convs:
            h = h + F.gelu(conv(h))
        h = h.transpose(1, 2)
        # the raw values ride along with the conv features: a direct linear path from the field to the tokens
        local = torch.cat([h, u[..., None]], dim=-1)
        if local.shape[1] != self.points.shape[0]:
            local = periodic_sample(local, self.points)
        q = self.embed(local.reshape(b, self.tokens, -1)) + self.queries[None] + self.cond(nu, torch.ones_like(nu))[:, None]
        pooled, _ = self.pool(q, h, h, need_weights=False)
        z = self.head(self.norm(pooled + q))
        if self.linear is None:
            return z
        return z + self.linear(local[..., -1].reshape(b, self.tokens, self.patch))


class Decoder(nn.Module):
    """Any-point local implicit decoder: for a query x in token j, read tokens j-1, j, j+1 and the Fourier
    features of x's offset inside token j. Their product term lets it pick "coefficient i of the token at
    offset o" directly (an unpatchify), which a plain MLP on the concatenation learns only slowly."""

    def __init__(self, tokens: int, latent_dim: int, hidden: int, depth: int,
                 linear: nn.Linear | None = None) -> None:
        super().__init__()
        self.tokens = tokens
        self.linear = linear
        width = 2 * hidden
        n_pos = 2 * LOCAL_FREQ + 1
        self.tok = nn.Linear(len(NEIGHBOURS) * latent_dim, 2 * width)
        self.pos = nn.Sequential(nn.Linear(n_pos, width), nn.GELU(), nn.Linear(width, 2 * width))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
            for _ in range(depth))
        self.out = nn.Linear(width, 1)
        if linear is not None:
            zero_(self.out)

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        s = torch.remainder(x, 1.0) * self.tokens
        j = torch.floor(s).long().clamp_max(self.tokens - 1)
        off = s - j  # in [0, 1): where inside token j
        idx = torch.arange(self.tokens, device=z.device)
        near = torch.cat([z[:, (idx + d) % self.tokens] for d in NEIGHBOURS], dim=-1)  # (B, T, 3 D)
        pos = torch.cat([off[..., None], fourier_features(off / 2, LOCAL_FREQ)], dim=-1).to(z.dtype)
        # the token projection depends on the token only: once per token, then gathered to the M queries
        ta, tb = self.tok(near)[:, j].chunk(2, dim=-1)
        pa, pb = self.pos(pos).chunk(2, dim=-1)
        h = ta * pa + tb + pb  # pos terms broadcast over the batch
        for mlp in self.mlps:
            h = h + mlp(h)
        u = self.out(h)[..., 0]
        if self.linear is None:
            return u
        patches = self.linear(z).reshape(z.shape[0], -1, 1)  # (B, T * P, 1) at the patch points
        return u + periodic_sample(patches, torch.remainder(x, 1.0))[..., 0]
