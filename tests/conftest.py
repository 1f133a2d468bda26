"""Shared test settings: W&B never reaches the network, and runs are isolated in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Tiny models on 2 shared cores: one torch thread per process is many times faster than two.
os.environ.setdefault("USIM_THREADS", "1")
os.environ.pop("WANDB_API_KEY", None)
os.environ.pop("VAST_API_KEY", None)


@pytest.fixture
def repo() -> Path:
    return REPO
