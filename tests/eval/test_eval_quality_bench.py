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
    default, long_step = (argparse.Namespace(reread=None, nu=0.01, t_stride=k) for k in (5, 25))
    quality.check_unread(default)          # never read: a final run may
    (tmp_path / "sealed_reads.jsonl").write_text('{"at": "2026-12-07", "reason": "the final table"}\n')  # no regime
    with pytest.raises(SystemExit, match=r"nu 0.01, t-stride 5 was read 1 time\(s\) already.*--dev.*--reread"):
        quality.check_unread(default)
    quality.check_unread(argparse.Namespace(reread="a bug in the table, fixed", nu=0.01, t_stride=5))
    quality.check_unread(long_step)        # each regime has its own sealed set, read once
    with (tmp_path / "sealed_reads.jsonl").open("a") as f:
        f.write('{"at": "2026-12-08", "regime": {"nu": 0.01, "t_stride": 25}, "reason": "the final table"}\n')
    with pytest.raises(SystemExit, match=r"t-stride 25 was read 1 time"):
        quality.check_unread(long_step)
    assert len(set(quality.SEALED.values())) == len(quality.SEALED)   # never one set for two regimes


def test_development_runs_never_take_reread(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quality.py", "--out", "x.json", "--dev", "--reread", "why"])
    with pytest.raises(SystemExit):
        quality.main()
    assert "--dev, --quick and --tune never do" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value", "refusal"), [
    ("--nu", "0.001", "no sealed test set for nu 0.001, t-stride 5: explore it with --dev"),
    ("--t-stride", "10", "no sealed test set for nu 0.01, t-stride 10"),
    ("--t-stride", "3", "must divide 200"), ("--nu", "-1", "must be > 0")])
def test_another_regime_is_explored_on_val_only(monkeypatch, capsys, flag, value, refusal):
    """A final table in a regime without a sealed set of its own (or a bad value) is refused before any work."""
    monkeypatch.setattr(quality, "check_unread", lambda args: pytest.fail("a refused run got as far as the seal"))
    monkeypatch.setattr(sys, "argv", ["quality.py", "--out", "x.json", flag, value])
    with pytest.raises(SystemExit) as exc:
        quality.main()
    assert exc.value.code == 2 and refusal in capsys.readouterr().err


def test_a_development_regime_reaches_the_config():
    args = argparse.Namespace(n=20, geometry="pdebench", nu=0.001, t_stride=25, steps_scale=1.0)
    cfg = quality.config(args, 0)
    assert cfg.data.nu == [0.001] and cfg.data.t_stride == 25


def test_the_best_baseline_and_the_primary_mode_are_chosen_on_val_and_name_rows():
    """The row best on val is the best baseline even where test would pick another; each row's ratio is to the
    best family at its own budget."""
    g = np.random.default_rng(1)

    def row(val: float, test: float, fraction: float) -> dict:
        return {"val": {"nrmse": [val] * 4}, "eval": {"nrmse": list(test * g.lognormal(0, 0.1, 6)),
                                                       "vrmse": [test] * 6, "mass_drift": 0.0},
                "train_cpu_s": 1.0, "fraction": fraction, "flops": fraction * 1e9, "steps": 10,
                "infer": (0.01, 0.001)}

    def seed() -> dict:
        rows = {}
        for f, fs in ((0.5, "0.5"), (1.0, "1")):
            rows |= {f"model:operator@{fs}": row(0.3, 0.3, f), f"model:diffusion@{fs}": row(0.2, 0.4, f),
                     f"model:consistency@{fs}": row(0.25, 0.1, f), f"fno@{fs}": row(0.05, 0.08, f),
                     f"resnet@{fs}": row(0.06, 0.02, f)}
        return {"rows": rows}

    refs = {"persistence": {"eval": {"nrmse": [1.0] * 6, "vrmse": [1.0] * 6, "mass_drift": 0.0},
                            "infer": (1e-5, 1e-6)}}
    out = quality.table(argparse.Namespace(budgets=[0.5, 1.0]), [seed(), seed()], refs)
    names = [r["name"] for r in out["table"]]
    assert out["best_baseline"] == "fno@1" and out["best_baseline"] in names   # val, not test (resnet's 0.02)
    assert out["best_baseline_family"] == "fno" and out["primary_mode"] == "diffusion"
    rows = {r["name"]: r for r in out["table"]}
    assert rows["fno@0.5"]["ratio_to_best_baseline"]["mean"] == 1.0
    assert rows["resnet@1"]["ratio_to_best_baseline"]["ci95"][1] < 1   # better on test, and it says so
