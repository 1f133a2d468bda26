"""The surrogate's two rollout constraints given to any field stepper (a baseline): u0's spatial mean restored
on every frame and the fluctuation's energy capped at the previous frame's (models/invariants.py). The state it
steps from is the constrained frame, as the surrogate's is, so the constraints act on the whole rollout."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from usim_core.models.invariants import cap_energy, restore_mean


class Constrained:
    conserves_mass = True   # the rollout passes u0's mean to step and decode

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def encode(self, u: Tensor, nu: Tensor) -> Tensor:
        return self.inner.encode(u, nu)

    def decode(self, z: Tensor, mean: Tensor | None = None) -> Tensor:
        u = self.inner.decode(z)
        return u if mean is None else restore_mean(u, mean)

    def step(self, z: Tensor, nu: Tensor, dt: Tensor, mean: Tensor | None = None) -> Tensor:
        prev = self.decode(z, mean)
        nxt = self.decode(self.inner.step(z, nu, dt), mean)
        return self.inner.encode(cap_energy(nxt, prev), nu)

    def sample_residual(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.inner.sample_residual(*args, **kwargs)
