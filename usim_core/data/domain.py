"""The physical domain a data set lives on: period length L, grid spacing dx = L / nx and frame spacing dt.

It travels from the file into every physical computation (PDE residual, TTC reward) and into the checkpoint.
Data on different domains are different problems at the same nu: they are never mixed or compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usim_core.config import ConfigError


@dataclass(frozen=True)
class Domain:
    length: float   # period of x: 1 for generated data, 2 for PDEBench's published files (x in (-1, 1))
    nx: int         # grid points (after striding)
    dt: float       # time between stored frames (after striding)

    @property
    def dx(self) -> float:
        return self.length / self.nx

    def to_dict(self) -> dict[str, float]:
        return {"length": self.length, "nx": self.nx, "dx": self.dx, "dt": self.dt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        return cls(float(d["length"]), int(d["nx"]), float(d["dt"]))


def domain_of(bundle: Any) -> Domain:
    """The bundle's domain; bundles built by hand (tests, preflight) without one are on the unit domain."""
    dom = getattr(bundle, "domain", None)
    if dom is not None:
        return dom
    return Domain(float(getattr(bundle, "length", 1.0)), int(bundle.train.u.shape[-1]), float(bundle.dt))


def check_same_domain(a: dict[str, Any] | Domain | None, b: Domain, what: str) -> None:
    """Refuse to compare a model fitted on domain `a` with data on domain `b` (length or dt differ)."""
    if a is None:
        return
    a = a if isinstance(a, Domain) else Domain.from_dict(a)
    if abs(a.length - b.length) > 1e-9 * b.length or abs(a.dt - b.dt) > 1e-6 * b.dt:
        raise ConfigError(f"{what}: fitted on a domain of length {a.length:g} with dt {a.dt:g}, but the data has "
                          f"length {b.length:g} and dt {b.dt:g}; these are different problems at the same nu")
