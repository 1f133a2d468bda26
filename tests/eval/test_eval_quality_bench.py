"""The quality bench's statistics and its sealed test set: a paired bootstrap over seeds and trajectories that
finds a real ratio and does not invent one, and a sealed set that is read once, on record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import quality  # noqa: E402
from quality_table import mean_ci, ratio_ci  # noqa: E402


def test_the_paired_bootstrap_finds_a_real_ratio_and_does_not_invent_one():
    g = np.random.default_rng(0)
    base = g.lognormal(-3.5, 0.6, size=(5, 200))            # trajectories differ a lot; seeds a little
    half = 0.5 * base * g.lognormal(0, 0.05, size=base.shape)
    same = ratio_ci(base, base)
    assert same["mean"] == 1.0 and same["ci95"] == [1.0, 1.0] and not same["excludes_1"]
    won = ratio_ci(half, base)
    assert 0.45 < won["ci95"][0] < won["mean"] < won["ci95"][1] < 0.55 and won["excludes_1"]
    noise = base * g.lognormal(0, 0.3, size=base.shape) / np.exp(0.3 ** 2 / 2)   # the same mean, noisier
    tie = ratio_ci(noise, base)
    assert tie["ci95"][0] < 1 < tie["ci95"][1] and not tie["excludes_1"]
    m = mean_ci(base)
    assert m["ci95"][0] < m["mean"] < m["ci95"][1]


def test_the_sealed_test_set_is_read_once_and_every_read_is_on_record(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "SEALED_READS", tmp_path / "sealed_reads.jsonl")
    quality.check_unread(argparse.Namespace(reread=None))          # never read: a final run may
    (tmp_path / "sealed_reads.jsonl").write_text('{"at": "2026-12-07", "reason": "the final table"}\n')
    with pytest.raises(SystemExit, match=r"read 1 time\(s\) already.*--dev.*--reread REASON"):
        quality.check_unread(argparse.Namespace(reread=None))
    quality.check_unread(argparse.Namespace(reread="a bug in the table, fixed"))


def test_development_runs_never_take_reread(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quality.py", "--out", "x.json", "--dev", "--reread", "why"])
    with pytest.raises(SystemExit):
        quality.main()
    assert "--dev, --quick and --tune never do" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value", "refusal"), [("--nu", "0.001", "another than 0.01 needs --dev"),
                                                        ("--t-stride", "25", "another than 5 needs --dev"),
                                                        ("--t-stride", "3", "must divide 200")])
def test_another_regime_is_explored_on_val_only(monkeypatch, capsys, flag, value, refusal):
    """The sealed set and the recipes are at nu 0.01 and 41 frames: a final table in another regime is refused
    before any work."""
    monkeypatch.setattr(quality, "check_unread", lambda args: pytest.fail("a refused run got as far as the seal"))
    monkeypatch.setattr(sys, "argv", ["quality.py", "--out", "x.json", flag, value])
    with pytest.raises(SystemExit) as exc:
        quality.main()
    assert exc.value.code == 2 and refusal in capsys.readouterr().err


def test_a_development_regime_reaches_the_config():
    args = argparse.Namespace(n=20, geometry="pdebench", nu=0.001, t_stride=25, steps_scale=1.0)
    cfg = quality.config(args, 0)
    assert cfg.data.nu == [0.001] and cfg.data.t_stride == 25
