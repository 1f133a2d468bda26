"""Each stochastic stage proves itself: diagnostics of the diffusion corrector and its consistency student on
teacher-forced pairs of the evaluated split, in the latent space where they act.

On pairs (z_t, z_{t+1}) = encode(u_t, u_{t+1}) with the operator's prediction z_pred = step(z_t), the true
residual is r = z_{t+1} - z_pred. Reported (flat keys):
  teacher_r2_first        R^2 of the teacher's first (k = 0, MSE) prediction against r
  teacher_r2_sample       R^2 of a teacher sample against r (what a corrected step gains in the latent)
  diffusion_corr          correlation of teacher samples with r (0 = the corrector learned nothing)
  consistency_corr        the same for the student's samples
  student_teacher_err     mean (student - teacher)^2 / var(teacher), same noise
  spread_teacher/student  RMS difference of two samples from different noise, / sqrt(2) (per-entry std)
  spread_ratio            spread_student / spread_teacher (1 = the student keeps the teacher's spread)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from usim_core.eval.schema import clean
from usim_core.models.diffusion import sample_student, sample_teacher

MAX_PAIRS = 512


def _r2(pred: Tensor, true: Tensor) -> float | None:
    sst = (true - true.mean(0)).pow(2).sum()
    return clean(float(1 - (pred - true).pow(2).sum() / sst)) if sst > 0 else None


def _corr(a: Tensor, b: Tensor) -> float | None:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    den = a.norm() * b.norm()
    return clean(float((a @ b) / den)) if den > 0 else None


def _spread(a: Tensor, b: Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / 2**0.5)


@torch.no_grad()
def corrector_diagnostics(model: Any, u: Tensor, nu: Tensor, dt: float, stage: str, seed: int) -> dict[str, Any]:
    """The flat diagnostics above for a Surrogate whose checkpoint reached `stage`; {} before the corrector."""
    if stage not in ("diffusion_residual", "consistency_distill"):
        return {}
    b, t, nx = u.shape
    gen = torch.Generator(device=u.device).manual_seed(seed)
    src, dst = u[:, :-1].reshape(-1, nx), u[:, 1:].reshape(-1, nx)
    pick = torch.randperm(src.shape[0], generator=gen, device=u.device)[:MAX_PAIRS]
    src, dst, nus = src[pick], dst[pick], nu.repeat_interleave(t - 1)[pick]
    dts = torch.full_like(nus, dt)
    z_pred = model.step(model.encode(src, nus), nus, dts, mean=src.double().mean(-1))
    r = (model.encode(dst, nus) - z_pred).double()
    scale = lambda x: x.double() * model.r_std.double() + model.r_mean.double()  # noqa: E731
    d = model.denoiser
    noise = [torch.randn((d.steps, *z_pred.shape), generator=gen, device=u.device) for _ in range(2)]
    teacher = [scale(sample_teacher(d, z_pred, nus, dts, n)) for n in noise]
    out: dict[str, Any] = {
        "pairs": int(src.shape[0]),
        "teacher_r2_first": _r2(scale(d.first(z_pred, nus, dts)), r),
        "teacher_r2_sample": _r2(teacher[0], r),
        "diffusion_corr": _corr(teacher[0], r),
        "spread_teacher": _spread(*teacher),
    }
    if stage == "consistency_distill":
        steps = model.consistency_steps
        student = [scale(sample_student(model.student, z_pred, nus, dts, n, steps)) for n in noise]
        var_t = float(teacher[0].var())
        out.update({
            "consistency_corr": _corr(student[0], r),
            "student_teacher_err": clean(float((student[0] - teacher[0]).pow(2).mean()) / var_t) if var_t else None,
            "spread_student": _spread(*student),
        })
        out["spread_ratio"] = clean(out["spread_student"] / out["spread_teacher"]) if out["spread_teacher"] else None
    return out
