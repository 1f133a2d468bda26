"""Physics gates on an eval's metrics (no torch): one definition for the app, the report and the docs.

Burgers conserves mass on a periodic domain and viscous Burgers never gains energy, so a surrogate whose
rollout drifts in mass or gains energy fails its gate whatever its nRMSE.
"""

from __future__ import annotations

import math

MASS_TOL = 1e-2    # max_t |∫u_t − ∫u_0| / U (U = RMS of the initial state)
ENERGY_TOL = 1e-3  # Σ_t max(0, E_t − E_{t−1}) / U², E = ∫u²


def gate(metrics: dict[str, float], name: str) -> bool | None:
    """True/False for gate `mass` or `energy`; None when the eval did not report the quantity.

    An explicit `gate_<name>` metric wins over the thresholds.
    """
    if f"gate_{name}" in metrics:
        return bool(metrics[f"gate_{name}"])
    value = metrics.get("mass_drift") if name == "mass" else metrics.get("energy_violation")
    if value is None or not math.isfinite(value):
        return None
    return abs(value) <= MASS_TOL if name == "mass" else value <= ENERGY_TOL


def passes_gates(metrics: dict[str, float]) -> bool | None:
    """Both gates pass (True), one fails (False), or neither can be judged (None)."""
    results = [gate(metrics, "mass"), gate(metrics, "energy")]
    if False in results:
        return False
    return None if None in results else True
