from __future__ import annotations

import io
import json
from pathlib import Path

from usim_core.events import PREFIX, EventLog, format_event, parse_line, parse_lines, read_events


def test_event_round_trip_through_stdout_and_file(tmp_path):
    out = io.StringIO()
    log = EventLog(tmp_path, stream=out)
    log.emit("started", cell="c1")
    log.emit("metric", stage="operator", step=3, metrics={"train/operator/loss": 0.5})
    lines = out.getvalue().splitlines()
    assert all(line.startswith(PREFIX) for line in lines)
    from_stdout = parse_lines(out.getvalue())
    from_file = read_events(tmp_path)
    assert [e["kind"] for e in from_stdout] == ["started", "metric"] == [e["kind"] for e in from_file]
    assert from_file[1]["metrics"]["train/operator/loss"] == 0.5


def test_parse_tolerates_log_prefixes_and_noise():
    line = "2026-11-24T01:00:00Z stdout " + format_event("done", step=7)
    assert parse_line(line)["kind"] == "done"
    assert parse_line("plain log line") is None
    assert parse_line(PREFIX + "{not json") is None
    assert parse_line(PREFIX + json.dumps([1, 2])) is None


def test_torn_last_line_is_skipped(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"kind": "started"}\n{"kind": "met')
    assert [e["kind"] for e in read_events(tmp_path)] == ["started"]


def test_every_event_a_real_run_writes_has_its_declared_fields(tmp_path):
    """The event shapes are declared once (usim_core/events.py KINDS); the trainer writes them as declared."""
    import subprocess
    import sys

    from usim_core.events import KINDS, read_events

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "include: " + str(Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml") + "\n"
        "data: {generate: {n: 12}, cache_dir: " + str(tmp_path / "data") + "}\n"
        "stages: {codec: {max_steps: 2}, operator: {max_steps: 2}, diffusion_residual: {max_steps: 2},\n"
        "         consistency_distill: {max_steps: 2}}\n"
        "eval: {small: {trajectories: 2, horizons: [1]}, full: {enabled: false}, ttc: {enabled: false}}\n"
        "tracking: {wandb: {mode: disabled}}\n")
    out = subprocess.run([sys.executable, "-m", "usim_core", "train", "--config", str(cfg), "--run-dir",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "USIM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    events = read_events(tmp_path / "run")
    assert {e["kind"] for e in events} >= {"started", "stage_start", "metric", "stage_end", "eval", "done"}
    for e in events:
        shape = KINDS.get(e["kind"])
        assert shape is not None, f"undeclared event kind {e['kind']!r}"
        missing = shape.__required_keys__ - e.keys()
        assert not missing, f"{e['kind']} lacks {sorted(missing)}: {e}"
