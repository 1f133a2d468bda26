"""One controller per ledger, as its own process: real `usim-tui` subprocesses, the OS lock, signals."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from usim_tui.fleet.process import daemon
from usim_tui.fleet.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
TUI = str(Path(sys.executable).parent / "usim-tui")
FAKE = Path(__file__).parent / "data" / "fake_trainer.py"
DEMO = str(REPO / "configs/sweeps/demo.yaml")
SLOW = {"FAKE_STEP_S": "8"}   # fake trainers that run ~40 s: no attempt ends (and none launches) while a test acts


def tui(args, cwd, timeout=120, **kw):
    return subprocess.run([TUI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **SLOW}, **kw)


def run_args(*extra):
    return ["run", DEMO, "--headless", "--no-preflight", "--poll", "0.3", "--local-command",
            f"{sys.executable} {FAKE} --config {{config}}", *extra]


def wait_for(pred, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def live(ledger):
    return [a for a in Ledger(ledger).live_attempts("demo") if a.provider_id]


def trainers_alive(tmp):
    """Trainer process groups still running (from each local instance's record)."""
    import json
    out = []
    for f in (tmp / "runs/demo").glob("*/*/instance.json"):
        try:
            os.killpg(json.loads(f.read_text())["pid"], 0)
            out.append(f)
        except (ProcessLookupError, KeyError, ValueError):
            pass
    return out


def first_line(proc: subprocess.Popen) -> str:
    """One line read straight from the pipe: a buffered readline() may take later lines along, and a
    communicate() afterwards (which reads the pipe itself) would never see them."""
    out = b""
    while not out.endswith(b"\n"):
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            break
        out += byte
    return out.decode()


def ctrl_c_reaches_it() -> None:
    """A command typed at a terminal has SIGINT at its default; a test runner started as a background job of a
    non-interactive shell (nohup ... &) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def started(tmp_path):
    """A demo sweep whose detached controller is running two slow fake trainers; cleaned up afterwards."""
    follower = subprocess.Popen([TUI, *run_args()], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **SLOW}, text=True, preexec_fn=ctrl_c_reaches_it)
    ledger = tmp_path / "runs/demo/ledger.sqlite"
    assert "controller pid" in first_line(follower)   # it holds the ledger and follows it
    wait_for(lambda: len(live(ledger)) == 2, what="two live attempts")
    yield tmp_path, ledger, follower
    if daemon.is_held(ledger):
        tui(["stop", "--destroy", "--ledger", str(ledger)], tmp_path)
    follower.kill()
    follower.wait()


@pytest.mark.slow
def test_a_second_controller_on_the_ledger_refuses_naming_the_first(started):
    tmp, ledger, _ = started
    first = daemon.holder(Ledger(ledger)).pid
    out = tui(["controller", DEMO, "--no-preflight", "--ledger", str(ledger)], tmp)
    assert out.returncode == 2
    assert f"pid {first}" in out.stderr and "already runs" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    # a second `run` attaches to the same controller instead of starting another
    proc = subprocess.Popen([TUI, *run_args()], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **SLOW})
    first_line = proc.stdout.readline()
    proc.kill()
    proc.wait()
    assert f"controller pid {first} already running: attached" in first_line
    assert daemon.holder(Ledger(ledger)).pid == first and daemon.is_held(ledger)


@pytest.mark.slow
def test_ctrl_c_stops_without_launching_anything(started):
    """SIGINT to a headless `run` without a terminal, local provider: the sweep is stopped (its trainers
    destroyed, the controller ended) and not one instance is created after the interrupt."""
    tmp, ledger, follower = started
    before = {a.id for a in Ledger(ledger).attempts("demo")}
    follower.send_signal(signal.SIGINT)
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 130, out
    assert "stopped; nothing left running" in out
    led = Ledger(ledger)
    assert {a.id for a in led.attempts("demo")} == before            # nothing launched by the interrupt
    assert not led.live_attempts("demo") and not daemon.is_held(ledger)
    assert {c.state for c in led.snapshot("demo").cells} <= {"pending", "finished"}   # no cell failed by it
    wait_for(lambda: not trainers_alive(tmp), 30, "trainers gone")
    assert led.sweep_row("demo").controller_state == "stopped"


@pytest.mark.slow
def test_ctrl_c_while_the_follower_opens_the_ledger_still_stops(started, monkeypatch, capsys):
    """A Ctrl-C between starting (or attaching to) the controller and following it, here at the follower's
    first journal read, is answered like any other: a local sweep is stopped, no traceback."""
    from usim_tui import cli

    tmp, ledger, _ = started
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(sys, "stdin", io.StringIO())   # no terminal: nobody to ask
    read = Ledger.journal_after

    def interrupt_first_read(self, *a, **kw):
        if not getattr(interrupt_first_read, "sent", False):
            interrupt_first_read.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return read(self, *a, **kw)

    monkeypatch.setattr(Ledger, "journal_after", interrupt_first_read)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as a terminal's command has it
    try:
        code = cli.main(run_args())
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped the follower as a traceback")
    finally:
        signal.signal(signal.SIGINT, previous)
    out = capsys.readouterr().out
    assert interrupt_first_read.sent and code == 130, out
    assert "already running: attached" in out and "stopped; nothing left running" in out
    assert not live(ledger) and not daemon.is_held(ledger)


@pytest.mark.slow
def test_stop_leaves_instances_running_and_says_so_then_a_new_run_takes_them_back(started):
    tmp, ledger, follower = started
    out = tui(["stop", "--ledger", str(ledger)], tmp)
    assert out.returncode == 0 and "LEFT RUNNING" in out.stdout and "usim:demo:" in out.stdout
    assert not daemon.is_held(ledger) and len(live(ledger)) == 2 and len(trainers_alive(tmp)) == 2
    follower.wait(timeout=30)
    proc = subprocess.Popen([TUI, *run_args()], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **SLOW})
    wait_for(lambda: daemon.is_held(ledger), what="a new controller")
    out = tui(["stop", "--destroy", "--ledger", str(ledger)], tmp)
    assert out.returncode == 0 and "nothing is left running" in out.stdout, out.stdout
    proc.wait(timeout=30)
    assert len({a.cell for a in Ledger(ledger).attempts("demo")}) >= 2
    assert all(len([a for a in Ledger(ledger).attempts("demo", c)]) == 1 for c in ("round_a_lr1e-3_w0pct",))
    wait_for(lambda: not trainers_alive(tmp), 30, "trainers gone")


def test_stop_without_a_controller_says_so(tmp_path):
    led = Ledger(tmp_path / "l.sqlite")
    from usim_core.sweep import expand
    led.ensure_sweep(expand(DEMO))
    out = tui(["stop", "--ledger", str(tmp_path / "l.sqlite")], tmp_path)
    assert out.returncode == 0 and "no controller runs demo; nothing is left running" in out.stdout


@pytest.mark.slow
def test_a_killed_controller_is_reported_and_stop_destroy_still_destroys(started):
    """SIGKILL of the controller: `status` says no controller runs and that live instances are unwatched (the
    heartbeat row still says running); `stop --destroy` then destroys them directly."""
    tmp, ledger, follower = started
    os.kill(daemon.holder(Ledger(ledger)).pid, signal.SIGKILL)
    wait_for(lambda: not daemon.is_held(ledger), 10, "the lock to drop")
    out = tui(["status", "--ledger", str(ledger)], tmp)
    assert "controller: none running" in out.stdout and "2 live instance(s) unwatched" in out.stdout, out.stdout
    out = tui(["stop", "--destroy", "--ledger", str(ledger)], tmp)
    assert out.returncode == 0 and "destroying its instances directly" in out.stdout
    assert "nothing is left running" in out.stdout, out.stdout
    wait_for(lambda: not trainers_alive(tmp), 30, "trainers gone")
