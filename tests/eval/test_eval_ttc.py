"""TTC chooses per trajectory, by the physics reward, and never spends more than its evaluation budget."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from usim_core.config import RewardWeights, TTCConfig
from usim_core.eval import rollout as ro
from usim_core.eval.rewards import physics_reward

NX = 32
X = torch.arange(NX, dtype=torch.float32) / NX


class OffsetStepper:
    """Latent = the field. The operator keeps the state; candidate j of trajectory i adds the constant
    offsets[i, j] (a mass error), so the physically best candidate is the one with the smallest |offset|."""

    def __init__(self, offsets: torch.Tensor) -> None:
        self.offsets = offsets

    def encode(self, u, nu):
        return u.clone()

    def decode(self, z):
        return z.clone()

    def step(self, z, nu, dt):
        return z

    def sample_residual(self, z_pred, nu, dt, mode, generator=None, noise_scale=1.0):
        b, n = self.offsets.shape
        if z_pred.shape[0] == b * n:
            return self.offsets.reshape(-1, 1).expand_as(z_pred)
        return self.offsets[:, :1].expand_as(z_pred)  # an unscored sample is candidate 0


class NoiseStepper(OffsetStepper):
    def __init__(self) -> None:
        super().__init__(torch.zeros(1, 1))

    def sample_residual(self, z_pred, nu, dt, mode, generator=None, noise_scale=1.0):
        return noise_scale * 0.1 * torch.randn(z_pred.shape, generator=generator)


def batch(b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u0 = torch.stack([torch.sin(2 * math.pi * (k + 1) * X) for k in range(b)])
    return u0, torch.full((b,), 0.01), torch.full((b,), 0.05)


def test_each_trajectory_gets_its_own_best_candidate():
    offsets = torch.tensor([[0.5, 0.3, 0.01, -0.4],
                            [0.02, 0.6, -0.3, 0.2],
                            [-0.5, 0.4, 0.3, -0.001]])
    u0, nu, dt = batch(3)
    cfg = TTCConfig(candidates=4, max_evaluations=100, weights=RewardWeights(mass=1, energy=0, residual=0))
    pred, stats = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=2, mode="diffusion", ttc=cfg)
    assert [c.tolist() for c in stats.choices] == [[2, 0, 3], [2, 0, 3]]
    expected_first = u0 + torch.tensor([0.01, 0.02, -0.001])[:, None]
    assert torch.allclose(pred[:, 0], expected_first)
    # and the untouched rollout (no TTC) takes candidate 0 for everyone: TTC did change the result
    plain, _ = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=2, mode="diffusion")
    assert not torch.allclose(plain, pred)


def test_compute_matched_controls_take_the_mean_or_a_random_candidate_at_the_same_budget():
    offsets = torch.tensor([[0.5, 0.3, 0.01, -0.4],
                            [0.02, 0.6, -0.3, 0.2]])
    u0, nu, dt = batch(2)
    base = dict(candidates=4, max_evaluations=100, weights=RewardWeights(mass=1, energy=0, residual=0))
    best, s_best = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=1, mode="diffusion", ttc=TTCConfig(**base))
    mean, s_mean = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=1, mode="diffusion",
                              ttc=TTCConfig(**base, select="mean"))
    assert torch.allclose(mean[:, 0], u0 + offsets.mean(1)[:, None])
    assert torch.equal(s_mean.evaluations, s_best.evaluations)  # the same N candidates, the same budget
    picks = set()
    for seed in range(8):
        rnd, s_rnd = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=1, mode="diffusion",
                                ttc=TTCConfig(**base, select="random"), generator=torch.Generator().manual_seed(seed))
        chosen = s_rnd.choices[0]
        assert torch.allclose(rnd[:, 0], u0 + offsets[torch.arange(2), chosen][:, None])
        picks.update(chosen.tolist())
    assert len(picks) > 1


def test_choice_matches_the_reward_computed_independently():
    g = torch.Generator().manual_seed(3)
    offsets = 0.3 * torch.randn(5, 6, generator=g)
    u0, nu, dt = batch(5)
    weights = RewardWeights(mass=1.0, energy=2.0, residual=0.5)
    cfg = TTCConfig(candidates=6, max_evaluations=100, weights=weights)
    _, stats = ro.rollout(OffsetStepper(offsets), u0, nu, dt, steps=1, mode="consistency", ttc=cfg)
    cands = u0[:, None] + offsets[..., None]  # (5, 6, nx)
    scores = torch.stack([physics_reward(u0, cands[:, j], u0, nu, dt, weights) for j in range(6)], dim=1)
    assert stats.choices[0].tolist() == scores.argmax(1).tolist()
    assert len(set(stats.choices[0].tolist())) > 1  # not one choice for the whole batch


@settings(max_examples=40, deadline=None)
@given(candidates=st.integers(1, 9), budget=st.integers(1, 60), lookahead=st.integers(0, 3),
       steps=st.integers(1, 12))
def test_ttc_never_exceeds_its_budget(candidates, budget, lookahead, steps):
    counted = []
    real = ro.physics_reward

    def counting(prev, nxt, *args, **kwargs):  # count every reward evaluation, per row
        counted.append(nxt.shape[0])
        return real(prev, nxt, *args, **kwargs)

    ro.physics_reward = counting
    try:
        u0, nu, dt = batch(2)
        cfg = TTCConfig(candidates=candidates, max_evaluations=budget, lookahead=lookahead)
        pred, stats = ro.rollout(NoiseStepper(), u0, nu, dt, steps=steps, mode="diffusion", ttc=cfg,
                                 generator=torch.Generator().manual_seed(0))
    finally:
        ro.physics_reward = real
    per_traj = sum(counted) // 2
    assert per_traj <= budget
    assert stats.evaluations.tolist() == [per_traj, per_traj]
    assert pred.shape == (2, steps, NX)
    # the budget is used when it can be: at least one scored step whenever 2 candidates fit at step 0
    if candidates >= 2 and budget >= 2 * (1 + min(lookahead, steps - 1)):
        assert stats.scored_steps >= 1


def test_operator_mode_refuses_ttc_and_unknown_modes_are_named():
    u0, nu, dt = batch(1)
    for mode, ttc in (("operator", TTCConfig()), ("bogus", None)):
        try:
            ro.rollout(NoiseStepper(), u0, nu, dt, steps=1, mode=mode, ttc=ttc)
        except ValueError as exc:
            assert mode in str(exc) or "stochastic" in str(exc)
        else:
            raise AssertionError(f"{mode} accepted")


def test_one_step_is_teacher_forced_from_every_true_frame():
    u = torch.randn(2, 5, NX)
    out = ro.one_step(NoiseStepper(), u, torch.full((2,), 0.01), torch.full((2,), 0.05), mode="operator")
    assert torch.equal(out, u[:, :-1])  # persistence stand-in: the prediction is the given frame
