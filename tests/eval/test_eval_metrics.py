"""Metrics against hand-computed cases: a known shift, known spectral errors, constant fields, physics terms."""

from __future__ import annotations

import math

import pytest
import torch

from usim_core.eval import metrics as m

NX = 64
X = torch.arange(NX, dtype=torch.float64) / NX


def frames(*rows: torch.Tensor) -> torch.Tensor:
    """(1, T, nx) from T spatial rows."""
    return torch.stack(rows)[None]


def test_known_shift_error_is_two_sin_pi_s_and_lies_in_the_low_band():
    s = 8 / NX  # a shift of 8 cells: the discrete error is exactly the continuous one
    true = frames(torch.sin(2 * math.pi * X))
    pred = frames(torch.sin(2 * math.pi * (X - s)))
    u0 = true[:, 0]
    expected = 2 * math.sin(math.pi * s)  # |sin(a - d) - sin(a)| has RMS sqrt(2)|sin(d/2)|, true RMS 1/sqrt(2)
    assert m.nrmse(pred, true, u0).item() == pytest.approx(expected, rel=1e-9)
    assert m.rmse(pred, true).item() == pytest.approx(expected / math.sqrt(2), rel=1e-9)
    assert m.max_err(pred, true).item() == pytest.approx(expected, rel=1e-3)
    bands = m.frmse(pred, true)
    assert bands["low"].item() == pytest.approx(expected / math.sqrt(2), rel=1e-9)
    assert bands["mid"].item() == pytest.approx(0, abs=1e-12)
    assert bands["high"].item() == pytest.approx(0, abs=1e-12)
    assert m.crmse(pred, true).item() == pytest.approx(0, abs=1e-12)  # a shift keeps the mean
    assert m.mass_drift(pred, u0).item() == pytest.approx(0, abs=1e-12)
    assert m.energy_violation(pred, u0).item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("k, band", [(2, "low"), (5, "mid"), (11, "mid"), (12, "high"), (32, "high")])
def test_a_single_wavenumber_error_lands_in_its_band_only(k: int, band: str):
    amp = 0.3
    true = frames(torch.sin(2 * math.pi * X), torch.cos(2 * math.pi * 3 * X))
    pred = true + amp * torch.cos(2 * math.pi * k * X)
    bands = m.frmse(pred, true)
    # RMS of A cos(2 pi k x) on the grid: A/sqrt(2), except at the Nyquist wavenumber where it is A
    rms = amp if k == NX // 2 else amp / math.sqrt(2)
    for name, value in bands.items():
        assert value.item() == pytest.approx(rms if name == band else 0.0, abs=1e-12), name


def test_band_errors_add_up_to_the_rmse_in_quadrature():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(3, 5, NX, generator=g, dtype=torch.float64)
    pred = true + 0.1 * torch.randn(3, 5, NX, generator=g, dtype=torch.float64)
    bands = m.frmse(pred, true)
    total = sum(v.pow(2) for v in bands.values()).sqrt()
    # per trajectory the bands are mean over time of band power; the RMSE is mean over time of total power
    assert torch.allclose(total, m.rmse(pred, true), rtol=1e-10)


def test_constant_offset_of_a_constant_field():
    c, d = 2.0, 0.5
    true = torch.full((1, 4, NX), c, dtype=torch.float64)
    pred = true + d
    u0 = true[:, 0]
    assert m.nrmse(pred, true, u0).item() == pytest.approx(d / c)
    for fn in (m.rmse, m.max_err, m.crmse, m.brmse):
        assert fn(pred, true).item() == pytest.approx(d)
    bands = m.frmse(pred, true)
    assert (bands["low"].item(), bands["mid"].item(), bands["high"].item()) == pytest.approx((d, 0, 0))
    assert m.mass_drift(pred, u0).item() == pytest.approx(d / c)
    # a constant field solves Burgers exactly, whatever its value; so does the true one
    assert m.pde_residual(true, u0, 0.05, torch.tensor([0.01])).item() == pytest.approx(0, abs=1e-12)


def test_exact_prediction_scores_zero_everywhere():
    true = torch.randn(2, 3, NX, dtype=torch.float64)
    out = m.trajectory_metrics(true.clone(), true, true[:, 0], 0.05, torch.tensor([0.01, 0.01]))
    for key in ("nrmse_rollout", "rmse", "max_err", "crmse", "brmse", "frmse_low", "frmse_mid", "frmse_high"):
        assert out[key].abs().max().item() == 0.0, key


def test_decayed_true_field_does_not_blow_the_ratio_up():
    u0 = torch.sin(2 * math.pi * X)[None]
    true = frames(1e-6 * torch.sin(2 * math.pi * X))  # the solution has all but vanished
    pred = torch.zeros_like(true)
    # unguarded the ratio would be 1.0 from a 1e-6 error; guarded it is measured against 1% of ||u0||
    assert m.nrmse_per_frame(pred, true, u0).item() == pytest.approx(1e-6 / 1e-2, rel=1e-9)
    zero = torch.zeros(1, 2, NX, dtype=torch.float64)
    assert math.isfinite(m.nrmse(zero + 1e-3, zero, zero[:, 0]).item())


def test_boundary_error_only_sees_the_edge_cells():
    true = torch.zeros(1, 1, NX, dtype=torch.float64)
    pred = true.clone()
    pred[..., NX // 2] = 5.0  # an interior error
    assert m.brmse(pred, true).item() == 0.0
    pred[..., 0] = 1.0
    pred[..., -1] = 1.0
    assert m.brmse(pred, true).item() == pytest.approx(1.0)


def test_mass_drift_takes_the_worst_frame_and_energy_counts_only_increases():
    u0 = torch.sin(2 * math.pi * X)[None]  # mass 0, energy 1/2, U = 1/sqrt(2)
    pred = frames(0.9 * u0[0], 0.9 * u0[0] + 0.1, 0.8 * u0[0])
    u_scale = 1 / math.sqrt(2)
    assert m.mass_drift(pred, u0).item() == pytest.approx(0.1 / u_scale)
    # energies: 0.5 -> 0.405 -> 0.415 -> 0.32: one increase of 0.01, normalised by E0 = U^2 = 0.5
    assert m.energy_violation(pred, u0).item() == pytest.approx(0.01 / 0.5)


def test_pde_residual_of_a_uniformly_growing_field_is_its_growth_rate():
    rate, dt, c = 0.3, 0.05, 1.0
    u0 = torch.full((1, NX), c, dtype=torch.float64)
    pred = torch.stack([u0[0] + rate * dt * (i + 1) for i in range(4)])[None]
    # u_t = rate, u_x = u_xx = 0: the residual is `rate` everywhere, normalised by U^2 = c^2
    assert m.pde_residual(pred, u0, dt, torch.tensor([0.01])).item() == pytest.approx(rate / c**2)


def test_pde_residual_separates_a_burgers_step_from_a_wrong_one():
    nu = torch.tensor([0.01])
    dt, steps = 1e-3, 20
    u = torch.sin(2 * math.pi * X)[None]
    u0 = u.clone()
    out = []
    dx = 1 / NX
    for _ in range(steps):  # explicit small-step solve of u_t + (u^2/2)_x = (nu/pi) u_xx
        f = 0.5 * u**2
        u = u + dt * (-(f.roll(-1, -1) - f.roll(1, -1)) / (2 * dx)
                      + (0.01 / math.pi) * (u.roll(-1, -1) - 2 * u + u.roll(1, -1)) / dx**2)
        out.append(u)
    good = torch.stack(out, 1)
    bad = good.flip(-1)  # same energy and mass, wrong dynamics
    r_good = m.pde_residual(good, u0, dt, nu).item()
    r_bad = m.pde_residual(bad, u0, dt, nu).item()
    assert r_good < 0.05 * r_bad
