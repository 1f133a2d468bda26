from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

USIM_CORE = [sys.executable, "-m", "usim_core"]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VAST_API_KEY", "WANDB_API_KEY")}
    return subprocess.run([*USIM_CORE, *args], capture_output=True, text=True, timeout=120, env=env)


def test_datagen_with_two_workers_writes_a_complete_pdebench_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "b.h5"
    r = run("datagen", "--nu", "0.1", "--n", "34", "--nx", "64", "--nt", "5", "--t-end", "0.4",
            "--seed", "1", "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "34 trajectories x 5 frames x 64 points" in r.stdout and "solver spectral" in r.stdout
    with h5py.File(out) as f:
        assert f["tensor"].shape == (34, 5, 64) and f.attrs["seed"] == 1
        assert np.isfinite(f["tensor"][()]).all()
    again = run("datagen", "--nu", "0.1", "--out", str(out))
    assert again.returncode == 0 and "exists" in again.stdout


def test_datagen_rejects_bad_arguments_naming_them(tmp_path: Path) -> None:
    r = run("datagen", "--nu", "-1", "--nx", "15", "--out", str(tmp_path / "x.h5"))
    assert r.returncode == 2
    assert "--nu = -1.0 must be > 0" in r.stderr and "--nx = 15 must be an even number >= 16" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_datagen_fills_a_run_configs_cache(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {{nu: [0.05, 0.1], cache_dir: {tmp_path / 'cache'}, "
                   "generate: {n: 4, nx: 32, nt: 3, t_end: 0.1, seed: 0}}\n")
    r = run("datagen", "--config", str(cfg), "--workers", "1")
    assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in (tmp_path / "cache").glob("*.h5"))
    assert len(made) == 2 and made[0].startswith("burgers_nu0.05_n4_32x3_")
    assert "nu=0.1" in r.stdout
    assert run("datagen").returncode == 2
