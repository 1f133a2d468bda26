"""Physical-space error and physics metrics, computed per trajectory and then averaged.

Fields are tensors (B, T, nx) of PHYSICAL values on a uniform periodic grid of a domain of length L
(dx = L / nx; L = 1 for generated data, 2 for PDEBench's published files); `length` is passed where it matters.
`pred` and `true` hold the predicted frames only (not the given initial state); the physics metrics that
need the initial state take it as `u0` (B, nx). Definitions are in docs/eval.md; the code is the contract.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BANDS: dict[str, tuple[int, int | None]] = {"low": (0, 4), "mid": (4, 12), "high": (12, None)}  # None = N/2
NORM_FLOOR = 1e-2  # nRMSE denominators never drop below 1% of the initial state's norm
EPS = 1e-8


def _rms(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.pow(2).mean(dim=dims).sqrt()


def norm_floor(u0: Tensor) -> Tensor:
    """(B,) floor for nRMSE denominators: a decayed true field must not blow the ratio up."""
    return (NORM_FLOOR * _rms(u0, (-1,))).clamp_min(EPS)


def nrmse_per_frame(pred: Tensor, true: Tensor, u0: Tensor) -> Tensor:
    """(B, T): ||pred_t - true_t||_2 / max(||true_t||_2, 1% ||u0||_2) per trajectory and frame."""
    num = _rms(pred - true, (-1,))
    den = torch.maximum(_rms(true, (-1,)), norm_floor(u0)[:, None])
    return num / den


def vrmse_per_frame(pred: Tensor, true: Tensor, u0: Tensor) -> Tensor:
    """(B, T): ||pred_t - true_t||_2 / max(std_x(true_t), 1% std_x(u0)) (The Well's VRMSE): the error against
    the field's deviation from its mean, which a conserved mean cannot flatter; predicting the mean scores 1."""
    num = _rms(pred - true, (-1,))
    den = torch.maximum(true.std(-1, unbiased=False), (NORM_FLOOR * u0.std(-1, unbiased=False)).clamp_min(EPS)[:, None])
    return num / den


def nrmse(pred: Tensor, true: Tensor, u0: Tensor) -> Tensor:
    """(B,): space-time nRMSE over all frames, with the same floor."""
    num = _rms(pred - true, (-2, -1))
    den = torch.maximum(_rms(true, (-2, -1)), norm_floor(u0))
    return num / den


def rmse(pred: Tensor, true: Tensor) -> Tensor:
    return _rms(pred - true, (-2, -1))


def max_err(pred: Tensor, true: Tensor) -> Tensor:
    return (pred - true).abs().flatten(1).amax(dim=1)


def crmse(pred: Tensor, true: Tensor) -> Tensor:
    """RMSE (over time) of the error of the spatial mean, i.e. of the conserved quantity."""
    return _rms(pred.mean(-1) - true.mean(-1), (-1,))


def brmse(pred: Tensor, true: Tensor, cells: int = 1) -> Tensor:
    """RMSE on the first and last `cells` grid cells (PDEBench's boundary error)."""
    n = pred.shape[-1]
    idx = torch.cat([torch.arange(cells), torch.arange(n - cells, n)]).to(pred.device)
    return _rms((pred - true)[..., idx], (-2, -1))


def error_power(pred: Tensor, true: Tensor) -> Tensor:
    """Parseval's split of mean_x(err^2) over the rfft modes (..., nx // 2 + 1): w_k |e_k|^2 with
    e_k = rfft(err)/nx and w_k = 1 for k = 0 and N/2, else 2 (summed over k it is mean_x(err^2))."""
    nx = pred.shape[-1]
    power = (torch.fft.rfft(pred - true, dim=-1) / nx).abs().pow(2)
    w = torch.full((power.shape[-1],), 2.0, dtype=power.dtype, device=power.device)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return power * w


def frmse(pred: Tensor, true: Tensor) -> dict[str, Tensor]:
    """Band-limited RMSE by Parseval (`error_power`): band^2 = mean_t sum_{k in band} w_k |e_k|^2, so
    low^2 + mid^2 + high^2 = rmse^2."""
    power = error_power(pred, true)
    out = {}
    for name, (lo, hi) in BANDS.items():
        hi = power.shape[-1] if hi is None else min(hi, power.shape[-1])
        out[name] = power[..., lo:hi].sum(-1).mean(-1).sqrt()
    return out


def mass(u: Tensor) -> Tensor:
    """Spatial mean of u (the integral over the domain divided by its length): conserved by Burgers."""
    return u.mean(-1)


def energy(u: Tensor) -> Tensor:
    """Spatial mean of u^2 (the energy per unit length): never increases under viscous Burgers."""
    return u.pow(2).mean(-1)


def scale(u0: Tensor) -> Tensor:
    """(B,) reference amplitude U = RMS of the initial state (floored)."""
    return _rms(u0, (-1,)).clamp_min(EPS)


def mass_drift(pred: Tensor, u0: Tensor) -> Tensor:
    """max_t |int u_t - int u_0| / U: the mass must stay constant."""
    return (mass(pred) - mass(u0)[:, None]).abs().amax(-1) / scale(u0)


def energy_violation(pred: Tensor, u0: Tensor) -> Tensor:
    """sum_t max(0, E_t - E_{t-1}) / E_0 with E = int u^2: the energy must not increase."""
    e = torch.cat([energy(u0)[:, None], energy(pred)], dim=1)
    return (e[:, 1:] - e[:, :-1]).clamp_min(0).sum(-1) / (scale(u0) ** 2)


def burgers_residual(prev: Tensor, nxt: Tensor, dt: float | Tensor, nu: Tensor, length: float = 1.0) -> Tensor:
    """Pointwise residual of u_t + (u^2/2)_x = (nu/pi) u_xx between consecutive frames (..., nx) on the
    periodic domain of this length, in exponential-integrator form (exact for the viscous part, so a coarse
    dt does not make the true solution look wrong): in Fourier space, with L_k = -(nu/pi) k^2,
        r_k = (u_next,k - exp(L_k dt) u_prev,k) / dt - phi1(L_k dt) N_k(mid),  phi1(z) = (e^z - 1) / z,
    N = -(u^2/2)_x at the midpoint state (prev + nxt)/2, derivatives spectral (k = 2 pi m / length)."""
    nx = prev.shape[-1]
    k = 2 * math.pi * torch.fft.rfftfreq(nx, d=length / nx, dtype=prev.dtype, device=prev.device)
    nu = torch.as_tensor(nu, dtype=prev.dtype, device=prev.device)
    nu = nu.reshape(nu.shape + (1,) * (prev.dim() - nu.dim()))
    dt_t = torch.as_tensor(dt, dtype=prev.dtype, device=prev.device)
    z = -(nu / math.pi) * k**2 * dt_t
    small = z.abs() < 1e-8
    phi1 = torch.where(small, torch.ones_like(z), torch.expm1(z) / torch.where(small, torch.ones_like(z), z))
    mid = 0.5 * (prev + nxt)
    n_hat = -1j * k * torch.fft.rfft(0.5 * mid.pow(2), dim=-1)
    r_hat = (torch.fft.rfft(nxt, dim=-1) - torch.exp(z) * torch.fft.rfft(prev, dim=-1)) / dt_t - phi1 * n_hat
    return torch.fft.irfft(r_hat, n=nx, dim=-1)


def pde_residual(pred: Tensor, u0: Tensor, dt: float, nu: Tensor, length: float = 1.0) -> Tensor:
    """(B,): RMS over space-time of the Burgers residual of the predicted trajectory (u0 then pred),
    normalised by the convective scale U^2/L with U = RMS(u0) and L the domain length."""
    frames = torch.cat([u0[:, None], pred], dim=1)
    r = burgers_residual(frames[:, :-1], frames[:, 1:], dt, nu[:, None], length)
    return _rms(r, (-2, -1)) / (scale(u0) ** 2 / length)


def trajectory_metrics(pred: Tensor, true: Tensor, u0: Tensor, dt: float, nu: Tensor,
                       length: float = 1.0) -> dict[str, Tensor]:
    """All per-trajectory metrics (B,) of a rollout; keys match the eval JSON (without `_1step`)."""
    bands = frmse(pred, true)
    return {
        "nrmse_frame": nrmse_per_frame(pred, true, u0).mean(-1),
        "nrmse_rollout": nrmse(pred, true, u0),
        "rmse": rmse(pred, true),
        "max_err": max_err(pred, true),
        "crmse": crmse(pred, true),
        "brmse": brmse(pred, true),
        "frmse_low": bands["low"],
        "frmse_mid": bands["mid"],
        "frmse_high": bands["high"],
        "mass_drift": mass_drift(pred, u0),
        "energy_violation": energy_violation(pred, u0),
        "pde_residual": pde_residual(pred, u0, dt, nu, length),
    }


def average(per_traj: dict[str, Tensor]) -> dict[str, float]:
    return {k: float(v.double().mean()) for k, v in per_traj.items()}
