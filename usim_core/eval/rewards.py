"""Physics reward for Burgers candidates (no ground truth): mass conserved, energy non-increasing, small
PDE residual. Higher is better; every term is normalised by the trajectory's own initial scale U."""

from __future__ import annotations

from torch import Tensor

from usim_core.config import RewardWeights
from usim_core.eval.metrics import burgers_residual, energy, mass, scale


def reward_terms(prev: Tensor, nxt: Tensor, u0: Tensor, nu: Tensor, dt: Tensor | float,
                 length: float = 1.0) -> dict[str, Tensor]:
    """Penalties (B,) of one step prev -> nxt, each field (B, nx), on a domain of this length."""
    u_scale = scale(u0)
    r = burgers_residual(prev, nxt, dt if isinstance(dt, float) else dt.reshape(-1, 1), nu, length)
    return {
        "mass": (mass(nxt) - mass(u0)).abs() / u_scale,
        "energy": (energy(nxt) - energy(prev)).clamp_min(0) / u_scale**2,
        "residual": r.pow(2).mean(-1).sqrt() / (u_scale**2 / length),
    }


def physics_reward(prev: Tensor, nxt: Tensor, u0: Tensor, nu: Tensor, dt: Tensor | float,
                   weights: RewardWeights, length: float = 1.0) -> Tensor:
    terms = reward_terms(prev, nxt, u0, nu, dt, length)
    return -(weights.mass * terms["mass"] + weights.energy * terms["energy"]
             + weights.residual * terms["residual"])
