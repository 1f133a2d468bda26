from __future__ import annotations

import io
import json

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
