"""The app under load: 1000 instances and 200,000 metric points in a real ledger.

Measures, headless (Textual's run_test), the time to apply one poll's update to the screen (every row
changed: new loss, epoch, sparkline and, the clock moving `--tick` s, time in phase: the worst case) and the peak memory of the process, against the targets (50 ms, 300 MB), plus the
reference in the same process: clearing and rebuilding the table instead of diffing it.
Run: .venv/bin/python bench/tui.py [--instances 1000] [--points 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from usim_core.sweep import expand  # noqa: E402
from usim_tui.app.app import UsimApp  # noqa: E402
from usim_tui.app.messages import SnapshotReady  # noqa: E402
from usim_tui.app.source import LedgerSource  # noqa: E402
from usim_tui.fleet.store.ledger import Ledger  # noqa: E402

TARGET_MS, TARGET_MB = 50.0, 300.0


def build_ledger(path: Path, instances: int, points: int) -> Ledger:
    sweep = expand(ROOT / "configs" / "sweeps" / "demo.yaml")
    template = sweep.cells[0]
    sweep.cells = [dataclasses.replace(template, name=f"round_a_lr{i % 40}e-4_w{i // 40}pct",
                                       tags=["round-a", f"lr={i % 40}e-4", f"warmup={i // 40}%"],
                                       config_hash=f"{i:016x}", duplicate_of=None) for i in range(instances)]
    led = Ledger(path)
    led.ensure_sweep(sweep)
    now = time.time()
    per = points // instances
    for i, cell in enumerate(sweep.cells):
        aid = led.new_attempt(sweep.name, cell.name, 1, f"usim:{sweep.name}:{cell.name}:1", "/tmp/x", now - 3600)
        led.set_attempt(aid, state="running", provider_id=str(10000 + i), gpu="RTX 4090", price_per_hour=0.3,
                        started_at=now - 3000, stage="operator", epoch=3, step=per * 10, last_loss=0.1)
        led.db.executemany("INSERT INTO metrics (attempt_id, step, key, value, t) VALUES (?,?,?,?,?)",
                           [(aid, s * 10, "operator/loss", 1.0 / (1 + s), now) for s in range(per)])
    return led


async def measure(led: Ledger, rounds: int, tick: float) -> dict[str, float]:
    app = UsimApp(LedgerSource(led), poll_interval=3600)
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        while not app.polls:
            await pilot.pause(0.05)
        main = app.main
        app.poll_now = lambda: None  # type: ignore[method-assign]  # no ledger reads inside the timed section
        t = time.perf_counter()
        snap = led.snapshot()
        series = led.metric_series([snap.attempts[0].attempt_id])
        out["read_ms"] = (time.perf_counter() - t) * 1000  # in the poll worker's thread, off the UI
        diff, rebuild, applied = [], [], []
        for k in range(rounds):
            # `tick` s later: the time column (seconds under an hour) moves on every visible row too
            changed = dataclasses.replace(snap, now=snap.now + tick * (k + 1), attempts=tuple(
                dataclasses.replace(a, step=(a.step or 0) + k + 1, last_loss=0.1 / (k + 2), epoch=4 + k,
                                    loss_history=a.loss_history[1:] + (0.1 / (k + 2),))
                for a in snap.attempts))
            # CPU time, not wall time: pilot.pause() also idles until the next frame is due
            t = time.process_time()
            main.on_snapshot_ready(SnapshotReady(changed, series, [], None))
            applied.append((time.process_time() - t) * 1000)
            await pilot.pause()  # the repaint
            diff.append((time.process_time() - t) * 1000)
            t = time.process_time()
            main.table.clear()
            main.table.apply(changed, changed.now, set())
            await pilot.pause()
            rebuild.append((time.process_time() - t) * 1000)
        out["apply_ms"] = statistics.median(diff)
        out["rebuild_ms"] = statistics.median(rebuild)
        out["diff_only_ms"] = statistics.median(applied)
        out["rows"] = main.table.row_count
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tick", type=float, default=1.0, help="seconds between the polls (0: the clock stands still)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        led = build_ledger(Path(tmp) / "ledger.sqlite", args.instances, args.points)
        print(f"ledger: {args.instances} instances, {args.points} metric points ({time.perf_counter() - t:.1f} s to build)")
        r = asyncio.run(measure(led, args.rounds, args.tick))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows on screen                {r['rows']:.0f}   (clock moves {args.tick:g} s per poll)")
    print(f"ledger read (worker thread)   {r['read_ms']:8.1f} ms")
    print(f"apply one poll + repaint, CPU {r['apply_ms']:8.1f} ms   {r['apply_ms'] / TARGET_MS:5.2f} x the {TARGET_MS:.0f} ms target")
    print(f"  of which the diff (no paint) {r['diff_only_ms']:8.1f} ms   the rest is Textual repainting the changed visible cells")
    print(f"reference: clear + rebuild    {r['rebuild_ms']:8.1f} ms   diff is {r['rebuild_ms'] / r['apply_ms']:.2f} x faster")
    print(f"peak memory                   {peak_mb:8.1f} MB   {peak_mb / TARGET_MB:5.2f} x the {TARGET_MB:.0f} MB target")


if __name__ == "__main__":
    main()
