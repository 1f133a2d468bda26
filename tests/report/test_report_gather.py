"""The gathering layer against a real ledger: eval JSONs, W&B links (never the key), phases; and the
Markdown/HTML renderers carrying the same content."""

from __future__ import annotations

import json
import sqlite3

from usim_tui.fleet.store.ledger import Ledger
from usim_tui.report.data import gather, read_eval
from usim_tui.report.doc import Doc, to_html, to_markdown


def test_gather_reads_full_eval_first_and_baselines(demo_ledger):
    path, rollouts = demo_ledger(finished=4)
    led = Ledger(path)
    data = gather(led)
    led.close()
    for c in data.cells:
        assert [e.split for e in c.evals] == ["full", "small"]
        assert c.metrics["nrmse_frame"] == rollouts[c.name]
        assert c.eval.baselines == {"persistence": c.eval.baselines["persistence"]}   # fno is null: left out
        assert c.eval.baselines["persistence"]["nrmse_rollout"] == 0.5
        assert set(c.curves) == {"codec/loss", "codec/val_loss", "operator/loss", "operator/val_loss"}
        assert c.params["hidden_dim"] == 32 and c.train_seconds and c.train_seconds > 0
    for a in data.attempts:
        assert [p.state for p in a.phases] == ["loading", "running", "exited", "destroyed"]
        assert a.phases[0].start == a.created_at and a.phases[-1].start == a.ended_at


def test_null_metrics_of_a_diverged_rollout_are_left_out(tmp_path):
    doc = {"metrics": {"nrmse_rollout": None, "nrmse_1step": 0.1}, "baselines": {}, "ttc": {"enabled": False}}
    (tmp_path / "full.json").write_text(json.dumps(doc))
    rec = read_eval(tmp_path / "full.json")
    assert rec.metrics == {"nrmse_1step": 0.1} and rec.ttc_gain is None and rec.split == "full"
    assert read_eval(tmp_path / "missing.json") is None


def _online(path, entity):
    db = sqlite3.connect(path)
    for name, cfg in db.execute("SELECT name, config_json FROM cells").fetchall():
        cfg = json.loads(cfg)
        cfg["tracking"]["wandb"].update(mode="online", entity=entity, project="usim-demo")
        db.execute("UPDATE cells SET config_json=? WHERE name=?", (json.dumps(cfg), name))
    db.commit()
    db.close()


def test_wandb_links_only_when_online_with_a_key(demo_ledger, monkeypatch, tmp_path):
    path, _ = demo_ledger(finished=1)
    monkeypatch.setenv("HOME", str(tmp_path))          # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    _online(path, "lab")
    led = Ledger(path)
    data = gather(led)
    assert all(c.wandb_url is None for c in data.cells) and "no W&B key" in data.wandb_note
    monkeypatch.setenv("WANDB_API_KEY", "secret-key-123")
    data = gather(led)
    led.close()
    run_ids = dict(sqlite3.connect(path).execute("SELECT name, run_id FROM cells").fetchall())
    for c in data.cells:
        assert c.wandb_url == f"https://wandb.ai/lab/usim-demo/runs/{run_ids[c.name]}"
    from usim_tui.report.render import write_report

    files = write_report(data, tmp_path / "rep", "html")
    for f in files[:2]:
        text = f.read_text()
        assert "secret-key-123" not in text and text.count("wandb.ai/lab/usim-demo/runs/") == len(data.cells)


def test_markdown_and_html_carry_the_same_blocks():
    doc = Doc("T")
    doc.h2("Sec")
    doc.p("a **b** `c` [d](http://e)")
    doc.table(["x|y", "z"], [["1", "<2>"]])
    doc.image("f.png", "alt")
    doc.code("k: v", "yaml")
    md, html = to_markdown(doc), to_html(doc)
    assert "| x\\|y | z |" in md and "![alt](f.png)" in md and "```yaml\nk: v\n```" in md
    assert "<strong>b</strong>" in html and "<code>c</code>" in html and '<a href="http://e">d</a>' in html
    assert "<td>&lt;2&gt;</td>" in html and 'src="f.png"' in html and doc.images() == ["f.png"]


def test_timeline_starts_in_the_first_transitions_from_state():
    """A local attempt is running from creation: its only state event is `running -> exited`."""
    from usim_tui.fleet.store.snapshot import AttemptView, EventView
    from usim_tui.report.data import _phases_from_events

    a = AttemptView(attempt_id=1, cell="c", attempt=1, state="destroyed", reason="finished", provider_id="p",
                    label="usim:s:c:1", gpu="cpu", machine_id="m", price_per_hour=0.35, created_at=100.0,
                    started_at=100.0, ended_at=200.0, stage=None, epoch=None, step=None, last_loss=None)
    events = [EventView(t=190.0, attempt_id=1, cell="c", kind="state", message="c #1: running -> exited",
                        data={"from": "running", "to": "exited"})]
    phases = [(p.state, p.start, p.end) for p in _phases_from_events(a, events, now=300.0)]
    assert phases == [("running", 100.0, 190.0), ("exited", 190.0, 200.0), ("destroyed", 200.0, 200.0)]


def test_val_is_the_eval_whose_own_split_is_val(tmp_path):
    """A config may point eval.small at test: the report then does not rank on it, as usim-core leaderboard."""
    import json

    from report_support import eval_json

    from usim_tui.report.data import read_eval
    from usim_tui.report.model import PRIMARY, CellRecord

    small = eval_json("small", 0.3, 1)
    small["split"] = "test"
    (tmp_path / "small.json").write_text(json.dumps(small))
    (tmp_path / "full.json").write_text(json.dumps(eval_json("full", 0.2, 1)))
    cell = CellRecord(name="c", round="r", state="finished",
                      evals=[read_eval(tmp_path / "full.json"), read_eval(tmp_path / "small.json")])
    assert cell.val is None and cell.val_score(PRIMARY) is None
    small["split"] = "val"
    (tmp_path / "small.json").write_text(json.dumps(small))
    cell.evals[1] = read_eval(tmp_path / "small.json")
    assert cell.val_score(PRIMARY) == 0.3
