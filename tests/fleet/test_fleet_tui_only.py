"""The package as a user installs it: the wheel, outside the repository, with only the laptop's `[tui]` extra (no
torch). The shipped sweeps and fault profiles are found by name, the researcher's side rehearses a night and
knows to make the first instance of each architecture its preflight (the canary), the hosts' wheel is packed
from the installed package, and every command that needs torch ends in one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    text = (out.stdout + out.stderr).strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text[-2000:]
    return text


@pytest.mark.slow
def test_the_wheel_outside_the_repository_without_torch(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("usim_sweeps-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "usim_core/configs/sweeps/demo.yaml" in names and "usim_core/configs/faults/seed_night.yaml" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)

    venv = tmp_path / "laptop"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, bin_ = str(venv / "bin/python"), venv / "bin"
    pip = subprocess.run([py, "-m", "pip", "install", "-q", f"{wheel}[tui]"], capture_output=True, text=True,
                         timeout=900, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_ / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=timeout,
                              cwd=work)

    helped = run("usim-tui", "--help")
    assert helped.returncode == 0 and "usim-tui" in helped.stdout and "rehearse" in helped.stdout
    night = run("usim-tui", "rehearse", "overnight_sota", "--faults", "seed_night", "--json")
    assert night.returncode == 0, night.stderr[-2000:]
    assert json.loads(night.stdout)["usim"]["finished"] > 0 and json.loads(night.stdout)["usim"]["overshoot"] == 0
    assert "Warning" not in night.stderr and "Deprecat" not in night.stderr, night.stderr[-2000:]

    probe = subprocess.run([py, "-c", "import importlib.util as u; from usim_tui.fleet.control.preflight import "
                            "torch_available; print(u.find_spec('torch') is None, torch_available())"],
                           capture_output=True, text=True, timeout=120, cwd=work)
    assert probe.stdout.split() == ["True", "False"], probe.stderr   # no torch: preflight goes by canary
    packed = subprocess.run([py, "-c", "from pathlib import Path; from usim_tui.fleet.hosts.wheel import this_usim; "
                             "print(this_usim(Path('hostwheel'))[0])"], capture_output=True, text=True, timeout=300,
                            cwd=work)
    assert packed.returncode == 0, packed.stderr[-2000:]
    host_names = zipfile.ZipFile(packed.stdout.strip()).namelist()
    assert "usim_core/cli.py" in host_names and "usim_tui/fleet/hosts/run_script.sh" in host_names
    assert "usim_core/configs/runs/burgers_tiny.yaml" in host_names
    target = tmp_path / "host"   # pip takes the repacked wheel (its RECORD and metadata are whole)
    assert subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           packed.stdout.strip()], capture_output=True, timeout=300).returncode == 0

    for cmd in (("usim-core", "train", "--config", "burgers_tiny", "--run-dir", "r"),
                ("usim-core", "preflight", "--config", "burgers_tiny"),
                ("usim-core", "datagen", "--nu", "0.01", "--n", "2", "--out", "d.h5")):
        out = run(*cmd)
        assert out.returncode == 3 and "pip install 'usim-sweeps[core]'" in one_line(out), cmd
    local = run("usim-tui", "run", "demo", "--provider", "local", "--headless")
    assert local.returncode == 2 and "no torch" in one_line(local)
