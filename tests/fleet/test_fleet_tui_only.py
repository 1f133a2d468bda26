"""A laptop with only `usim-sweeps[tui]` (no torch): the researcher's side installs, rehearses a night, and
knows to make the first instance of each architecture its preflight (the canary) instead of running one here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tui_only_install_rehearses_and_preflights_by_canary(tmp_path):
    venv = tmp_path / "tui-only"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", f"{REPO}[tui]"],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    py = str(venv / "bin/python")
    probe = subprocess.run([py, "-c", "import importlib.util as u; from usim_tui.fleet.control.preflight import "
                            "torch_available; print(u.find_spec('torch') is None, torch_available())"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert probe.stdout.split() == ["True", "False"], probe.stderr   # no torch: preflight goes by canary
    build = subprocess.run([py, "-c", f"from usim_tui.fleet.hosts.wheel import build_wheel; "
                            f"print(build_wheel(__import__('pathlib').Path({str(REPO)!r}), "
                            f"__import__('pathlib').Path({str(tmp_path / 'wheel')!r}))[0].name)"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert build.returncode == 0 and build.stdout.strip().startswith("usim_sweeps-"), build.stderr[-1500:]
    out = subprocess.run([str(venv / "bin/usim-tui"), "rehearse", str(REPO / "configs/sweeps/overnight_sota.yaml"),
                          "--faults", str(REPO / "configs/faults/seed_night.yaml"), "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    night = json.loads(out.stdout)
    assert night["usim"]["finished"] > 0 and night["usim"]["overshoot"] == 0
