"""Random initial conditions for 1D Burgers, two families.

"offset" (usim's own, on the unit coordinate [0, 1) whatever the domain's length): per sample: two wavenumbers drawn from 1..4 (a repeated draw doubles that wavenumber, as in PDEBench's
one-hot sum), amplitudes U(0, 1), phases U(0, 2pi); then |u| with probability 0.1, a random sign, a tanh
window on [xL, xR] (xL ~ U(0.1, 0.45), xR ~ U(0.55, 0.9), width 0.01) with probability 0.5, and a random
mean offset U(-0.5, 0.5). Unlike PDEBench, the wavenumbers use the exact period 1, so u0 is periodic.

"pdebench" (PDEBench's `init_multi`, on the physical cell centres, (-1, 1) at length 2): the same draws, but a
wavenumber not picked is 0, so its term amp * sin(phase) is a constant: the random mean comes from those (no
offset); the tanh window's edges are absolute x positions (xL in (0.1, 0.45), xR in (0.55, 0.9)), as PDEBench
draws them on its (-1, 1). The wavenumbers use the exact period (PDEBench divides by x[-1] - x[0]).
"""

from __future__ import annotations

import numpy as np

K_TOT = 4
N_MODES = 2
WINDOW_WIDTH = 0.01
MAX_OFFSET = 0.5


def grid(nx: int) -> np.ndarray:
    """Cell centres of [0, 1), PDEBench's x-coordinate."""
    return (np.arange(nx) + 0.5) / nx


FAMILIES = ("offset", "pdebench")


def sample_initial(n: int, nx: int, seed: int, start: int = 0, family: str = "offset",
                   length: float = 1.0) -> np.ndarray:
    """(n, nx) float64 initial conditions of rows start .. start+n-1. Each row has its own random stream
    (seed, row), so a row is the same whatever n, start or nx (the same function on another grid)."""
    if family not in FAMILIES:
        raise ValueError(f"initial-condition family {family!r}: allowed {', '.join(FAMILIES)}")
    x = grid(nx)
    out = np.empty((n, nx))
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        out[i] = _one(rng, x) if family == "offset" else _pdebench(rng, length * x - length / 2, length)
    return out


def _one(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    return _perturbed(rng, _sines(rng, x, 1.0, unpicked=False), x) + rng.uniform(-MAX_OFFSET, MAX_OFFSET)


def _pdebench(rng: np.random.Generator, x: np.ndarray, length: float) -> np.ndarray:
    return _perturbed(rng, _sines(rng, x, length, unpicked=True), x)


def _sines(rng: np.random.Generator, x: np.ndarray, length: float, unpicked: bool) -> np.ndarray:
    """The sum of sines; a wavenumber not picked is 0, its term a constant kept only if `unpicked`."""
    picks = rng.integers(1, K_TOT + 1, size=N_MODES)
    counts = np.bincount(picks, minlength=K_TOT + 1)[1:]
    k = 2 * np.pi * np.arange(1, K_TOT + 1) * counts / length
    amp = rng.uniform(0, 1, K_TOT)
    phase = rng.uniform(0, 2 * np.pi, K_TOT)
    keep = np.ones(K_TOT) if unpicked else (counts > 0)
    return (amp[:, None] * np.sin(k[:, None] * x[None, :] + phase[:, None]) * keep[:, None]).sum(0)


def _perturbed(rng: np.random.Generator, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|u| with probability 0.1, a random sign, the tanh window with probability 0.5."""
    if rng.uniform() < 0.1:
        u = np.abs(u)
    u *= rng.choice([-1.0, 1.0])
    if rng.uniform() < 0.5:
        xl, xr = rng.uniform(0.1, 0.45), rng.uniform(0.55, 0.9)
        u *= 0.5 * (np.tanh((x - xl) / WINDOW_WIDTH) - np.tanh((x - xr) / WINDOW_WIDTH))
    return u
