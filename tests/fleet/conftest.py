from __future__ import annotations

from pathlib import Path

import pytest

from usim_core.sweep import expand

DEMO = Path(__file__).resolve().parents[2] / "configs/sweeps/demo.yaml"


@pytest.fixture
def demo_sweep():
    return expand(DEMO)
