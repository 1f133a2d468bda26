"""The exact codec path and the viscous step (#16's codec floor): the linear patch pair is lossless at
initialisation, the viscous step is the exact heat step on each Fourier mode at the data's own period length,
it damps the operator's fine-scale change by phi1, and a checkpoint rebuilds the step on its own domain."""

from __future__ import annotations

import math

import pytest
import torch
from train_support import tiny_config

from usim_core.models.surrogate import Surrogate
from usim_core.models.viscous import viscous_factors, viscous_step
from usim_core.train import checkpoint as ck
from usim_core.train.checkpoint import CheckpointError, load_surrogate, save_checkpoint

STATS = {"mean": 0.25, "std": 2.0}
NU, DT = 0.01, 0.05


def _config(latent_dim: int = 8):
    return tiny_config(**{
        "model.codec": {"latent_tokens": 8, "latent_dim": latent_dim, "hidden_dim": 16, "depth": 1,
                        "linear_path": True},
        "model.operator": {"hidden_dim": 16, "heads": 2, "depth": 1, "viscous_step": True}})


def _model(length: float = 1.0, latent_dim: int = 8) -> Surrogate:
    torch.manual_seed(0)
    return Surrogate(_config(latent_dim), 64, STATS, length).eval()


def _mode(m: int, nx: int, phase: float = 0.3) -> torch.Tensor:
    return torch.sin(2 * math.pi * m * torch.arange(nx, dtype=torch.float64) / nx + phase)


def test_linear_path_codec_is_lossless_at_initialisation():
    """latent_dim 8 >= the patch's 8 points: encode -> decode returns the field itself, to float round-off; the
    learned codec without the path starts far from that."""
    u = torch.randn(3, 64) * 2 + 0.25
    nu = torch.full((3,), NU)
    with torch.no_grad():
        m = _model()
        rec = m.decode(m.encode(u, nu))
        assert (rec - u).abs().max() < 1e-4
        torch.manual_seed(0)
        plain = Surrogate(tiny_config(**{"model.codec": {"latent_tokens": 8, "latent_dim": 8, "hidden_dim": 16,
                                                           "depth": 1}}), 64, STATS).eval()
        assert (plain.decode(plain.encode(u, nu)) - u).abs().max() > 0.5


def test_linear_path_with_a_narrow_latent_is_a_projection():
    """latent_dim 4 < 8 points: not lossless, but what it keeps it keeps exactly (encode -> decode is idempotent)."""
    m = _model(latent_dim=4)
    nu = torch.full((2,), NU)
    with torch.no_grad():
        once = m.decode(m.encode(torch.randn(2, 64), nu))
        twice = m.decode(m.encode(once, nu))
    assert (twice - once).abs().max() < 1e-4


@pytest.mark.parametrize("length", [1.0, 2.0])
def test_viscous_step_is_the_exact_heat_step_on_each_mode(length):
    """With the operator predicting no change, one step of Fourier mode m decays by exp(-(nu/pi) k^2 dt) with
    k = 2 pi m / L; on PDEBench's length-2 files that is a quarter of the unit domain's exponent."""
    nx = 64
    nu, dt = torch.full((1,), NU), torch.full((1,), DT)
    for m in (0, 1, 5, 20):
        u = 0.7 + _mode(m, nx)[None] if m else torch.full((1, nx), 0.7, dtype=torch.float64)
        out = viscous_step(u, u, nu, dt, length)
        decay = math.exp(-(NU / math.pi) * (2 * math.pi * m / length) ** 2 * DT)
        expected = 0.7 + decay * (u - 0.7)
        assert torch.allclose(out, expected, atol=1e-12), (m, length)


def test_viscous_step_damps_the_operators_change_by_phi1():
    """The operator's change d = u_op - u reaches the next frame as phi1 * d per mode: whole at the mean, barely
    touched at the lowest modes, cut ~1 / lam at the fine scales where a rollout's error would compound."""
    nx = 128
    nu, dt = torch.full((1,), NU), torch.full((1,), DT)
    e, phi = viscous_factors(nx, nu, dt, 1.0)
    assert phi[0, 0] == 1 and e[0, 0] == 1
    assert torch.all(phi[0, 1:] < 1) and torch.all(phi[0, 1:] > e[0, 1:]) and torch.all(phi.diff() < 0)
    lam = (NU / math.pi) * (2 * math.pi * 60) ** 2 * DT  # 22.6
    assert phi[0, 1] > 0.99 and phi[0, 60].item() == pytest.approx(-math.expm1(-lam) / lam) and phi[0, 60] < 0.05
    u = torch.zeros(1, nx, dtype=torch.float64)
    for m in (1, 40):
        d = _mode(m, nx)[None]
        out = viscous_step(u, u + d, nu, dt, 1.0)
        assert torch.allclose(out, phi[0, m] * d, atol=1e-12)


def test_surrogate_step_uses_the_viscous_step_and_keeps_the_mean():
    m = _model()
    nu, dt = torch.full((2,), NU), torch.full((2,), DT)
    u = torch.randn(2, 64) + 0.5
    with torch.no_grad():
        z = m.encode(u, nu)
        u_op = m.decode_n(m.operator(z, nu, dt))
        expected = m.encode_n(viscous_step(m.decode_n(z), u_op, nu, dt, 1.0), nu)
        assert torch.allclose(m.step(z, nu, dt), expected, atol=1e-5)
        mean = u.double().mean(-1)
        stepped = m.decode(m.step(z, nu, dt, mean=mean), mean=mean)
    assert torch.allclose(stepped.double().mean(-1), mean, atol=1e-6)


def test_checkpoint_rebuilds_the_viscous_step_on_its_own_domain(tmp_path):
    """The step's wavenumbers depend on the period: a model saved from length-2 data steps as a length-2 model."""
    m = _model(length=2.0)
    path = tmp_path / "operator.pt"
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    save_checkpoint(path, stage="operator", step=1, cfg=_config(), model=m, ema=None, optimizer=opt, stats=STATS,
                    manifest_hash="abc", rng=ck.rng_state(),
                    extra={"dt": DT, "domain": {"length": 2.0, "nx": 64, "dt": DT}})
    loaded, _, meta = load_surrogate(path)
    nu, dt = torch.full((2,), NU), torch.full((2,), DT)
    z = torch.randn(2, 8, 8)
    with torch.no_grad():
        assert loaded.length == 2.0 and meta["domain"]["length"] == 2.0
        assert torch.allclose(loaded.step(z, nu, dt), m.step(z, nu, dt))
        assert not torch.allclose(_model(length=1.0).step(z, nu, dt), m.step(z, nu, dt), atol=1e-4)


def test_a_viscous_checkpoint_without_its_domain_is_refused(tmp_path):
    """A length silently taken as 1 would step PDEBench-layout models with 4x the viscosity: refuse instead."""
    m = _model()
    path = tmp_path / "operator.pt"
    save_checkpoint(path, stage="operator", step=1, cfg=_config(), model=m, ema=None, optimizer=None, stats=STATS,
                    manifest_hash="abc", rng=ck.rng_state(), extra={"dt": DT})
    with pytest.raises(CheckpointError, match="operator.pt: no domain recorded.*period length"):
        load_surrogate(path)
