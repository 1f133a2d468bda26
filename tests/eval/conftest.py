"""Shared fixtures: a real tiny training run (session-scoped) and its full eval report.

On this shared 2-core machine torch's intra-op threads contend (2 threads ran ~15x slower than 1).
"""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from usim_core.config import validate
from usim_core.eval.evaluate import evaluate_checkpoint

torch.set_num_threads(1)
os.environ.setdefault("USIM_THREADS", "1")

TINY = {
    "seed": 5,
    "data": {"nu": [0.01]},
    "model": {
        "codec": {"latent_tokens": 4, "latent_dim": 8, "hidden_dim": 16, "depth": 1},
        "operator": {"hidden_dim": 16, "heads": 2, "depth": 1},
        "diffusion": {"hidden_dim": 16, "heads": 2, "depth": 1, "steps": 3},
    },
    "stages": {s: {"epochs": 1, "batch_size": 16, "lr": 3e-3, "max_steps": 12, "ema_decay": 0.5}
               for s in ("codec", "operator", "diffusion_residual", "consistency_distill")},
    "eval": {"small": {"trajectories": 3, "horizons": [1, 3]}, "full": {"horizons": [1, 4, 99]},
             "ttc": {"enabled": True, "candidates": 3, "max_evaluations": 10, "lookahead": 1}},
}
NX, NT, DT = 32, 9, 0.05


def _split(rng: np.random.Generator, tag: str, n: int) -> SimpleNamespace:
    """Advected, decaying Fourier modes; rows are labelled per split so they are disjoint by construction."""
    x, t = np.arange(NX) / NX, np.arange(NT) * DT
    u = np.zeros((n, NT, NX), np.float32)
    for i in range(n):
        for k in (1, 2, 3):
            a, ph, c = rng.normal() / k, rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5)
            u[i] += a * np.exp(-0.01 * (2 * np.pi * k) ** 2 * t)[:, None] * np.sin(
                2 * np.pi * k * (x[None] - c * t[:, None]) + ph)
    return SimpleNamespace(u=u, nu=np.full(n, 0.01, np.float32), rows=[(f"file-{tag}", i) for i in range(n)])


def make_bundle() -> SimpleNamespace:
    rng = np.random.default_rng(0)
    train = _split(rng, "a", 16)
    val, test = _split(rng, "b", 4), _split(rng, "c", 5)
    splits = {name: [list(r) for r in sp.rows] for name, sp in (("train", train), ("val", val), ("test", test))}
    return SimpleNamespace(train=train, val=val, test=test, x=np.arange(NX) / NX, dt=DT,
                           stats={"mean": float(train.u.mean()), "std": float(train.u.std())},
                           manifest={"files": [], "splits": splits}, manifest_hash="m-eval-test")


@pytest.fixture(scope="session")
def tiny_tree() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, SimpleNamespace]:
    from usim_core.eval.fno import save_fno, train_fno
    from usim_core.events import EventLog
    from usim_core.train.run import train_run

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("evalrun") / "cell" / "0"
    bundle = make_bundle()
    train_run(validate(copy.deepcopy(TINY)), run, bundle=bundle, device="cpu", run_evals=False, quiet=True,
              events=EventLog(run, stream=io.StringIO()))
    fno, info = train_fno(bundle.train.u, bundle.train.nu, 0.0, 1.0, budget_s=30, max_steps=3, batch_size=8,
                          hparams={"n_modes": 4, "hidden_channels": 4, "n_layers": 1})
    save_fno(run / "baselines" / "fno.pt", fno, dt=DT, manifest_hash=bundle.manifest_hash,
             train_rows=bundle.train.rows, config_hash="x", info=info)
    return run / "checkpoints" / "consistency_distill.pt", bundle


@pytest.fixture(scope="session")
def full_report(trained) -> dict:
    ckpt, bundle = trained
    return evaluate_checkpoint(ckpt, "test", bundle=bundle, out=ckpt.parent.parent / "eval" / "full.json")


