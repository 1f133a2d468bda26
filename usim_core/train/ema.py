"""Exponential moving average of the trained submodules, with the usual warmup of the decay so short
stages still get a meaningful average: decay_t = min(decay, (1 + t) / (10 + t))."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, modules: tuple[str, ...], decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for name in modules:
        for pe, p in zip(getattr(ema, name).parameters(), getattr(model, name).parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - d)


@torch.no_grad()
def copy_modules(dst: nn.Module, src: nn.Module, modules: tuple[str, ...]) -> None:
    for name in modules:
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
