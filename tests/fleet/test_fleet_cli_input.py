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
