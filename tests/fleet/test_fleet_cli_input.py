"""Bad input to the command line ends in one line naming the file and what was expected, never a traceback;
shipped sweeps are found by name from any directory (issue 28)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from usim_core.config import SHIPPED
from usim_tui.fleet.process.follow import controller_argv

BIN = Path(sys.executable).parent


def one_line(*cmd: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120, cwd=cwd,
                         env=env or dict(os.environ))
    text = (out.stdout + out.stderr).strip()
    assert out.returncode != 0 and "Traceback" not in text and len(text.splitlines()) == 1, text[-2000:]
    return text


@pytest.fixture
def junk(tmp_path: Path) -> Path:
    (tmp_path / "adir").mkdir()
    with sqlite3.connect(tmp_path / "led.sqlite") as db:   # a small SQLite file that even decodes as text
        db.execute("create table t(x)")
    (tmp_path / "sweep.yaml").write_text("name: x\n")
    (tmp_path / "empty.yaml").write_text("")
    return tmp_path


@pytest.mark.parametrize(("cmd", "says"), [
    (("usim-tui", "rehearse", "adir"), "a directory; expected a YAML file"),
    (("usim-tui", "rehearse", "led.sqlite"), "pass it with --ledger"),
    (("usim-tui", "led.sqlite"), "pass it with --ledger"),
    (("usim-tui", "status", "--ledger", "sweep.yaml"), "not a usim ledger"),
    (("usim-core", "config", "validate", "empty.yaml"), "an empty run config"),
])
def test_bad_input_is_one_line_naming_the_file(junk, cmd, says):
    text = one_line(*cmd, cwd=junk)
    assert says in text and Path(cmd[-1]).name in text, text


def test_a_controller_with_no_vast_key_says_so_in_one_line(junk):
    env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"} | {"HOME": str(junk)}
    text = one_line("usim-tui", "controller", "overnight_sota", "--ledger", str(junk / "l.sqlite"), cwd=junk, env=env)
    assert "no Vast.ai API key" in text
    assert not (junk / "l.sqlite").exists()   # refused before the ledger was made


def test_a_shipped_sweep_named_from_another_directory_reaches_the_controller_as_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(sweep="demo", provider="local", no_preflight=False, poll=None, local_command=None,
                              runs_root="runs")
    argv = controller_argv(args, tmp_path / "runs/demo/ledger.sqlite")
    assert Path(argv[0]) == (SHIPPED / "sweeps" / "demo.yaml").resolve()


@pytest.mark.parametrize("rule", [False, True])
def test_a_sweep_the_budget_cannot_pay_is_refused_with_the_numbers_before_anything_is_written(tmp_path, rule):
    """Planned at $0.35 x 1 h a cell: 4 cells cost $1.40 to the end; with the rule, still more than $0.20."""
    sweep = tmp_path / "big.yaml"
    es = "early_stop: {grace: 12}" if rule else ""
    sweep.write_text(f"""
name: big
base: {SHIPPED / "runs" / "burgers_tiny.yaml"}
budget: 0.20
planning: {{price_per_hour: 0.35, hours_per_cell: 1.0}}
{es}
rounds:
  - name: a
    grid:
      - {{key: stages.operator.lr, name: lr, values: [1.0e-4, 2.0e-4, 3.0e-4, 4.0e-4]}}
""")
    text = one_line("usim-tui", "run", str(sweep), "--headless", cwd=tmp_path)
    assert "4 cells planned at $1.40 to the end" in text and "budget $0.20" in text and "raise budget" in text
    assert ("with early stopping about $" in text) == rule
    assert not (tmp_path / "runs").exists()
