"""When a stochastic mode may replace the operator as the primary mode (decided on val only).

It must be better on val by more than MIN_GAIN of the operator's per-frame nRMSE, and by more than the val
trajectories' own noise: the paired per-trajectory difference (operator - mode) must have a 95% interval
(Student t over trajectories) that excludes zero. A 1% gain on the mean of 16 trajectories is otherwise easily a
lucky noise draw of a corrector that learned nothing.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

MIN_GAIN = 0.01  # relative to the operator's val error: smaller gains are not worth a stochastic mode


def paired_gain(op: Tensor, mode: Tensor) -> dict[str, Any]:
    """Mean of op - mode over trajectories (positive: the mode is better) with its 95% half-width; None where
    undefined (a non-finite value, or one trajectory)."""
    d = (op.double() - mode.double()).cpu()
    n = d.numel()
    if n == 0 or not bool(d.isfinite().all()):
        return {"gain": None, "ci95": None, "trajectories": n}
    if n < 2:
        return {"gain": float(d.mean()), "ci95": None, "trajectories": n}
    from scipy.stats import t as student

    half = float(student.ppf(0.975, n - 1) * d.std(unbiased=True) / math.sqrt(n))
    return {"gain": float(d.mean()), "ci95": half, "trajectories": n}


def beats_operator(op: Tensor, mode: Tensor, gain: dict[str, Any] | None = None) -> bool:
    """op, mode: (B,) per-trajectory per-frame nRMSE on the same val trajectories; `gain`: their paired_gain,
    when the caller has it already."""
    g = gain or paired_gain(op, mode)
    if g["gain"] is None or g["ci95"] is None:
        return False
    return g["gain"] > MIN_GAIN * float(op.double().mean()) and g["gain"] - g["ci95"] > 0
