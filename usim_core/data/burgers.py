"""1D viscous Burgers u_t + (u^2/2)_x = (nu/pi) u_xx on a periodic domain of length L (default 1), batched
(numpy only). A domain of length L is solved as the unit domain with nu / L to the times t / L (x = L x',
t = L t' leave the equation unchanged but for the viscosity), which is exact.

Two schemes, chosen per call by the cell Peclet number Pe = max|u0| dx / (nu/pi):
- "spectral" (Pe <= PE_SPECTRAL, the viscous shock is resolved): dealiased (2/3 rule) Fourier
  pseudo-spectral in space, ETDRK4 in time with Kassam-Trefethen contour-integral coefficients. If the
  grid is up to MAX_AUTO_REFINE times too coarse, it solves on a refined grid and projects back (Fourier
  truncation), which is far cheaper than finite volumes there (e.g. nu = 0.01 at 256 points).
- "fv" (under-resolved shocks): finite volumes, MUSCL (kappa = 1/3) reconstruction with Koren's limiter, Rusanov flux,
  central viscous flux, SSP-RK3. Conservative, so the mean is kept to round-off.
Both step with a fixed dt that divides each output interval exactly; since viscous Burgers obeys a maximum
principle, a CFL bound from max|u0| holds for the whole solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

PE_SPECTRAL = 1.5      # above this the 1024-point viscous shock is not resolved by Fourier modes
CFL_SPECTRAL = 2.5     # dt = CFL * eps / max|u|^2, a fraction of the viscous shock's crossing time
CFL_FV = 0.5      # SSP-RK3 keeps the forward-Euler TVD bound of MUSCL-Koren, 1 / (1 + 2/2)
MAX_AUTO_REFINE = 2
K_FLOOR = 2 * np.pi * 32
CONTOUR_POINTS = 32


@dataclass
class Solution:
    u: np.ndarray   # (B, len(t), nx) float64; u[:, 0] is u0 when t[0] == 0
    method: str     # "spectral" | "fv"
    dt: float       # the largest internal step used
    steps: int      # internal steps taken


def peclet(u0: np.ndarray, nu: float) -> float:
    nx = u0.shape[-1]
    return float(np.max(np.abs(u0)) / nx / (nu / np.pi))


def refinement(u0: np.ndarray, nu: float) -> int:
    """Smallest power-of-two grid refinement that brings Pe under PE_SPECTRAL."""
    r = 1
    while peclet(u0, nu) / r > PE_SPECTRAL:
        r *= 2
    return r


def choose_method(u0: np.ndarray, nu: float) -> str:
    return "spectral" if refinement(u0, nu) <= MAX_AUTO_REFINE else "fv"


def solve(u0: np.ndarray, nu: float, t: np.ndarray, method: str = "auto", cfl: float | None = None,
          length: float = 1.0) -> Solution:
    """Solve from u0 (B, nx) or (nx,) at t = 0 and return the solution at the increasing times t (>= 0), on the
    periodic domain of this length (u0 on its cell centres)."""
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    if nu <= 0:
        raise ValueError(f"nu must be positive, got {nu}")
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if length != 1.0:
        sol = solve(u0, nu / length, t / length, method, cfl)
        return Solution(sol.u, sol.method, sol.dt * length, sol.steps)
    if t.ndim != 1 or t.size == 0 or t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ValueError("t must be a non-empty increasing 1-D array of times >= 0")
    if not np.all(np.isfinite(u0)):
        raise ValueError("u0 contains NaN or Inf")
    refine = 1
    if method == "auto":
        method = choose_method(u0, nu)
        refine = refinement(u0, nu) if method == "spectral" else 1
    if method == "spectral":
        stepper = _Spectral(u0.shape[-1], nu / np.pi, cfl or CFL_SPECTRAL, refine)
    elif method == "fv":
        stepper = _FiniteVolume(u0.shape[-1], nu / np.pi, cfl or CFL_FV)
    else:
        raise ValueError(f"method must be auto, spectral or fv, got {method!r}")
    umax = max(float(np.max(np.abs(u0))), 1e-12)
    state = stepper.to_state(u0)
    out = np.empty((u0.shape[0], t.size, u0.shape[1]))
    now, steps, dt_used = 0.0, 0, 0.0
    for j, target in enumerate(t):
        span = target - now
        if span > 0:
            n = int(np.ceil(span / stepper.dt_max(umax) - 1e-9))
            dt = span / n
            state = stepper.advance(state, dt, n)
            steps += n
            dt_used = max(dt_used, dt)
        now = target
        out[:, j] = u0 if target == 0 else stepper.to_field(state)
    return Solution(out, method, dt_used, steps)


class _Spectral:
    def __init__(self, n_out: int, eps: float, cfl: float, refine: int = 1):
        nx = n_out * refine
        self.n_out, self.nx, self.eps, self.cfl = n_out, nx, eps, cfl
        m = np.arange(nx // 2 + 1)
        m = m[m < nx / 3]                        # 2/3 rule: the state holds only the kept modes
        self.keep = m.size
        self.k = 2 * np.pi * m
        self.ik_half = -0.5j * self.k
        self.lin = -eps * self.k**2
        self._coef: dict[float, tuple[np.ndarray, ...]] = {}

    def dt_max(self, umax: float) -> float:
        # ETDRK4 integrates the stiff viscous modes exactly, so the step follows the shock's time scale
        # (width eps/U crossed at speed U), not the grid's highest wavenumber.
        # K_FLOOR keeps steps small enough for the advection of the initial modes when viscosity is large.
        kmax = self.k[-1]
        return self.cfl / (umax * min(kmax, max(umax / self.eps, K_FLOOR)))

    def _shift(self, m: np.ndarray, n_from: int, n_to: int) -> np.ndarray:
        # Fourier coefficients of samples at cell centres (j + 1/2)/n_from -> those at (i + 1/2)/n_to
        return (n_to / n_from) * np.exp(1j * np.pi * m * (1 / n_to - 1 / n_from))

    def to_state(self, u: np.ndarray) -> np.ndarray:
        if self.nx == self.n_out:
            return sfft.rfft(u, axis=-1)[:, :self.keep]
        coarse = sfft.rfft(u, axis=-1)
        coarse[:, -1] = 0.0   # the input's Nyquist mode has no unique phase
        m = np.arange(coarse.shape[-1])
        v = np.zeros(coarse.shape[:-1] + (self.keep,), dtype=complex)
        v[:, :m.size] = coarse * self._shift(m, self.n_out, self.nx)
        return v

    def to_field(self, v: np.ndarray) -> np.ndarray:
        if self.nx == self.n_out:
            return sfft.irfft(v, n=self.nx, axis=-1)
        m = np.arange(self.n_out // 2 + 1)
        coarse = v[:, :m.size] * self._shift(m, self.nx, self.n_out)
        coarse[:, -1] = coarse[:, -1].real
        return sfft.irfft(coarse, n=self.n_out, axis=-1)

    def _n(self, v: np.ndarray) -> np.ndarray:
        u = sfft.irfft(v, n=self.nx, axis=-1)   # zero-padded from the kept modes
        return self.ik_half * sfft.rfft(u * u, axis=-1)[:, :self.keep]

    def _coefficients(self, h: float) -> tuple[np.ndarray, ...]:
        if h not in self._coef:
            lh = h * self.lin
            r = np.exp(1j * np.pi * (np.arange(1, CONTOUR_POINTS + 1) - 0.5) / CONTOUR_POINTS)
            lr = lh[:, None] + r[None, :]
            e = np.exp(lr)
            q = h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
            f1 = h * np.real(np.mean((-4 - lr + e * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
            f2 = h * np.real(np.mean((2 + lr + e * (-2 + lr)) / lr**3, axis=1))
            f3 = h * np.real(np.mean((-4 - 3 * lr - lr**2 + e * (4 - lr)) / lr**3, axis=1))
            self._coef[h] = (np.exp(lh), np.exp(lh / 2), q, f1, f2, f3)
        return self._coef[h]

    def advance(self, v: np.ndarray, h: float, n: int) -> np.ndarray:
        e, e2, q, f1, f2, f3 = self._coefficients(h)
        for _ in range(n):
            nv = self._n(v)
            a = e2 * v + q * nv
            na = self._n(a)
            b = e2 * v + q * na
            nb = self._n(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = self._n(c)
            v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        return v


class _FiniteVolume:
    def __init__(self, nx: int, eps: float, cfl: float):
        self.nx, self.eps, self.cfl = nx, eps, cfl
        self.dx = 1.0 / nx

    def dt_max(self, umax: float) -> float:
        return self.cfl * min(self.dx / umax, 0.5 * self.dx**2 / self.eps)

    def to_state(self, u: np.ndarray) -> np.ndarray:
        return u.copy()

    def to_field(self, u: np.ndarray) -> np.ndarray:
        return u.copy()

    def _rhs(self, u: np.ndarray) -> np.ndarray:
        dr = np.roll(u, -1, axis=-1) - u           # u_{i+1} - u_i
        dl = np.roll(dr, 1, axis=-1)               # u_i - u_{i-1}
        # MUSCL kappa = 1/3 (third order where smooth) with Koren's limiter: one-sided slopes per face
        up = _minmod3(2 * dl, (dl + 2 * dr) / 3, 2 * dr)     # towards the right face
        dn = _minmod3(2 * dl, (2 * dl + dr) / 3, 2 * dr)     # towards the left face
        ul = u + 0.5 * up                                      # left state at face i+1/2
        ur = np.roll(u - 0.5 * dn, -1, axis=-1)                # right state at face i+1/2
        a = np.maximum(np.abs(ul), np.abs(ur))
        flux = 0.25 * (ul * ul + ur * ur) - 0.5 * a * (ur - ul) - self.eps * dr / self.dx
        return -(flux - np.roll(flux, 1, axis=-1)) / self.dx

    def advance(self, u: np.ndarray, h: float, n: int) -> np.ndarray:
        for _ in range(n):
            u1 = u + h * self._rhs(u)
            u2 = 0.75 * u + 0.25 * (u1 + h * self._rhs(u1))
            u = u / 3 + 2 / 3 * (u2 + h * self._rhs(u2))
        return u


def project(u_fine: np.ndarray, n: int) -> np.ndarray:
    """Fourier-truncate a fine cell-centred periodic field to n cell centres (exact for band-limited fields);
    how accuracy is judged against a finer solution."""
    nf = u_fine.shape[-1]
    m = np.arange(n // 2 + 1)
    c = np.fft.rfft(u_fine, axis=-1)[..., : m.size] * (n / nf) * np.exp(1j * np.pi * m * (1 / n - 1 / nf))
    c[..., -1] = c[..., -1].real
    return np.fft.irfft(c, n=n, axis=-1)


def _minmod3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The argument smallest in magnitude if all three share a sign, else 0."""
    sg = np.sign(a)
    return sg * np.maximum(0.0, np.minimum(np.minimum(sg * a, sg * b), sg * c))
