"""Training-window augmentation by Burgers' own symmetries: each transformed window must be the solver's solution
from the transformed initial condition (not merely a plausible field), and the stage config turns it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_support import make_bundle, tiny_config

from usim_core.config import ConfigError, load_config
from usim_core.data.burgers import solve
from usim_core.data.initial import sample_initial
from usim_core.train.augment import augment, galilean, reflect
from usim_core.train.batches import windows

NU, DT, NX = 0.01, 0.05, 256


def _solution(u0: np.ndarray, length: float = 1.0, first: int = 0) -> torch.Tensor:
    """Solver frames at 0, dt, 2 dt, 3 dt on 1024 points, strided to 256 from point `first` (as the data
    pipeline strides from 0)."""
    t = np.arange(4) * DT
    return torch.tensor(solve(u0, NU, t, length=length).u[:, :, first::4])


@pytest.fixture(scope="module")
def u0() -> np.ndarray:
    return sample_initial(3, 4 * NX, seed=5)


@pytest.mark.parametrize("length", [1.0, 2.0])
def test_a_boosted_window_is_the_solution_from_the_boosted_start(u0, length):
    u = _solution(u0, length)
    c = torch.tensor([0.4, -0.25, 0.1], dtype=torch.float64)
    boosted = galilean(u, c, torch.full((3,), DT), length)
    truth = _solution(u0 + c.numpy()[:, None], length)
    assert float((boosted - truth).abs().max()) < 2e-3 * float(u.abs().max())
    # the shift matters: without it (only + c) the later frames are far off
    assert float((u + c[:, None, None] - truth)[:, 1:].abs().max()) > 20 * float((boosted - truth).abs().max())


def test_a_mirrored_window_is_the_solution_from_the_mirrored_start(u0):
    u = _solution(u0)
    mirrored = reflect(u, torch.tensor([True, False, True]))
    # the strided point i is fine point 4i; its mirror 255 - i is fine point 1020 - 4i, which the fine grid's own
    # mirror j -> 1023 - j puts at 3 + 4i: the mirrored fine solution strided from point 3
    truth = _solution(-u0[:, ::-1].copy(), first=3)
    assert torch.allclose(mirrored[0], truth[0], atol=1e-6 * float(u.abs().max()) + 1e-9)
    assert torch.equal(mirrored[1], u[1])
    assert torch.allclose(mirrored[2], truth[2], atol=1e-6 * float(u.abs().max()) + 1e-9)


def test_augment_is_reproducible_from_its_generator_and_keeps_mass_per_window(u0):
    u = _solution(u0).float()
    dt = torch.full((3,), DT)
    a = augment(u, dt, 1.0, torch.Generator().manual_seed(1), True, 0.5)
    b = augment(u, dt, 1.0, torch.Generator().manual_seed(1), True, 0.5)
    assert torch.equal(a, b) and not torch.allclose(a, u)
    mean = a.double().mean(-1)  # each window's mean stays the same over its frames (Burgers conserves it)
    assert torch.allclose(mean, mean[:, :1].expand_as(mean), atol=1e-5)
    assert torch.equal(augment(u, dt, 1.0, torch.Generator().manual_seed(1), False, 0.0), u)


def test_the_operator_stage_takes_its_augmentation_from_the_config(tmp_path):
    cfg = tiny_config(**{"stages.operator.reflect": True, "stages.operator.galilean": 0.3})
    assert cfg.stages.operator.reflect and cfg.stages.operator.galilean == 0.3
    assert not tiny_config().stages.operator.reflect and tiny_config().stages.operator.galilean == 0.0
    with pytest.raises(ConfigError, match="galilean"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("stages:\n  operator: {galilean: -0.1}\n")
        load_config(bad)


def test_an_augmented_operator_stage_trains_differently_and_reproducibly(tmp_path):
    """Same seed, same windows: only the augmentation differs, so the trained operator must differ; the same
    augmented run twice gives the same operator."""
    from usim_core.train.run import train_run

    bundle = make_bundle()

    def operator_weights(name: str, **over) -> torch.Tensor:
        cfg = tiny_config(**{"stages.operator.epochs": 1, **over})
        run = tmp_path / name
        train_run(cfg, run, stage="codec", device="cpu", bundle=bundle, run_evals=False, quiet=True)
        train_run(cfg, run, stage="operator", device="cpu", bundle=bundle, run_evals=False, quiet=True)
        ck = torch.load(run / "checkpoints" / "operator.pt", map_location="cpu", weights_only=False)
        return torch.cat([v.flatten() for k, v in ck["model"].items() if k.startswith("operator.net")])

    plain = operator_weights("plain")
    aug = {"stages.operator.reflect": True, "stages.operator.galilean": 0.3}
    once, twice = operator_weights("aug1", **aug), operator_weights("aug2", **aug)
    assert torch.equal(once, twice)
    assert not torch.allclose(once, plain)


def test_windows_from_the_initial_condition_can_be_drawn_more_often():
    split = make_bundle(n_train=5, nt=10).train
    plain, more = windows(split, 2, DT), windows(split, 2, DT, initial_repeat=4)
    assert len(plain) == 5 * 8 and len(more) == 5 * 8 + 3 * 5
    assert torch.equal(more.index[:len(plain)], plain.index)
    extra = more.index[len(plain):]
    assert (extra[:, 1] == 0).all() and sorted(extra[:, 0].tolist()) == sorted(list(range(5)) * 3)
    two = windows(split, 2, DT, initial_repeat=2, initial_span=2)
    assert len(two) == 5 * 8 + 2 * 5 and sorted(two.index[len(plain):, 1].tolist()) == [0] * 5 + [1] * 5


def test_the_operator_stage_draws_its_windows_with_the_configured_repeat(tmp_path):
    from usim_core.events import read_events
    from usim_core.train.run import train_run

    bundle = make_bundle()
    n, nt = bundle.train.u.shape[:2]
    for repeat in (1, 3):
        cfg = tiny_config(**{"stages.operator.epochs": 1, "stages.operator.initial_repeat": repeat,
                             "stages.operator.initial_span": 2})
        run = tmp_path / f"r{repeat}"
        for stage in ("codec", "operator"):
            train_run(cfg, run, stage=stage, device="cpu", bundle=bundle, run_evals=False, quiet=True)
        start = next(e for e in read_events(run) if e.get("kind") == "stage_start" and e["stage"] == "operator")
        windows_seen = n * (nt - cfg.stages.operator.unroll) + (repeat - 1) * 2 * n
        assert start["steps_per_epoch"] == -(-windows_seen // cfg.stages.operator.batch_size)
