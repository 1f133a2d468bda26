"""Clocks: real time for live runs and end-to-end tests, virtual time for rehearsals (a night in seconds)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock:
    """Time moves only when someone sleeps or advances it; sleeping returns at once."""

    def __init__(self, start: float = 1_761_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class PacedClock(VirtualClock):
    """Virtual time that also waits `pace_s` real seconds per sleep: a rehearsal a person can watch."""

    def __init__(self, pace_s: float, start: float = 1_761_000_000.0) -> None:
        super().__init__(start)
        self.pace_s = pace_s

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(self.pace_s)
