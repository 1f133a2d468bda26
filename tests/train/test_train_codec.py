"""The local codec: any-point periodic decoding, token counts that do not divide the grid, a steep front
reconstructed well after a short training, and the projecting step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from train_support import tiny_config

from usim_core.models.surrogate import Surrogate

STATS = {"mean": 0.0, "std": 1.0}


def _model(nx: int, tokens: int = 4, latent_dim: int = 8, hidden: int = 16) -> Surrogate:
    torch.manual_seed(0)
    cfg = tiny_config(**{"model.codec": {"latent_tokens": tokens, "latent_dim": latent_dim, "hidden_dim": hidden,
                                         "depth": 1}})
    return Surrogate(cfg, nx, STATS)


def test_decoder_is_any_point_and_periodic():
    m = _model(32).eval()
    z = torch.randn(2, 4, 8)
    with torch.no_grad():
        grid = m.decode(z)
        assert torch.allclose(m.decode(z, m.x_grid), grid)
        assert torch.allclose(m.decode(z, m.x_grid + 1.0), grid, atol=1e-5)
        off = torch.rand(50)
        assert m.decode(z, off).shape == (2, 50)


def test_token_count_need_not_divide_the_grid():
    m = _model(30, tokens=4).eval()  # 30 points, 4 tokens: patches are resampled to 4 x 8 points
    u = torch.randn(3, 30)
    with torch.no_grad():
        z = m.encode(u, torch.full((3,), 0.01))
        assert z.shape == (3, 4, 8) and torch.isfinite(z).all()
        assert m.decode(z).shape == (3, 30)


def _fronts(n: int, nx: int, gen: torch.Generator) -> torch.Tensor:
    """Burgers-like steep fronts (width ~2 grid cells) at random positions and heights."""
    x = torch.arange(nx) / nx
    pos = torch.rand(n, 1, generator=gen)
    amp = 0.5 + torch.rand(n, 1, generator=gen)
    d = torch.remainder(x - pos + 0.5, 1.0) - 0.5
    return amp * torch.tanh(-d * nx / 2) + 0.3 * torch.sin(2 * torch.pi * (x + pos))


def test_codec_learns_a_steep_front_quickly():
    """The earlier patch-mean codec reached 0.26 nRMSE on these fronts in the same 250 steps; this one 0.08."""
    nx = 64
    m = _model(nx, tokens=8, latent_dim=8, hidden=16)
    gen = torch.Generator().manual_seed(0)
    params = [*m.encoder.parameters(), *m.decoder.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    nu = torch.full((32,), 0.01)
    for _ in range(250):
        u = _fronts(32, nx, gen)
        loss = F.mse_loss(m.decode(m.encode(u, nu)), u)
        opt.zero_grad()
        loss.backward()
        opt.step()
    u = _fronts(64, nx, torch.Generator().manual_seed(1))  # unseen fronts
    with torch.no_grad():
        rec = m.decode(m.encode(u, torch.full((64,), 0.01)))
    nrmse = float(((rec - u).pow(2).mean(-1).sqrt() / u.pow(2).mean(-1).sqrt()).mean())
    assert nrmse < 0.1, f"reconstruction nRMSE {nrmse:.3f}"


def test_step_lands_on_the_codec_range():
    """step() is the operator update projected by decode -> encode, and the projection is not a no-op."""
    m = _model(32).eval()
    nu, dt = torch.full((2,), 0.01), torch.full((2,), 0.05)
    with torch.no_grad():
        z = m.step(m.encode(torch.randn(2, 32), nu), nu, dt)
        raw = m.operator(m.encode(torch.randn(2, 32), nu), nu, dt)
        assert torch.allclose(m.step(z, nu, dt), m.encode(m.decode(m.operator(z, nu, dt)), nu))
        assert not torch.allclose(m.encode(m.decode(raw), nu), raw)


def test_low_mode_mse_is_the_low_band_share_of_the_mse():
    from usim_core.train.losses import low_mode_mse

    x = torch.arange(64) / 64
    low = 0.3 * torch.sin(2 * torch.pi * 3 * x) + 0.2 * torch.cos(2 * torch.pi * 8 * x)
    high = 0.5 * torch.sin(2 * torch.pi * 9 * x)
    zero = torch.zeros(1, 64)
    assert torch.isclose(low_mode_mse(low[None], zero, 8), F.mse_loss(low[None], zero), rtol=1e-5)
    assert low_mode_mse(high[None], zero, 8) < 1e-10  # mode 9 lies outside modes 1..8
    assert low_mode_mse((low + 1.0)[None], zero, 8) > 0  # the mean (mode 0) is not counted
    assert torch.isclose(low_mode_mse((low + 1.0)[None], zero, 8), F.mse_loss(low[None], zero), rtol=1e-5)


def test_codec_loss_weights_the_low_modes_when_asked():
    from usim_core.train.losses import codec_loss, low_mode_mse

    u = torch.randn(5, 1, 32)
    nu = torch.full((5,), 0.01)
    plain = tiny_config()
    weighted = tiny_config(**{"stages.codec.low_mode_weight": 4.0, "stages.codec.low_modes": 3})
    torch.manual_seed(0)
    m = Surrogate(plain, 32, STATS).eval()
    with torch.no_grad():
        base = codec_loss(m, u, nu, nu, plain, torch.Generator())
        rec = m.decode_n(m.encode_n(m.normalise(u[:, 0]), nu))
        extra = low_mode_mse(rec, m.normalise(u[:, 0]), 3)
        assert extra > 0
        assert torch.isclose(codec_loss(m, u, nu, nu, weighted, torch.Generator()), base + 4.0 * extra, rtol=1e-5)
