from __future__ import annotations

import numpy as np
import pytest

from usim_core.data.burgers import choose_method, project, solve
from usim_core.data.initial import grid, sample_initial


def nrmse(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - ref) ** 2).sum(axis=(-2, -1)) / (ref**2).sum(axis=(-2, -1)))


@pytest.mark.parametrize("method,nu,nx", [("spectral", 0.02, 128), ("fv", 0.002, 128)])
def test_mean_is_conserved_to_round_off_and_energy_never_increases(method: str, nu: float, nx: int) -> None:
    u0 = sample_initial(4, nx, seed=3)
    sol = solve(u0, nu, np.linspace(0, 1.0, 21), method=method)
    assert sol.method == method
    mean = sol.u.mean(axis=-1)
    assert np.abs(mean - mean[:, :1]).max() < 1e-13 * (1 + np.abs(u0).max())
    energy = (sol.u**2).mean(axis=-1)
    assert np.diff(energy, axis=1).max() <= 1e-13
    assert energy[:, -1].max() < energy[:, 0].min() or np.all(energy[:, -1] < energy[:, 0])  # it dissipates


def test_spectral_agrees_with_an_eight_times_finer_solution() -> None:
    t = np.linspace(0, 0.5, 6)
    u0 = sample_initial(3, 1024, seed=1)
    coarse = solve(project(u0, 128), 0.05, t)   # the same (band-limited) initial condition on both grids
    fine = solve(u0, 0.05, t)
    assert coarse.method == fine.method == "spectral"
    assert nrmse(coarse.u, project(fine.u, 128)).max() < 1e-5


def test_finite_volumes_capture_shocks_close_to_a_resolved_solution() -> None:
    t = np.linspace(0, 0.4, 5)
    u0 = sample_initial(2, 2048, seed=2)
    coarse = solve(project(u0, 256), 0.003, t, method="fv")
    fine = solve(u0, 0.003, t, method="spectral")
    err = nrmse(coarse.u, project(fine.u, 256))
    assert err.max() < 5e-2   # the shock is 2 cells wide here: FV smears it, but stays close
    assert np.abs(coarse.u).max() <= np.abs(coarse.u[:, 0]).max() + 1e-12   # no overshoot at shocks (TVD)


def test_the_scheme_is_chosen_by_resolution_and_named() -> None:
    assert choose_method(sample_initial(8, 1024, 0), 0.01) == "spectral"
    assert choose_method(sample_initial(8, 1024, 0), 0.001) == "fv"
    assert choose_method(sample_initial(8, 256, 0), 0.01) == "spectral"   # solved on a 2x grid


def test_output_times_are_hit_exactly_and_t0_returns_u0() -> None:
    u0 = sample_initial(2, 64, 0)
    sol = solve(u0, 0.1, np.array([0.0, 0.013, 0.5]))
    assert sol.u.shape == (2, 3, 64)
    np.testing.assert_allclose(sol.u[:, 0], u0, atol=1e-12)
    again = solve(sol.u[:, 1], 0.1, np.array([0.5 - 0.013]))
    np.testing.assert_allclose(again.u[:, 0], sol.u[:, 2], atol=1e-6)   # other steps, same times


@pytest.mark.parametrize("kwargs,message", [
    ({"nu": 0.0}, "nu must be positive"),
    ({"t": np.array([0.2, 0.1])}, "increasing"),
    ({"method": "rk2"}, "auto, spectral or fv"),
])
def test_solver_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"u0": sample_initial(1, 32, 0), "nu": 0.1, "t": np.array([0.0, 0.1]), **kwargs}
    with pytest.raises(ValueError, match=message):
        solve(**args)
    with pytest.raises(ValueError, match="NaN"):
        solve(np.full((1, 32), np.nan), 0.1, np.array([0.1]))


def test_initial_conditions_are_reproducible_by_seed_and_row() -> None:
    a = sample_initial(6, 128, seed=7)
    np.testing.assert_array_equal(a, sample_initial(6, 128, seed=7))
    assert not np.allclose(a, sample_initial(6, 128, seed=8))
    np.testing.assert_array_equal(a[4:], sample_initial(2, 128, seed=7, start=4))   # rows independent of n
    assert len({round(float(r.std()), 6) for r in a}) == 6                          # rows differ
    assert grid(4).tolist() == [0.125, 0.375, 0.625, 0.875]


def test_initial_conditions_are_periodic_with_a_random_mean() -> None:
    u = sample_initial(64, 512, seed=0)
    # smooth across the periodic seam: the jump there is like any interior jump
    seam = np.abs(u[:, 0] - u[:, -1])
    interior = np.abs(np.diff(u, axis=1)).max(axis=1)
    assert np.all(seam <= interior + 1e-12)
    assert np.ptp(u.mean(axis=1)) > 0.3
