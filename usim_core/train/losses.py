"""The loss of each stage, in normalised units. `gen` supplies all randomness (noise, levels) so a stage
epoch is reproducible from its seed alone (exact resume). `part` is this process's share of the batch under
data parallelism (train/parallel.py): randomness is drawn for the whole batch and batch statistics are global,
so the loss does not depend on the number of processes; None is the whole batch (one process)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from usim_core.config import RunConfig
from usim_core.eval.metrics import error_power
from usim_core.models.diffusion import sample_student, sample_teacher
from usim_core.models.surrogate import Surrogate
from usim_core.train.parallel import Part, whole


def low_mode_mse(pred: Tensor, true: Tensor, modes: int) -> Tensor:
    """The part of the mean squared error (over x) that lies in Fourier modes 1..modes (Parseval)."""
    return error_power(pred, true)[..., 1:modes + 1].sum(-1).mean()


def codec_loss(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor, cfg: RunConfig, gen: torch.Generator,
               part: Part | None = None) -> Tensor:
    u_n = m.normalise(u[:, 0])
    rec = m.decode_n(m.encode_n(u_n, nu))
    loss = F.mse_loss(rec, u_n)
    st = cfg.stages.codec
    return loss + st.low_mode_weight * low_mode_mse(rec, u_n, st.low_modes) if st.low_mode_weight else loss


def operator_loss(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor, cfg: RunConfig,
                  gen: torch.Generator, part: Part | None = None) -> Tensor:
    """Per step k: latent MSE relative to the true latent change z_k - z_0 (so a persistence-like operator
    scores ~1 however small dt is) + decoded MSE; one-step term + unroll_weight x mean of steps 2..H."""
    part = part or whole(u)
    u_n = m.normalise(u)
    b, h1, nx = u_n.shape
    with torch.no_grad():  # the codec is frozen in this stage
        z_true = m.encode_n(u_n.reshape(b * h1, nx), nu.repeat_interleave(h1)).reshape(b, h1, m.tokens, -1)
    z = z_true[:, 0]
    mean = u[:, 0].double().mean(-1)  # conserved: carried outside the latent, as in a rollout
    losses = []
    for k in range(1, h1):
        z = m.step(z, nu, dt, mean=mean)
        scale = part.mean((z_true[:, k] - z_true[:, 0]) ** 2).clamp_min(1e-8)
        losses.append(F.mse_loss(z, z_true[:, k]) / scale + F.mse_loss(m.decode_n(z), u_n[:, k]))
    one = losses[0]
    if len(losses) == 1:
        return one
    return one + cfg.stages.operator.unroll_weight * torch.stack(losses[1:]).mean()


@torch.no_grad()
def residual_pairs(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """(operator prediction z_pred, raw latent residual z_{t+1} - z_pred) for pairs u (B, 2, nx)."""
    z0 = m.encode(u[:, 0], nu)
    z1 = m.encode(u[:, 1], nu)
    z_pred = m.step(z0, nu, dt, mean=u[:, 0].double().mean(-1))
    return z_pred, z1 - z_pred


def diffusion_loss(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor, cfg: RunConfig,
                   gen: torch.Generator, part: Part | None = None) -> Tensor:
    part = part or whole(u)
    z_pred, r = residual_pairs(m, u, nu, dt)
    r_n = (r - m.r_mean) / m.r_std
    level = part.randint(m.denoiser.steps + 1, (r.shape[0],), gen).to(r.device)
    eps = part.randn(r.shape, gen).to(r.device)
    return m.denoiser.loss(r_n, z_pred, nu, dt, level, eps)


def diffusion_val_loss(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor, cfg: RunConfig,
                       gen: torch.Generator, part: Part | None = None) -> Tensor:
    """What the corrector is for: the MSE of a full sample (first prediction + K refinements) against the true
    normalised residual. The training loss cannot show progress: at PDE-Refiner's small noise levels the
    noise target is nearly unpredictable (its loss stays ~1 at any skill), so it is not used for selection."""
    part = part or whole(u)
    z_pred, r = residual_pairs(m, u, nu, dt)
    r_n = (r - m.r_mean) / m.r_std
    noise = part.randn((m.denoiser.steps, *r.shape), gen, dim=1).to(r.device)
    return F.mse_loss(sample_teacher(m.denoiser, z_pred, nu, dt, noise), r_n)


def consistency_loss(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor, cfg: RunConfig,
                     gen: torch.Generator, part: Part | None = None) -> Tensor:
    """Student (1-2 calls) vs the frozen teacher (first prediction + K refinements) from the same noise."""
    part = part or whole(u)
    z_pred, _ = residual_pairs(m, u, nu, dt)
    noise = part.randn((m.denoiser.steps, *z_pred.shape), gen, dim=1).to(z_pred.device)
    with torch.no_grad():
        target = sample_teacher(m.denoiser, z_pred, nu, dt, noise)
    student = sample_student(m.student, z_pred, nu, dt, noise, cfg.model.consistency.steps)
    return F.mse_loss(student, target)


STAGE_LOSS = {
    "codec": codec_loss,
    "operator": operator_loss,
    "diffusion_residual": diffusion_loss,
    "consistency_distill": consistency_loss,
}


# validation (early stopping, best weights): the training loss, except for the corrector
STAGE_VAL_LOSS = {**STAGE_LOSS, "diffusion_residual": diffusion_val_loss}


def stage_horizon(stage: str, cfg: RunConfig) -> int:
    return {"codec": 0, "operator": cfg.stages.operator.unroll}.get(stage, 1)


@torch.no_grad()
def fit_residual_stats(m: Surrogate, u: Tensor, nu: Tensor, dt: Tensor) -> None:
    """Per-channel mean/std of the operator's residual on training pairs: the diffusion's unit scale."""
    _, r = residual_pairs(m, u, nu, dt)
    flat = r.reshape(-1, r.shape[-1])
    m.r_mean.copy_(flat.mean(0))
    m.r_std.copy_(flat.std(0).clamp_min(1e-6))


@torch.no_grad()
def fit_increment_scale(m: Surrogate, u: Tensor, nu: Tensor) -> None:
    """Per-channel RMS of the true one-step latent change on training pairs u (B, 2, nx)."""
    dz = m.encode(u[:, 1], nu) - m.encode(u[:, 0], nu)
    m.operator.dz_scale.copy_(dz.pow(2).mean(dim=(0, 1)).sqrt().clamp_min(1e-6))
