"""The morning commands with no controller running and no Vast key: one line each saying what they did to the
ledger and what they could not do, never a traceback (reproduced on main: a 43-line AuthError)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from usim_core.sweep import expand
from usim_tui.fleet.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
TUI = str(Path(sys.executable).parent / "usim-tui")


def vast_ledger(tmp: Path) -> Path:
    """A Vast sweep's ledger as a crashed controller left it: cell r_c0 has a live instance, r_c1 failed."""
    sweep_path = tmp / "night.yaml"
    sweep_path.write_text(yaml.safe_dump({
        "name": "night", "base": str(REPO / "configs/runs/burgers_tiny.yaml"), "budget": 5.0,
        "provider": {"kind": "vast"}, "rounds": [{"name": "r", "list": {"c0": {"seed": 0}, "c1": {"seed": 1}}}]}))
    path = tmp / "runs" / "night" / "ledger.sqlite"
    path.parent.mkdir(parents=True)
    led = Ledger(path)
    led.ensure_sweep(expand(sweep_path))
    aid = led.new_attempt("night", "r_c0", 1, "usim:night:r_c0:1", "", 1.0)
    led.set_attempt(aid, state="running", provider_id="27071001", price_per_hour=0.3)
    led.set_cell("night", "r_c1", state="failed", reason="exited_error")
    led.close()
    return path


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"}
    env.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "home" / ".config"))   # no key files either
    return subprocess.run([TUI, *args, "--ledger", str(tmp / "runs/night/ledger.sqlite")], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    text = (out.stdout + out.stderr).strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_morning_commands_without_a_controller_or_a_key_say_one_line_each(tmp_path):
    path = vast_ledger(tmp_path)
    out = run(tmp_path, "pause")
    assert out.returncode == 0 and "pause: ok: recorded in the ledger only" in one_line(out)
    assert "VAST_API_KEY" in out.stdout, "says what it could not reach and why"
    assert Ledger(path).sweep_row("night").paused == 1

    out = run(tmp_path, "resume")
    assert out.returncode == 0 and "resume: ok: recorded in the ledger only" in one_line(out)
    assert Ledger(path).sweep_row("night").paused == 0

    out = run(tmp_path, "destroy", "r_c0")
    line = one_line(out)
    assert out.returncode == 1 and "destroy: not done" in line and "27071001" in line and "billing" in line
    assert Ledger(path).attempt(1).state == "running", "nothing pretends the instance is gone"

    out = run(tmp_path, "relaunch", "r_c0")
    assert out.returncode == 1 and "relaunch: not done" in one_line(out)

    out = run(tmp_path, "relaunch", "r_c1")
    assert out.returncode == 0 and "relaunch: ok: recorded in the ledger only" in one_line(out)
    assert Ledger(path).cell("night", "r_c1").state == "pending", "r_c1 runs again when a controller starts"
