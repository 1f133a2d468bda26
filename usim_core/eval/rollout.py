"""Autoregressive rollouts in latent space, decoded to physical fields, with optional test-time compute.

One loop serves every mode, with and without TTC, so the TTC gain compares like with like:
  operator     z' = step(z)
  diffusion    z' = step(z) + K-step diffusion residual sample
  consistency  z' = step(z) + 1-2 step consistency student sample
TTC (stochastic modes only): per trajectory and step, draw n candidates z', score each by the physics reward
of its decoded frame (plus `lookahead` further operator steps), keep the best for THAT trajectory.
Budget: at most `max_evaluations` reward evaluations per trajectory; a step scores n = min(candidates,
remaining // (1 + lookahead)) candidates, and once fewer than 2 fit it takes one unscored sample.
Compute-matched controls (ttc.select): "mean" keeps the candidates' mean latent, "random" a random candidate;
both draw the same N candidates under the same budget, and count the same evaluations.
A model with `conserves_mass` (the Surrogate) gets u0's spatial mean in `step` and `decode` and restores it
exactly; its frames also never gain energy over the previous frame (models/invariants.py). Baselines (FNO)
and test stand-ins without the flag are rolled out unconstrained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from usim_core.config import TTCConfig
from usim_core.eval.rewards import physics_reward
from usim_core.models.invariants import cap_energy

MODES = ("operator", "diffusion", "consistency")


class Stepper(Protocol):
    """What a rollout needs from a model (the Surrogate, or a stand-in in tests). Fields are physical."""

    def encode(self, u: Tensor, nu: Tensor) -> Tensor: ...
    def decode(self, z: Tensor) -> Tensor: ...
    def step(self, z: Tensor, nu: Tensor, dt: Tensor) -> Tensor: ...
    def sample_residual(self, z_pred: Tensor, nu: Tensor, dt: Tensor, mode: str,
                        generator: torch.Generator | None = None, noise_scale: float = 1.0) -> Tensor:
        """A sample of the operator's latent error: the corrected latent is z_pred + this."""


@dataclass
class TTCStats:
    evaluations: Tensor  # (B,) reward evaluations spent per trajectory
    scored_steps: int = 0  # steps at which candidates were scored
    choices: list[Tensor] = field(default_factory=list)  # (B,) chosen candidate index per scored step


def _conserves(model: Stepper) -> bool:
    return bool(getattr(model, "conserves_mass", False))


def _advance(model: Stepper, z: Tensor, nu: Tensor, dt: Tensor, mode: str, gen: torch.Generator | None,
             noise_scale: float = 1.0, mean: Tensor | None = None) -> Tensor:
    z_pred = model.step(z, nu, dt, mean=mean) if _conserves(model) else model.step(z, nu, dt)
    if mode == "operator":
        return z_pred
    return z_pred + model.sample_residual(z_pred, nu, dt, mode, generator=gen, noise_scale=noise_scale)


def _frame(model: Stepper, z: Tensor, mean: Tensor, prev: Tensor) -> Tensor:
    """The decoded frame; for a conserving model with u0's mass restored and energy capped at prev's."""
    if not _conserves(model):
        return model.decode(z)
    return cap_energy(model.decode(z, mean=mean), prev)


@torch.no_grad()
def rollout(model: Stepper, u0: Tensor, nu: Tensor, dt: Tensor, steps: int, mode: str = "operator",
            ttc: TTCConfig | None = None, generator: torch.Generator | None = None, length: float = 1.0
            ) -> tuple[Tensor, TTCStats]:
    """Predicted frames (B, steps, nx) after u0 (B, nx); nu, dt (B,); `length` of the domain (TTC's PDE
    residual). TTC only applies to stochastic modes."""
    if mode not in MODES:
        raise ValueError(f"unknown rollout mode {mode!r}; allowed: {', '.join(MODES)}")
    if ttc is not None and mode == "operator":
        raise ValueError("TTC needs a stochastic corrector: use mode 'diffusion' or 'consistency'")
    b = u0.shape[0]
    stats = TTCStats(evaluations=torch.zeros(b, dtype=torch.long))
    z = model.encode(u0, nu)
    prev, m0 = u0, u0.double().mean(-1)
    frames = []
    for s in range(steps):
        look = min(ttc.lookahead, steps - s - 1) if ttc else 0
        cost = 1 + look
        remaining = int((ttc.max_evaluations - stats.evaluations).min()) if ttc else 0
        n = min(ttc.candidates, remaining // cost) if ttc else 1
        if n < 2:
            z = _advance(model, z, nu, dt, mode, generator, ttc.noise_scale if ttc else 1.0, m0)
            prev = _frame(model, z, m0, prev)
            frames.append(prev)
            continue
        z, prev, idx = _choose(model, z, prev, u0, nu, dt, mode, generator, ttc, n, look, length)
        stats.evaluations += n * cost
        stats.scored_steps += 1
        stats.choices.append(idx)
        frames.append(prev)
    return torch.stack(frames, dim=1), stats


def _choose(model: Stepper, z: Tensor, prev: Tensor, u0: Tensor, nu: Tensor, dt: Tensor, mode: str,
            gen: torch.Generator | None, ttc: TTCConfig, n: int, look: int, length: float = 1.0
            ) -> tuple[Tensor, Tensor, Tensor]:
    """n candidates per trajectory, scored per trajectory; returns the chosen (z, decoded frame, index)."""
    b = z.shape[0]
    rep = lambda t: t.repeat_interleave(n, dim=0)  # noqa: E731  candidates of trajectory i are rows i*n..i*n+n-1
    nu_r, dt_r, u0_r = rep(nu), rep(dt), rep(u0)
    m_r = u0_r.double().mean(-1)
    cand = _advance(model, rep(z), nu_r, dt_r, mode, gen, ttc.noise_scale, m_r)
    if ttc.select == "mean":  # control: no reward, the candidates' mean
        z_mean = cand.view(b, n, *cand.shape[1:]).mean(1)
        return z_mean, _frame(model, z_mean, m_r[::n], prev), torch.zeros(b, dtype=torch.long, device=z.device)
    if ttc.select == "random":  # control: no reward, a random candidate
        idx = torch.randint(0, n, (b,), generator=gen, device=z.device)
        pick = torch.arange(b, device=z.device) * n + idx
        return cand[pick], _frame(model, cand[pick], m_r[pick], prev), idx
    u_cand = _frame(model, cand, m_r, rep(prev))
    score = physics_reward(rep(prev), u_cand, u0_r, nu_r, dt_r, ttc.weights, length)
    zz, uu = cand, u_cand
    for _ in range(look):  # deterministic operator lookahead: does this candidate stay physical?
        zz = _advance(model, zz, nu_r, dt_r, "operator", None, mean=m_r)
        u_next = _frame(model, zz, m_r, uu)
        score = score + physics_reward(uu, u_next, u0_r, nu_r, dt_r, ttc.weights, length)
        uu = u_next
    idx = score.view(b, n).argmax(dim=1)
    pick = torch.arange(b, device=idx.device) * n + idx
    return cand[pick], u_cand[pick], idx


@torch.no_grad()
def one_step(model: Stepper, u: Tensor, nu: Tensor, dt: Tensor, mode: str = "operator",
             generator: torch.Generator | None = None) -> Tensor:
    """Teacher-forced one-step predictions from every true frame: u (B, T, nx) -> (B, T-1, nx)."""
    b, t, nx = u.shape
    src = u[:, :-1].reshape(-1, nx)
    nu_r, dt_r = nu.repeat_interleave(t - 1), dt.repeat_interleave(t - 1)
    m = src.double().mean(-1)
    z = _advance(model, model.encode(src, nu_r), nu_r, dt_r, mode, generator, mean=m)
    return _frame(model, z, m, src).reshape(b, t - 1, nx)
