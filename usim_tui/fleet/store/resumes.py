"""A cell's curves across the attempts it resumed through: one attempt trained up to its resume point, the next
went on from there (`usim-core train --resume`). Metric keys name their stage (`train/operator/loss`,
`operator/epoch`: store/ingest.py); steps count within a stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from usim_core.config import STAGES

Series = dict[str, list[tuple[int, float]]]


def stage_of(key: str) -> str:
    """The training stage named in a metric key (`train/codec/loss`, `operator/val_loss`), or "" for none."""
    parts = key.split("/")[:-1]
    named = [p for p in parts if p in STAGES]
    if named:
        return named[-1]
    rest = [p for p in parts if p not in ("train", "val")]
    return rest[0] if rest else ""


def run_on(chain: Sequence[tuple[Any, Series]]) -> Series:
    """One series from an attempt chain, oldest first: each later attempt (its resumed_stage and resumed_step)
    keeps of what came before the stages before its resume stage, that stage up to its resume step, nothing
    after; then its own points. A step trained twice (an instance resumed in place) keeps its last value."""
    merged: dict[str, dict[int, float]] = {}
    for i, (attempt, series) in enumerate(chain):
        if i > 0:
            at = STAGES.index(attempt.resumed_stage) if attempt.resumed_stage in STAGES else len(STAGES)
            step = attempt.resumed_step if attempt.resumed_step is not None else 0
            for key in list(merged):
                s = STAGES.index(stage_of(key)) if stage_of(key) in STAGES else -1
                if s > at:
                    del merged[key]
                elif s == at:
                    merged[key] = {k: v for k, v in merged[key].items() if k <= step}
        for key, points in series.items():
            merged.setdefault(key, {}).update(points)
    return {k: sorted(v.items()) for k, v in merged.items() if v}


def downsample(series: Series, max_points: int) -> Series:
    """Each key evenly downsampled to at most max_points, its last point kept."""
    out = {}
    for k, pts in series.items():
        if len(pts) > max_points:
            stride = len(pts) / max_points
            pts = [pts[int(i * stride)] for i in range(max_points - 1)] + [pts[-1]]
        out[k] = pts
    return out
