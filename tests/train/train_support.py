"""A tiny analytic dataset shaped like usim_core.data's DataBundle, and a tiny config (plain module, so tests and
the synthetic_train.py subprocess can import it)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import yaml

from usim_core.config import RunConfig, validate

TINY = {
    "seed": 3,
    "data": {"nu": [0.01, 0.05]},
    "model": {
        "codec": {"latent_tokens": 4, "latent_dim": 8, "hidden_dim": 16, "depth": 1},
        "operator": {"hidden_dim": 16, "heads": 2, "depth": 1},
        "diffusion": {"hidden_dim": 16, "heads": 2, "depth": 1, "steps": 4},
    },
    "stages": {
        "codec": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "warmup": 0.1, "ema_decay": 0.9},
        "operator": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "unroll": 2, "ema_decay": 0.9},
        "diffusion_residual": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "ema_decay": 0.9},
        "consistency_distill": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "ema_decay": 0.9},
    },
    "eval": {"small": {"enabled": False}, "full": {"enabled": False}},
}


def tiny_config(**stage_overrides) -> RunConfig:
    tree = yaml.safe_load(yaml.safe_dump(TINY))
    for key, value in stage_overrides.items():
        node = tree
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return validate(tree)


def _split(rng: np.random.Generator, n: int, nt: int, nx: int, dt: float) -> SimpleNamespace:
    """Advected, diffusing Fourier modes: u(x, t) = sum_k a_k exp(-nu (2 pi k)^2 t) sin(2 pi k (x - c t) + p_k)."""
    x = np.arange(nx) / nx
    t = np.arange(nt) * dt
    nus = rng.choice([0.01, 0.05], size=n).astype(np.float32)
    u = np.zeros((n, nt, nx), np.float32)
    for i in range(n):
        for k in (1, 2, 3):
            a, ph, c = rng.normal() / k, rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5)
            decay = np.exp(-nus[i] * (2 * np.pi * k) ** 2 * t)[:, None]
            u[i] += (a * decay * np.sin(2 * np.pi * k * (x[None] - c * t[:, None]) + ph)).astype(np.float32)
    return SimpleNamespace(u=u, nu=nus, rows=[("synthetic", i) for i in range(n)])


def make_bundle(n_train: int = 16, n_val: int = 6, nt: int = 10, nx: int = 32, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    dt = 0.05
    train = _split(rng, n_train, nt, nx, dt)
    return SimpleNamespace(
        train=train, val=_split(rng, n_val, nt, nx, dt), test=_split(rng, n_val, nt, nx, dt),
        x=np.arange(nx) / nx, dt=dt,
        stats={"mean": float(train.u.mean()), "std": float(train.u.std())},
        manifest={"synthetic": True}, manifest_hash="synthetic0",
    )
