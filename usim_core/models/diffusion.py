"""Conditional diffusion corrector of the operator's one-step latent error, on PDE-Refiner's recipe
(Lippe et al. 2023, arXiv 2308.05732; pdearena's PDERefiner is the reference implementation).

The target is the normalised residual r = (z_{t+1} - step(z_t) - r_mean) / r_std, conditioned on the
operator's prediction step(z_t), nu and dt. One network, K + 1 levels:
  k = 0      a first prediction from no input (zeros): r0 = f(0, 0 | cond), trained with plain MSE on r;
  k = 1..K   refinement at the small noise std sigma_k = min_noise_std^(k / K): the input r + sigma_k eps, the
             network predicts eps (prediction "eps", the paper) or v (prediction "v", pdearena's choice); either
             gives the clean estimate r_hat = x - sigma_k eps_hat.
Training draws k uniformly from 0..K. Sampling: r0, then for k = 1..K: r_k = denoise(r_{k-1} + sigma_k eps_k, k),
deterministic given the K noise draws (so a student can be distilled from it).

The consistency student is a copy of the network, trained to give the teacher's sample from the same noise in
one call (input: the teacher's total injected noise sum_k sigma_k eps_k at level 0) or two (that, then the
teacher's last refinement at sigma_K).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from usim_core.config import DiffusionConfig
from usim_core.models.blocks import CondEmbed, TokenTransformer


def noise_levels(steps: int, min_std: float, device: torch.device | str = "cpu") -> Tensor:
    """sigma_k = min_std^(k / K) for k = 1..K: the refinement levels, decreasing to min_std."""
    k = torch.arange(1, steps + 1, device=device, dtype=torch.float64)
    return (min_std ** (k / steps)).float()


class Denoiser(nn.Module):
    """Token transformer on [input, operator prediction] conditioned on nu, dt and the level k (0..K)."""

    def __init__(self, cfg: DiffusionConfig, tokens: int, latent_dim: int) -> None:
        super().__init__()
        self.prediction = cfg.prediction
        self.register_buffer("sigmas", noise_levels(cfg.steps, cfg.min_noise_std))
        self.cond = CondEmbed(cfg.hidden_dim)
        self.level = nn.Embedding(cfg.steps + 1, cfg.hidden_dim)
        self.net = TokenTransformer(2 * latent_dim, latent_dim, cfg.hidden_dim, cfg.heads, cfg.depth, 2.0, tokens)

    @property
    def steps(self) -> int:
        return int(self.sigmas.numel())

    def raw(self, x: Tensor, level: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        c = self.cond(nu, dt) + self.level(level)
        return self.net(torch.cat([x, z_cond], dim=-1), c)

    def _coefs(self, level: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(sigma, a, s) per sample for levels >= 1: x_vp = a (r + sigma eps), a = 1/sqrt(1 + sigma^2), s = a sigma."""
        sigma = self.sigmas[(level - 1).clamp_min(0)].view(-1, 1, 1)
        a = 1.0 / torch.sqrt(1.0 + sigma**2)
        return sigma, a, a * sigma

    def first(self, z_cond: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        """The k = 0 prediction: an MSE estimate of r from the conditioning alone."""
        b = z_cond.shape[0]
        zero = torch.zeros(b, dtype=torch.long, device=z_cond.device)
        return self.raw(torch.zeros_like(z_cond), zero, z_cond, nu, dt)

    def denoise(self, x: Tensor, level: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        """Clean estimate of r from x = r + sigma_k eps at level k >= 1."""
        sigma, a, s = self._coefs(level)
        out = self.raw(a * x, level, z_cond, nu, dt)
        if self.prediction == "v":  # v = a eps - s r  ->  r = a x_vp - s v
            return a * (a * x) - s * out
        return x - sigma * out

    def loss(self, r: Tensor, z_cond: Tensor, nu: Tensor, dt: Tensor, level: Tensor, eps: Tensor) -> Tensor:
        """PDE-Refiner's loss for a batch with levels in 0..K: MSE on r at k = 0, on eps (or v) at k >= 1."""
        sigma, a, s = self._coefs(level)
        x = torch.where((level == 0).view(-1, 1, 1), torch.zeros_like(r), a * (r + sigma * eps))
        out = self.raw(x, level, z_cond, nu, dt)
        noise_target = a * eps - s * r if self.prediction == "v" else eps
        target = torch.where((level == 0).view(-1, 1, 1), r, noise_target)
        return ((out - target) ** 2).mean()


def _levels(b: int, k: int, device: torch.device) -> Tensor:
    return torch.full((b,), k, dtype=torch.long, device=device)


def sample_teacher(model: Denoiser, z_cond: Tensor, nu: Tensor, dt: Tensor, noise: Tensor) -> Tensor:
    """First prediction, then K refinements; noise (K, B, T, D) holds unit draws eps_1..eps_K."""
    b, dev = z_cond.shape[0], z_cond.device
    r = model.first(z_cond, nu, dt)
    for k in range(1, model.steps + 1):
        r = model.denoise(r + model.sigmas[k - 1] * noise[k - 1], _levels(b, k, dev), z_cond, nu, dt)
    return r


def total_noise(model: Denoiser, noise: Tensor) -> Tensor:
    """sum_k sigma_k eps_k: all the noise the teacher injects, as one draw."""
    return torch.einsum("k,k...->...", model.sigmas.to(noise.dtype), noise)


def sample_student(model: Denoiser, z_cond: Tensor, nu: Tensor, dt: Tensor, noise: Tensor, steps: int) -> Tensor:
    """Consistency student: 1 call (the teacher's total noise in, the sample out, at level 0) or 2 (then the
    teacher's last refinement at sigma_K with eps_K)."""
    b, dev = z_cond.shape[0], z_cond.device
    r = model.raw(total_noise(model, noise), _levels(b, 0, dev), z_cond, nu, dt)
    if steps == 2:
        k = model.steps
        r = model.denoise(r + model.sigmas[k - 1] * noise[k - 1], _levels(b, k, dev), z_cond, nu, dt)
    return r
