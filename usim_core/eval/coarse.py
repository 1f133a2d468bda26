"""The reference a surrogate must beat: the project's own Burgers solver on a coarser grid.

For grids nx_eval / 2^j (down to MIN_POINTS) the test trajectories' initial states are Fourier-projected onto
the coarse grid, solved there (`usim_core.data.burgers.solve`, its automatic scheme choice) and interpolated
back (Fourier zero-padding) to the evaluation grid. Cost is process CPU seconds per trajectory
(time.process_time, never wall-clock). The reported point is the finest grid whose cost per trajectory is at
most the model's (the coarsest grid when even that costs more), with every measured grid listed beside it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from usim_core.data.burgers import project, solve
from usim_core.eval import metrics as M
from usim_core.eval.schema import clean

MIN_POINTS = 16


def upsample(u: np.ndarray, n: int) -> np.ndarray:
    """Fourier interpolation of cell-centred periodic samples (..., nc) onto n >= nc cell centres."""
    nc = u.shape[-1]
    if nc == n:
        return u
    m = np.arange(nc // 2 + 1)
    c = np.fft.rfft(u, axis=-1) * (n / nc) * np.exp(1j * np.pi * m * (1 / n - 1 / nc))
    c[..., -1] = 0.0  # the coarse Nyquist mode has no unique phase
    out = np.zeros(u.shape[:-1] + (n // 2 + 1,), dtype=complex)
    out[..., : m.size] = c
    return np.fft.irfft(out, n=n, axis=-1)


def solve_coarse(u0: np.ndarray, nu: np.ndarray, t: np.ndarray, nx: int, length: float) -> tuple[np.ndarray, float]:
    """(frames (B, len(t), nx_eval) at the evaluation grid, CPU seconds) of solves on an nx-point grid."""
    out = np.empty((u0.shape[0], t.size, u0.shape[-1]))
    start = time.process_time()
    for value in np.unique(nu):
        rows = np.flatnonzero(nu == value)
        sol = solve(project(u0[rows], nx), float(value), t, length=length)
        out[rows] = upsample(sol.u, u0.shape[-1])
    return out, time.process_time() - start


def coarse_reference(u: torch.Tensor, nu: torch.Tensor, dt: float, length: float,
                     model_cpu_s: float | None) -> dict[str, Any]:
    """The coarse-solver point beside the model: u (B, T+1, nx) true frames; model_cpu_s per trajectory."""
    true = u.double().cpu()
    u0 = true[:, 0].numpy()
    nus = nu.double().cpu().numpy()
    t = dt * np.arange(true.shape[1])
    nx_eval = true.shape[-1]
    grids = []
    nx = nx_eval
    while nx >= MIN_POINTS:
        grids.append(nx)
        if nx % 2:
            break
        nx //= 2
    measured = []
    for g in sorted(grids):
        frames, cpu = solve_coarse(u0, nus, t, g, length)
        pred = torch.from_numpy(frames[:, 1:])
        per_frame = M.nrmse_per_frame(pred, true[:, 1:], true[:, 0])
        measured.append({"nx": g, "cpu_s_per_traj": cpu / len(u0),
                         "nrmse_frame": clean(float(per_frame.mean())),
                         "nrmse_rollout": clean(float(M.nrmse(pred, true[:, 1:], true[:, 0]).mean()))})
    affordable = [m for m in measured if model_cpu_s is not None and m["cpu_s_per_traj"] <= model_cpu_s]
    point = affordable[-1] if affordable else measured[0]
    return {**point, "matched_to_model": bool(affordable), "grids": measured}
