"""The diffusion sampler reproduces a known conditional residual distribution, and the consistency student
matches its K-step teacher from the same noise."""

from __future__ import annotations

import pytest
import torch

from usim_core.config import DiffusionConfig
from usim_core.models.diffusion import Denoiser, noise_levels, sample_student, sample_teacher

TOKENS, DIM = 2, 4
MEAN, SLOPE, SPREAD = 0.8, 0.5, 0.3  # r = MEAN + SLOPE * z_cond + SPREAD * xi


def _cond(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(n, TOKENS, DIM, generator=gen), torch.full((n,), 0.01), torch.full((n,), 0.05)


def _residual(zc: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return MEAN + SLOPE * zc + SPREAD * torch.randn(zc.shape, generator=gen)


@pytest.fixture(scope="module")
def teacher() -> Denoiser:
    torch.manual_seed(0)
    model = Denoiser(DiffusionConfig(hidden_dim=32, heads=2, depth=1, steps=8, prediction="v"), TOKENS, DIM)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(400):
        zc, nu, dt = _cond(64, gen)
        level = torch.randint(0, 8, (64,), generator=gen)
        loss = model.loss(_residual(zc, gen), zc, nu, dt, level, torch.randn(zc.shape, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_noise_levels_decrease_exponentially_to_min_std():
    sig = noise_levels(5, 2e-3)
    assert sig[-1].item() == pytest.approx(2e-3, rel=1e-5)
    ratios = sig[1:] / sig[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4) and ratios[0] < 1


@torch.no_grad()
def test_sampler_reproduces_known_residual_distribution(teacher):
    gen = torch.Generator().manual_seed(7)
    zc, nu, dt = _cond(1024, gen)
    sample = sample_teacher(teacher, zc, nu, dt, torch.randn(zc.shape, generator=gen))
    centred = sample - SLOPE * zc  # the conditional part removed: what is left should be N(MEAN, SPREAD^2)
    print(f"sample mean {centred.mean().item():.3f} (want {MEAN}), spread {centred.std().item():.3f} (want {SPREAD})")
    assert centred.mean().item() == pytest.approx(MEAN, abs=0.08)
    assert centred.std().item() == pytest.approx(SPREAD, rel=0.2)
    # a sampler that ignored its noise (a plain regression) would have no spread at all
    again = sample_teacher(teacher, zc, nu, dt, torch.randn(zc.shape, generator=gen))
    assert (again - sample).std().item() > SPREAD


def test_consistency_student_matches_teacher(teacher):
    student = Denoiser(DiffusionConfig(hidden_dim=32, heads=2, depth=1, steps=8, prediction="v"), TOKENS, DIM)
    student.load_state_dict(teacher.state_dict())
    opt = torch.optim.AdamW(student.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(3)
    for _ in range(80):
        zc, nu, dt = _cond(64, gen)
        noise = torch.randn(zc.shape, generator=gen)
        with torch.no_grad():
            target = sample_teacher(teacher, zc, nu, dt, noise)
        loss = ((sample_student(student, zc, nu, dt, noise, steps=1) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        zc, nu, dt = _cond(1024, gen)
        noise = torch.randn(zc.shape, generator=gen)
        t_out = sample_teacher(teacher, zc, nu, dt, noise)
        s_out = sample_student(student, zc, nu, dt, noise, steps=1)
        untrained = sample_student(teacher, zc, nu, dt, noise, steps=1)  # the teacher used in one step
    err = ((s_out - t_out) ** 2).mean() / t_out.var()
    err_untrained = ((untrained - t_out) ** 2).mean() / t_out.var()
    # stated tolerance: per-sample error below 10% of the teacher's variance, spread within 20%
    print(f"student error {err.item():.3f} vs one-step teacher {err_untrained.item():.3f}")
    assert err.item() < 0.10, (err.item(), err_untrained.item())
    assert err < err_untrained / 3
    assert (s_out - SLOPE * zc).std().item() == pytest.approx((t_out - SLOPE * zc).std().item(), rel=0.2)
