"""Executing instances run on a real clock: the real Vast's unkindness (faults.VastRealism) at seconds instead of
minutes, so an end-to-end test meets every kind of it (listings that lag creates, SSH refused after running, the
bare SSH environment, either reliability field) within its time. Slow creates and dead SSH have tests of their
own."""

from __future__ import annotations

from usim_tui.emulator.faults import Chance, FaultProfile, Timed, VastRealism

HOSTILE_FAST = FaultProfile(name="hostile-fast", vast=VastRealism(
    listing_lag_s=(1.0, 3.0), slow_create=Timed(), ssh_refused_s=(1.0, 3.0), ssh_dead=Chance(), bare_ssh_env=True,
    reliability_field="mixed"))
