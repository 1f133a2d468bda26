"""A fixed sweep snapshot (fixed clock, seeded data) for Pilot and snapshot tests of the app."""

from __future__ import annotations

import os
import time

import pytest
from app_support import NOW, make_snapshot  # noqa: F401  (NOW is used by tests through conftest too)

from usim_tui.app.source import StaticSource
from usim_tui.fleet.clock import VirtualClock


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def source() -> StaticSource:
    snap, series, events = make_snapshot()
    return StaticSource(snap, series, events, in_process=True)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture(autouse=True)
def no_blink(monkeypatch):
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    from textual.widgets import Input
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None, raising=False)


DEMO = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "sweeps" / "demo.yaml"


@pytest.fixture
def demo_ledger(tmp_path):
    """A real ledger with the demo sweep recorded and two attempts: one running with metrics, one loading."""
    from usim_core.sweep import expand
    from usim_tui.fleet.store.ledger import Ledger

    sweep = expand(DEMO)
    led = Ledger(tmp_path / "ledger.sqlite")
    led.ensure_sweep(sweep)
    first, second = sweep.cells[0].name, sweep.cells[1].name
    a1 = led.new_attempt("demo", first, 1, f"usim:demo:{first}:1", str(tmp_path / "r1"), NOW - 600)
    led.set_attempt(a1, state="running", provider_id="local-1", gpu="cpu", price_per_hour=0.35, started_at=NOW - 500,
                    stage="operator", epoch=2, step=120, last_loss=0.05)
    for step in range(0, 120, 10):
        led.add_metrics(a1, step, {"operator/loss": 1.0 / (1 + step), "operator/val_loss": 1.2 / (1 + step)}, NOW - 400)
    led.add_event("demo", NOW - 500, "started", "host up", attempt_id=a1, cell=first)
    led.add_event("demo", NOW - 450, "stage_start", "operator", attempt_id=a1, cell=first)
    a2 = led.new_attempt("demo", second, 1, f"usim:demo:{second}:1", str(tmp_path / "r2"), NOW - 60)
    led.set_attempt(a2, state="loading", provider_id="local-2", price_per_hour=0.35)
    return led, sweep, (a1, a2)
