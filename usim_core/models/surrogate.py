"""The whole surrogate. Every public method takes and returns PHYSICAL fields; normalisation is internal
(stats stored as buffers, so a checkpoint carries them).

Mass by construction: the spatial mean of u0 is known and conserved by Burgers, so it is carried outside the
latent: `step` and `decode` take it (`mean`, physical, (B,)) and restore it exactly on every decoded field
(models/invariants.py); `conserves_mass` tells the rollout to pass it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from usim_core.config import ConfigError, RunConfig
from usim_core.models.codec import Decoder, Encoder, linear_pair, patch_points
from usim_core.models.diffusion import Denoiser, sample_student, sample_teacher
from usim_core.models.invariants import restore_mean
from usim_core.models.operator import LatentOperator
from usim_core.models.viscous import viscous_step

# which submodules each stage trains (the others are frozen during it)
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "codec": ("encoder", "decoder"),
    "operator": ("operator",),
    "diffusion_residual": ("denoiser",),
    "consistency_distill": ("student",),
}
MODES = ("operator", "diffusion", "consistency")


def check_architecture(cfg: RunConfig, nx: int) -> None:
    """Shape rules beyond the config schema. Attention mixing uses rotary positions over the token axis, which
    rotate pairs of channels: each head's width hidden_dim / heads must be even."""
    m = cfg.model
    problems = []
    for name, sub in (("operator", m.operator), ("diffusion", m.diffusion)):
        if getattr(sub, "mixer", "attention") != "attention":
            continue
        head_dim = sub.hidden_dim // sub.heads
        if sub.hidden_dim % sub.heads or head_dim % 2:
            problems.append(
                f"model.{name}: hidden_dim {sub.hidden_dim} / heads {sub.heads} must be an even integer "
                f"(rotary token positions over {m.codec.latent_tokens} latent tokens rotate channel pairs per "
                f"head); allowed heads for hidden_dim {sub.hidden_dim}: "
                f"{[h for h in range(1, sub.hidden_dim + 1) if sub.hidden_dim % h == 0 and (sub.hidden_dim // h) % 2 == 0]}")
    if m.codec.latent_tokens > nx:
        problems.append(f"model.codec.latent_tokens {m.codec.latent_tokens} exceeds the {nx} grid points after "
                        f"data.x_stride {cfg.data.x_stride}; use at most {nx}")
    if problems:
        raise ConfigError("; ".join(problems))


def _stat(stats: Any, key: str) -> float:
    return float(stats[key] if isinstance(stats, dict) else getattr(stats, key))


class Surrogate(nn.Module):
    conserves_mass = True

    def __init__(self, cfg: RunConfig, nx: int, stats: Any, length: float = 1.0) -> None:
        super().__init__()
        check_architecture(cfg, nx)
        c = cfg.model.codec
        self.nx, self.tokens, self.latent_dim = nx, c.latent_tokens, c.latent_dim
        self.length = float(length)  # the data's period: the viscous step's wavenumbers are 2 pi m / length
        self.viscous = cfg.model.operator.viscous_step
        self.consistency_steps = cfg.model.consistency.steps
        self.register_buffer("u_mean", torch.tensor(_stat(stats, "mean")))
        self.register_buffer("u_std", torch.tensor(max(_stat(stats, "std"), 1e-8)))
        self.register_buffer("x_grid", torch.arange(nx, dtype=torch.float32) / nx)
        self.register_buffer("r_mean", torch.zeros(c.latent_dim))
        self.register_buffer("r_std", torch.ones(c.latent_dim))
        enc, dec = linear_pair(patch_points(c.latent_tokens, nx)[0], c.latent_dim) if c.linear_path else (None, None)
        self.encoder = Encoder(c.latent_tokens, c.latent_dim, c.hidden_dim, c.depth, nx, enc)
        self.decoder = Decoder(c.latent_tokens, c.latent_dim, c.hidden_dim, c.depth, dec)
        self.operator = LatentOperator(cfg.model.operator, c.latent_tokens, c.latent_dim)
        self.denoiser = Denoiser(cfg.model.diffusion, c.latent_tokens, c.latent_dim)
        self.student = Denoiser(cfg.model.diffusion, c.latent_tokens, c.latent_dim)

    # ---------------------------------------------------------------- normalised-space helpers
    def normalise(self, u: Tensor) -> Tensor:
        return (u - self.u_mean) / self.u_std

    def denormalise(self, u: Tensor) -> Tensor:
        return u * self.u_std + self.u_mean

    def encode_n(self, u_n: Tensor, nu: Tensor) -> Tensor:
        return self.encoder(u_n, self.x_grid, nu)

    def decode_n(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        return self.decoder(z, self.x_grid if x is None else x.to(self.x_grid))

    # ---------------------------------------------------------------- public, physical units
    def encode(self, u: Tensor, nu: Tensor) -> Tensor:
        return self.encode_n(self.normalise(u), nu)

    def decode(self, z: Tensor, x: Tensor | None = None, mean: Tensor | None = None) -> Tensor:
        """The field at the grid (or at x); with `mean` (B,) its spatial mean is exactly that (grid only)."""
        u = self.denormalise(self.decode_n(z, x))
        return u if mean is None or x is not None else restore_mean(u, mean)

    def step(self, z: Tensor, nu: Tensor, dt: Tensor, mean: Tensor | None = None) -> Tensor:
        """One operator step, then decode (+ the viscous part made exact, with `viscous_step`; + the mean
        restored) and re-encode: the latent is projected back onto the codec's range every step, so errors off
        that range cannot compound over a rollout, and the operator never sees a drifted mean."""
        u_n = self.decode_n(self.operator(z, nu, dt))
        if self.viscous:
            u_n = viscous_step(self.decode_n(z), u_n, nu, dt, self.length)
        if mean is not None:
            u_n = restore_mean(u_n, (mean.to(u_n.dtype) - self.u_mean) / self.u_std)
        return self.encode_n(u_n, nu)

    def sample_residual(self, z_pred: Tensor, nu: Tensor, dt: Tensor, mode: str,
                        generator: torch.Generator | None = None, noise_scale: float = 1.0) -> Tensor:
        """A sample r of the operator's one-step latent error; the corrected latent is z_pred + r."""
        shape = (self.denoiser.steps, *z_pred.shape)
        noise = torch.randn(shape, generator=generator, device=z_pred.device) * noise_scale
        if mode == "diffusion":
            r = sample_teacher(self.denoiser, z_pred, nu, dt, noise)
        elif mode == "consistency":
            r = sample_student(self.student, z_pred, nu, dt, noise, self.consistency_steps)
        else:
            raise ValueError(f"sample_residual mode must be 'diffusion' or 'consistency', got {mode!r}")
        return r * self.r_std + self.r_mean

    @torch.no_grad()
    def rollout(self, u0: Tensor, nu: Tensor, dt: Tensor, steps: int, mode: str = "operator",
                generator: torch.Generator | None = None) -> Tensor:
        """(B, steps+1, nx) physical; index 0 is u0 itself."""
        if mode not in MODES:
            raise ValueError(f"rollout mode must be one of {MODES}, got {mode!r}")
        z = self.encode(u0, nu)
        m0 = u0.double().mean(-1)
        out = [u0]
        for _ in range(steps):
            z = self.step(z, nu, dt, mean=m0)
            if mode != "operator":
                z = z + self.sample_residual(z, nu, dt, mode, generator)
            out.append(self.decode(z, mean=m0))
        return torch.stack(out, dim=1)
