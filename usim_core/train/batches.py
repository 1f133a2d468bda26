"""Window batches straight from a data Split: (trajectory, start) indices gathered per batch, so no
windowed copy of the data is ever materialised. Fields stay physical; the Surrogate normalises."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Windows:
    u: Tensor        # (n, nt, nx) physical
    nu: Tensor       # (n,)
    dt: float
    horizon: int     # frames per window - 1 (0 = single frames)
    index: Tensor    # (N, 2) trajectory, start

    def __len__(self) -> int:
        return self.index.shape[0]

    def batch(self, rows: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor]:
        """(u (B, horizon+1, nx), nu (B,), dt (B,)) on device."""
        traj, start = self.index[rows, 0], self.index[rows, 1]
        frames = start[:, None] + torch.arange(self.horizon + 1)
        u = self.u[traj[:, None], frames]
        nu = self.nu[traj]
        return u.to(device), nu.to(device), torch.full_like(nu, self.dt).to(device)


def windows(split, horizon: int, dt: float, initial_repeat: int = 1, initial_span: int = 1) -> Windows:
    """Every window of `horizon` steps in the split; those starting in the first `initial_span` frames listed
    `initial_repeat` times (so drawn that many times as often)."""
    u = torch.from_numpy(np.ascontiguousarray(split.u, dtype=np.float32))
    n, nt, _ = u.shape
    if nt <= horizon:
        raise ValueError(f"trajectories have {nt} frames; a window of {horizon + 1} does not fit")
    traj, start = torch.meshgrid(torch.arange(n), torch.arange(nt - horizon), indexing="ij")
    index = torch.stack([traj.reshape(-1), start.reshape(-1)], dim=1)
    if initial_repeat > 1:
        index = torch.cat([index, index[index[:, 1] < initial_span].repeat(initial_repeat - 1, 1)])
    nu = torch.from_numpy(np.asarray(split.nu, dtype=np.float32))
    return Windows(u, nu, float(dt), horizon, index)
