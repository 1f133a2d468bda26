"""Warmup + cosine learning rate at chosen steps (expected values written out by hand)."""

from __future__ import annotations

import math

import pytest

from usim_core.train.schedule import lr_at, warmup_steps


def test_linear_warmup_then_cosine_to_min_lr():
    # 100 steps, 10% warmup -> 10 warmup steps, then 90 cosine steps from 1e-3 to 1e-5
    lr, floor = 1e-3, 1e-5
    assert warmup_steps(100, 0.1) == 10
    assert lr_at(0, 100, lr, 0.1, floor) == pytest.approx(1e-4)
    assert lr_at(4, 100, lr, 0.1, floor) == pytest.approx(5e-4)
    assert lr_at(9, 100, lr, 0.1, floor) == pytest.approx(1e-3)
    assert lr_at(10, 100, lr, 0.1, floor) == pytest.approx(1e-3)          # cosine starts at the peak
    assert lr_at(55, 100, lr, 0.1, floor) == pytest.approx(5.05e-4)       # halfway: (lr + floor) / 2
    assert lr_at(100, 100, lr, 0.1, floor) == pytest.approx(floor)
    quarter = floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert lr_at(40, 100, lr, 0.2, floor) == pytest.approx(quarter)  # 20 warmup steps, (40-20)/80 = 1/4


def test_warmup_variants_differ_and_zero_warmup_starts_at_peak():
    # the earlier pipeline's w5/w6 collapsed to the same schedule; here 3% / 5% / 6% of 200 steps differ
    assert [warmup_steps(200, w) for w in (0.03, 0.05, 0.06)] == [6, 10, 12]
    assert lr_at(0, 50, 2e-3, 0.0, 0.0) == pytest.approx(2e-3)
    values = [lr_at(s, 50, 2e-3, 0.0, 0.0) for s in range(51)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
