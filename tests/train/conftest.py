"""Shared fixtures: a tiny analytic dataset shaped like usim_core.data's DataBundle, and a tiny config."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from train_support import make_bundle

os.environ.setdefault("USIM_THREADS", "1")  # tiny models: one thread beats two contended ones
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundle() -> SimpleNamespace:
    return make_bundle()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
