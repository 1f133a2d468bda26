"""The baselines' shared parts: the trainer keeps its best-on-val weights and learns with the model's
augmentation; the ResNet starts as persistence; the rollout constraints hold for any stepper; the references that
learn nothing are what they say."""

from __future__ import annotations

import math

import numpy as np
import torch
from test_eval_fno import NT, advected

from usim_core.data.burgers import solve
from usim_core.data.initial import sample_initial
from usim_core.eval import metrics as M
from usim_core.eval.constrained import Constrained
from usim_core.eval.references import heat, mean_field, persistence
from usim_core.eval.resnet import ResNetStepper
from usim_core.eval.rollout import one_step, rollout
from usim_core.eval.stepper_train import Recipe, train_stepper


class Drifting:
    """A stepper that gains mass and energy every step (a learned one can, without the constraints)."""

    def encode(self, u, nu):
        return u

    def decode(self, z):
        return z

    def step(self, z, nu, dt):
        return 1.1 * z + 0.05

    def sample_residual(self, *a, **k):
        raise ValueError("deterministic")


def test_the_rollout_constraints_keep_any_steppers_mean_exactly_and_never_let_its_energy_grow():
    u0 = torch.as_tensor(advected(3, 0)[0][:, 0]) + 0.3
    nu, dt = torch.full((3,), 0.01), torch.full((3,), 0.05)
    plain, _ = rollout(Drifting(), u0, nu, dt, steps=6)
    kept, _ = rollout(Constrained(Drifting()), u0, nu, dt, steps=6)
    assert M.mass_drift(plain.double(), u0.double()).max() > 0.1, "without them the drift shows"
    assert M.mass_drift(kept.double(), u0.double()).max() < 1e-6
    energy = lambda u: (u - u.mean(-1, keepdim=True)).double().pow(2).mean(-1)  # noqa: E731
    frames = torch.cat([u0[:, None], kept], dim=1)
    assert (energy(frames[:, 1:]) <= energy(frames[:, :-1]) * (1 + 1e-6)).all()
    assert torch.allclose(frames[:, 1], u0.mean(-1, keepdim=True) + 1.0 * (u0 - u0.mean(-1, keepdim=True)),
                          atol=1e-5), "the first step's gain is capped back to u0's energy, its mean restored"


def burgers(n: int, seed: int, nx: int = 64, nt: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Viscous Burgers trajectories (the augmentation's symmetries are Burgers', not any dynamic's)."""
    u = solve(sample_initial(n, nx, seed), 0.02, np.linspace(0, 0.4, nt)).u.astype(np.float32)
    return u, np.full(n, 0.02, np.float32)


def test_an_untrained_resnet_is_persistence_and_training_it_with_the_models_augmentation_learns():
    u, nu = burgers(24, 0)
    ut, nut = torch.as_tensor(burgers(6, 1)[0]), torch.full((6,), 0.02)
    dt = torch.full((6,), 0.05)
    model = ResNetStepper(0.0, float(u.std()), width=16, blocks=2)
    assert torch.allclose(one_step(model, ut, nut, dt), ut[:, :-1], atol=1e-6), "zero-initialised last layer"
    rec = Recipe(lr=3e-3, batch_size=16, reflect=True, galilean=0.5, initial_repeat=4, initial_span=2)
    trained, info = train_stepper(model, u, nu, recipe=rec, max_steps=150, dt=0.05, length=1.0)
    assert info["steps"] == 150
    before = (ut[:, :-1] - ut[:, 1:]).pow(2).mean()
    after = (one_step(trained, ut, nut, dt) - ut[:, 1:]).pow(2).mean()
    assert after < 0.5 * before, (after, before)


def test_the_trainer_returns_the_weights_that_scored_best_on_val_not_the_last():
    u, nu = advected(8, 0)
    model = ResNetStepper(0.0, float(u.std()), width=4, blocks=1)
    seen: list[tuple[float, list[torch.Tensor]]] = []
    scores = iter([3.0, 1.0, 2.0, 5.0])

    def val(m) -> float:
        s = next(scores)
        seen.append((s, [p.detach().clone() for p in m.parameters()]))
        return s

    kept, info = train_stepper(model, u, nu, recipe=Recipe(lr=1e-2, batch_size=4, ema_decay=0.9), max_steps=8,
                               val=val, val_every=2)
    assert [s for s, _ in seen] == [3.0, 1.0, 2.0, 5.0] and info["best_val"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(kept.parameters(), seen[1][1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(kept.parameters(), seen[3][1], strict=True))


def test_the_references_that_learn_nothing():
    nx, length, nu, dt = 64, 2.0, 0.01, 0.05
    x = length * (np.arange(nx) + 0.5) / nx
    u0 = torch.as_tensor(0.4 + np.sin(2 * math.pi * 3 * x / length))[None]
    got = heat(u0, torch.tensor([nu]), dt, 4, length)
    decay = math.exp(-(nu / math.pi) * (2 * math.pi * 3 / length) ** 2 * dt * 4)
    assert torch.allclose(got[0, -1], 0.4 + decay * (u0[0] - 0.4), atol=1e-10), "each mode decays exactly"
    assert torch.equal(persistence(u0, 3)[0, 2], u0[0])
    mf = mean_field(u0, 2)
    assert torch.allclose(mf, torch.full_like(mf, 0.4), atol=1e-9)
    true = torch.as_tensor(advected(2, 0)[0]).double() + 0.5
    flat = true[:, 1:].mean(-1, keepdim=True).expand_as(true[:, 1:])
    assert torch.allclose(M.vrmse_per_frame(flat, true[:, 1:], true[:, 0]), torch.ones(2, NT - 1).double(), atol=1e-6), \
        "predicting each frame's mean scores VRMSE 1 whatever the mean"
