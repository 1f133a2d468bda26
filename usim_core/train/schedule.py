"""Learning-rate schedule: linear warmup over a fraction of the stage's optimizer steps, then cosine decay."""

from __future__ import annotations

import math


def warmup_steps(total: int, warmup: float) -> int:
    return max(1, round(warmup * total)) if warmup > 0 else 0


def lr_at(step: int, total: int, lr: float, warmup: float, min_lr: float) -> float:
    """Learning rate of optimizer step `step` (0-based) of a stage of `total` steps."""
    w = warmup_steps(total, warmup)
    if step < w:
        return lr * (step + 1) / w
    progress = min(1.0, (step - w) / max(1, total - w))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
