"""The `app` command: how it starts (demo, run, attach, read-only, rehearse) and how it fails."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from usim_core.config import ConfigError, resolve_config
from usim_core.sweep import expand
from usim_tui.app import launch
from usim_tui.app.launch import build
from usim_tui.app.rehearsal import RehearsalSource
from usim_tui.cli import main
from usim_tui.fleet.process import daemon
from usim_tui.fleet.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]


def args(**kw) -> argparse.Namespace:
    base = dict(sweep=None, provider=None, ledger=None, read_only=False, dangerous=False, rehearse=None, poll=1.0,
                controller_poll=None, no_preflight=True, runs="runs")
    return argparse.Namespace(**{**base, **kw})


def test_imports_stay_light():
    code = ("import sys, usim_tui.app.commands; a = 'textual' in sys.modules; import usim_tui.app.app; "
            "print(a, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_demo_sweep_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(launch.DEMO, "sweeps").resolve() == REPO / "configs" / "sweeps" / "demo.yaml"
    with pytest.raises(ConfigError, match="gone: no such file, and no shipped sweep of that name; shipped sweeps: "
                                          "demo, overnight_sota"):
        resolve_config("gone", "sweeps")


def test_missing_ledger_fails_clearly(tmp_path, capsys):
    assert main(["--ledger", str(tmp_path / "nope.sqlite")]) == 2
    assert "nope.sqlite: no such file" in capsys.readouterr().err


def test_unknown_provider_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["configs/sweeps/demo.yaml", "--provider", "aws"])
    assert "invalid choice: 'aws'" in capsys.readouterr().err


def test_read_only_run_and_attach_build_ledger_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = build(args(read_only=True))  # the demo sweep, not run yet: shown from memory, nothing written
    assert app.read_only and not app.source.in_process
    ledger = tmp_path / "runs" / "demo" / "ledger.sqlite"
    assert app.source.snapshot().sweep == "demo" and len(app.source.snapshot().cells) == 4
    assert not ledger.exists() and "has not run" in app.mode, "a read-only view writes nothing"
    Ledger(ledger).ensure_sweep(expand("demo"))
    again = build(args(read_only=True))
    assert again.source.ledger.read_only and again.source.snapshot().sweep == "demo"
    attached = build(args(ledger=str(ledger)))
    assert not attached.read_only and not attached.source.in_process and attached.mode == ""   # a plain attach
    assert attached.source.snapshot().sweep == "demo"


@pytest.mark.slow
def test_running_a_sweep_starts_its_controller_as_its_own_process(tmp_path, monkeypatch):
    """The app starts the sweep's controller as `usim-tui run` does (a detached process holding the ledger),
    attaches to it, and the controller got the W&B key to pass on to instances."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    app = build(args(sweep=str(REPO / "configs" / "sweeps" / "demo.yaml"), runs=str(tmp_path / "runs")))
    ledger = tmp_path / "runs" / "demo" / "ledger.sqlite"
    try:
        pid = daemon.holder(Ledger(ledger)).pid
        assert not app.source.in_process and daemon.is_held(ledger) and f"controller pid {pid} started" in app.source.log[0]
        assert pid != os.getpid() and os.getpgid(pid) != os.getpgid(0)     # its own process group
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"WANDB_API_KEY=" + b"k" * 40 in environ
        again = build(args(sweep=str(REPO / "configs" / "sweeps" / "demo.yaml"), runs=str(tmp_path / "runs")))
        assert daemon.holder(Ledger(ledger)).pid == pid and "already running: attached" in again.source.log[0]
    finally:
        assert main(["stop", "--destroy", "--ledger", str(ledger)]) == 0
    assert not daemon.is_held(ledger)


def test_rehearse_names_a_profile_or_fails_naming_it(tmp_path):
    app = build(args(rehearse="seed_night"))
    assert isinstance(app.source, RehearsalSource) and app.mode == "rehearsal: seed_night"
    assert app.source.curves.path.name == "overnight_sota.json"   # its hosts replay the recorded curves
    with pytest.raises(ConfigError, match="nope"):
        build(args(rehearse=str(tmp_path / "nope.yaml")))


def test_a_failed_start_changes_nothing_on_disk(tmp_path):
    """`usim-tui --provider vast` without a key: one line naming what is missing, exit non-zero, no traceback,
    and neither the existing ledger nor the runs directory is touched."""
    runs = tmp_path / "runs"
    led = Ledger(runs / "demo" / "ledger.sqlite")
    led.ensure_sweep(__import__("usim_core.sweep", fromlist=["expand"]).expand(REPO / "configs/sweeps/demo.yaml"))
    led.close()
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*")}
    env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    out = subprocess.run([sys.executable, "-m", "usim_tui", str(REPO / "configs/sweeps/overnight_sota.yaml"),
                          "--provider", "vast", "--runs", str(runs)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "no Vast.ai API key" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*")} == before      # nothing created or changed
    assert Ledger(runs / "demo" / "ledger.sqlite").sweep_row("demo").provider == "local"
