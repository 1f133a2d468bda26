"""Conditional diffusion model of the operator's one-step latent error (PDE-Refiner style).

The target is the normalised residual r = (z_{t+1} - step(z_t) - r_mean) / r_std, conditioned on the
operator's prediction step(z_t), nu and dt. Noise levels are K exponentially decreasing standard deviations
from SIGMA_MAX down to min_noise_std (PDE-Refiner's schedule); the network sees the variance-preserving input
x = a r + s eps (a = 1/sqrt(1+sigma^2), s = sigma a) and predicts v = a eps - s r or eps. The K-step sampler is
DPM-Solver++(2M) on those levels, deterministic given the initial noise, so a student can be distilled from it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usim_core.config import DiffusionConfig
from usim_core.models.blocks import CondEmbed, TokenTransformer

SIGMA_MAX = 20.0


def noise_levels(steps: int, min_std: float, device: torch.device | str = "cpu") -> Tensor:
    if steps == 1:
        return torch.tensor([SIGMA_MAX], device=device)
    i = torch.arange(steps, device=device, dtype=torch.float32) / (steps - 1)
    return SIGMA_MAX * (min_std / SIGMA_MAX) ** i


class Denoiser(nn.Module):
    """Token transformer on [noisy residual, operator prediction] conditioned on nu, dt and the noise level."""

    def __init__(self, cfg: DiffusionConfig, tokens: int, latent_dim: int) -> None:
        super().__init__()
        self.prediction = cfg.prediction
        self.register_buffer("sigmas", noise_levels(cfg.steps, cfg.min_noise_std))
        self.cond = CondEmbed(cfg.hidden_dim)
        self.level = nn.Embedding(cfg.steps, cfg.hidden_dim)
        self.net = TokenTransformer(2 * latent_dim, latent_dim, cfg.hidden_dim, cfg.heads, cfg.depth, 2.0, tokens)

    def raw(self, x_vp: Tensor, level: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        c = self.cond(nu, dt) + self.level(level)
        return self.net(torch.cat([x_vp, z_cond], dim=-1), c)

    def coefs(self, level: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sigma = self.sigmas[level].view(-1, 1, 1)
        a = 1.0 / torch.sqrt(1.0 + sigma**2)
        return sigma, a, sigma * a

    def loss(self, r: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor, level: Tensor, eps: Tensor) -> Tensor:
        _, a, s = self.coefs(level)
        out = self.raw(a * r + s * eps, level, z_cond, nu, dt)
        target = a * eps - s * r if self.prediction == "v" else eps
        return ((out - target) ** 2).mean()

    def denoise(self, x_ve: Tensor, level: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        """Estimate of the clean residual from x_ve = r + sigma eps at `level`."""
        _, a, s = self.coefs(level)
        x_vp = a * x_ve
        out = self.raw(x_vp, level, z_cond, nu, dt)
        return a * x_vp - s * out if self.prediction == "v" else (x_vp - s * out) / a


def _levels(b: int, i: int, device: torch.device) -> Tensor:
    return torch.full((b,), i, dtype=torch.long, device=device)


def sample_teacher(model: Denoiser, z_cond: Tensor, nu: Tensor, dt: Tensor, noise: Tensor) -> Tensor:
    """K-step DPM-Solver++(2M) from unit `noise` (scaled to the first level) to a normalised residual."""
    sig = model.sigmas
    b, dev = noise.shape[0], noise.device
    x = noise * sig[0]
    prev: Tensor | None = None
    for i in range(len(sig) - 1):
        d = model.denoise(x, _levels(b, i, dev), z_cond, nu, dt)
        d_eff = d if prev is None else 1.5 * d - 0.5 * prev  # constant log-sigma spacing: r = 1
        ratio = sig[i + 1] / sig[i]
        x = ratio * x + (1 - ratio) * d_eff
        prev = d
    return model.denoise(x, _levels(b, len(sig) - 1, dev), z_cond, nu, dt)


def sample_student(model: Denoiser, z_cond: Tensor, nu: Tensor, dt: Tensor, noise: Tensor, steps: int,
                   noise2: Tensor | None = None) -> Tensor:
    """Consistency student: 1 step (denoise pure noise) or 2 (re-noise at the middle level, denoise again)."""
    sig = model.sigmas
    b, dev = noise.shape[0], noise.device
    r = model.denoise(noise * sig[0], _levels(b, 0, dev), z_cond, nu, dt)
    if steps == 2 and len(sig) > 1:
        mid = len(sig) // 2
        n2 = noise2 if noise2 is not None else torch.randn_like(noise)
        r = model.denoise(r + sig[mid] * n2, _levels(b, mid, dev), z_cond, nu, dt)
    return r
