"""Training for the baselines that step the field itself (FNO, ResNet): one loop, as hard a recipe as the
surrogate's operator gets when asked for (tests and `usim-core baseline fno` use the plain one).

Windows of unroll + 1 frames from random trajectories and start frames (those in the first `initial_span` frames
drawn `initial_repeat` times as often), optionally mirrored and Galilean-boosted (train/augment.py: exact
symmetries of Burgers), a one-step loss plus `unroll_weight` x the mean of the unrolled steps' losses, AdamW,
cosine decay over the budget (optimiser steps, or process CPU seconds), an EMA of the weights, and the EMA's
best state on a validation function kept.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from usim_core.train.augment import augment


@dataclass(frozen=True)
class Recipe:
    lr: float = 1e-3
    batch_size: int = 32
    unroll: int = 1
    unroll_weight: float = 0.5
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.0        # 0: no EMA
    reflect: bool = False         # mirror half the windows
    galilean: float = 0.0         # boost by c ~ U(-galilean, galilean)
    initial_repeat: int = 1
    initial_span: int = 1


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


def _starts(nt: int, h: int, recipe: Recipe) -> np.ndarray | None:
    """Probabilities of each start frame (None: uniform, the plain recipe's draw)."""
    if recipe.initial_repeat == 1:
        return None
    w = np.ones(nt - h)
    w[: recipe.initial_span] = recipe.initial_repeat
    return w / w.sum()


def train_stepper(model: Any, u: np.ndarray, nu: np.ndarray, *, recipe: Recipe, seed: int = 0,
                  max_steps: int | None = None, budget_s: float | None = None, dt: float = 1.0,
                  length: float = 1.0, val: Callable[[Any], float] | None = None, val_every: int = 0,
                  log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Train `model` (encode/step/decode on normalised fields) on trajectories u (n, nt, nx) PHYSICAL until
    max_steps optimiser steps or budget_s process CPU seconds, whichever comes first. With `val` (lower is
    better) every `val_every` steps and at the end, the best-scoring weights (the EMA's, if any) are kept."""
    if max_steps is None and budget_s is None:
        raise ValueError("train_stepper needs max_steps or budget_s")
    torch.manual_seed(seed)
    g = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    ema = copy.deepcopy(model) if recipe.ema_decay > 0 else model
    data = torch.as_tensor(u, dtype=torch.float32)
    nus = torch.as_tensor(nu, dtype=torch.float32)
    n, nt, _ = data.shape
    h = max(1, min(recipe.unroll, nt - 1))
    p_start, b = _starts(nt, h, recipe), recipe.batch_size
    dts = torch.full((b,), float(dt), dtype=torch.float64)
    best: tuple[float, Any] | None = None   # (score, a copy of the scored model)
    scores: list[tuple[int, float]] = []
    start, step, loss_ema = time.process_time(), 0, None

    def progress() -> float:
        by_steps = step / max_steps if max_steps else 0.0
        by_cpu = (time.process_time() - start) / budget_s if budget_s else 0.0
        return max(by_steps, by_cpu)

    def judge() -> None:
        nonlocal best
        ema.eval()
        score = float(val(ema))
        ema.train()
        scores.append((step, score))
        if best is None or score < best[0]:
            best = (score, copy.deepcopy(ema))

    model.train()
    while progress() < 1.0:
        for group in opt.param_groups:
            group["lr"] = recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress())))
        traj = torch.as_tensor(g.integers(0, n, b))
        t0 = torch.as_tensor(g.choice(nt - h, b, p=p_start) if p_start is not None else g.integers(0, nt - h, b))
        win = data[traj[:, None], t0[:, None] + torch.arange(h + 1)]  # (b, h+1, nx)
        if recipe.reflect or recipe.galilean > 0:
            win = augment(win, dts, length, gen, recipe.reflect, recipe.galilean)
        zt = model.encode(win, nus[traj])
        z, losses = zt[:, 0], []
        for k in range(1, h + 1):
            z = model.step(z, nus[traj], torch.zeros(b))
            losses.append((z - zt[:, k]).pow(2).mean())
        loss = losses[0] + recipe.unroll_weight * (torch.stack(losses[1:]).mean() if h > 1 else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        if ema is not model:
            _ema_update(ema, model, recipe.ema_decay)
        step += 1
        loss_ema = float(loss.detach()) if loss_ema is None else 0.98 * loss_ema + 0.02 * float(loss.detach())
        if val is not None and val_every and step % val_every == 0:
            judge()
        if log and step % 100 == 0:
            log(f"step {step} loss {loss_ema:.4g} ({time.process_time() - start:.0f} CPU s)")
    if val is not None and (not scores or scores[-1][0] != step):
        judge()
    kept = ema if best is None else best[1]
    kept.eval()
    return kept, {"steps": step, "cpu_s": round(time.process_time() - start, 2), "loss": loss_ema,
                 "budget_s": budget_s, "max_steps": max_steps, "unroll": h, "batch_size": b, "lr": recipe.lr,
                 "recipe": asdict(recipe), "val": scores, "best_val": None if best is None else best[0]}
