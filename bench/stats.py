"""Summaries the benches share: a mean with its 95% interval."""

from __future__ import annotations

import math
from typing import Any


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and the half-width of its 95% interval (Student t, n - 1 degrees of freedom)."""
    from scipy.stats import t as student

    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    mean = sum(vals) / n if n else None
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n, "values": values}
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return {"mean": mean, "ci95": float(student.ppf(0.975, n - 1) * sd / math.sqrt(n)), "n": n, "values": values}


def paired_bootstrap(diffs: list[float], draws: int = 10000, seed: int = 0) -> dict[str, Any]:
    """The mean of paired differences (one per seed: variant minus reference on the same seed) with its 95%
    percentile interval from resampling the seeds with replacement."""
    import random

    vals = [d for d in diffs if d is not None and math.isfinite(d)]
    n = len(vals)
    mean = sum(vals) / n if n else None
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n, "draws": 0, "values": diffs}
    rng = random.Random(seed)
    boot = sorted(sum(rng.choice(vals) for _ in vals) / n for _ in range(draws))
    return {"mean": mean, "ci95": [boot[int(0.025 * draws)], boot[int(0.975 * draws) - 1]], "n": n, "draws": draws,
            "values": diffs}
