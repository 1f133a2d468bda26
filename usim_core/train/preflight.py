"""`usim-core preflight`: before any money is spent, build every model of a config, run a couple of
optimizer steps of every stage on small synthetic data on the CPU (every parameter a stage trains must get a
gradient, as DistributedDataParallel on a multi-GPU host needs), save and reload each stage checkpoint, and roll
the reloaded surrogate out in every mode (a tiny evaluation)."""

from __future__ import annotations

import io
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from usim_core.config import STAGES, ConfigError, RunConfig


def grid_points(cfg: RunConfig, root: Path) -> int:
    """Spatial points the model will see, after data.x_stride. Listed data files must exist and pass the same
    checks training makes of them (layout, coordinates, nu, matching shapes): a file training would refuse is
    refused here, before anything is paid for."""
    d = cfg.data
    if not d.files:
        return math.ceil(d.generate.nx / d.x_stride)
    for i, f in enumerate(d.files):
        path = Path(f) if Path(f).is_absolute() else root / f
        if not path.exists():
            raise ConfigError(f"data.files[{i}]: {path} not found (leave data.files empty to generate data "
                              f"into data.cache_dir)")
    from usim_core.data.prepare import data_files

    return math.ceil(data_files(cfg, root)[0].nx / d.x_stride)


def synthetic_bundle(nx: int, nt: int, nu: list[float], n: int = 4, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = np.arange(nx) / nx
    t = np.arange(nt)[:, None] * 0.05

    def split(m: int, tag: str) -> SimpleNamespace:
        u = np.stack([np.sin(2 * np.pi * (x[None] - 0.3 * t) + rng.uniform(0, 6)) * rng.uniform(0.5, 1.5)
                      for _ in range(m)]).astype(np.float32)
        return SimpleNamespace(u=u, nu=np.resize(np.asarray(nu, np.float32), m), rows=[(tag, i) for i in range(m)])

    train = split(n, "synthetic-train")
    return SimpleNamespace(train=train, val=split(2, "synthetic-val"), test=split(2, "synthetic-test"), x=x, dt=0.05,
                           stats={"mean": float(train.u.mean()), "std": float(train.u.std())},
                           manifest={"synthetic": True}, manifest_hash="preflight")


def preflight_config(cfg: RunConfig) -> RunConfig:
    """Same architecture, two optimizer steps per stage, no tracking."""
    tree = cfg.to_dict()
    for s in STAGES:
        tree["stages"][s].update(epochs=1, max_steps=2)
    tree["tracking"]["wandb"]["mode"] = "disabled"
    out = RunConfig.model_validate(tree)
    assert out.architecture_fingerprint() == cfg.architecture_fingerprint()
    return out


def preflight(cfg: RunConfig, root: str | Path = ".") -> str:
    """Returns a one-line OK summary; raises ConfigError (bad config) or the underlying error."""
    import torch

    from usim_core.events import EventLog
    from usim_core.models.surrogate import MODES, check_architecture
    from usim_core.train.checkpoint import load_surrogate
    from usim_core.train.run import train_run

    t0 = time.perf_counter()
    nx = grid_points(cfg, Path(root))
    check_architecture(cfg, nx)
    small = preflight_config(cfg)
    nt = small.stages.operator.unroll + 3
    bundle = synthetic_bundle(nx, nt, cfg.data.nu)
    with tempfile.TemporaryDirectory(prefix="usim-preflight-") as tmp:
        train_run(small, tmp, bundle=bundle, events=EventLog(tmp, stream=io.StringIO()), device="cpu",
                  run_evals=False, quiet=True)
        u0 = torch.from_numpy(bundle.val.u[:, 0])
        nu = torch.from_numpy(bundle.val.nu)
        dt = torch.full_like(nu, bundle.dt)
        for s in STAGES:
            model, got_cfg, meta = load_surrogate(Path(tmp) / "checkpoints" / f"{s}.pt")
            if got_cfg.architecture_fingerprint() != cfg.architecture_fingerprint() or meta["stage"] != s:
                raise RuntimeError(f"checkpoint {s}.pt does not describe the configured architecture")
        for mode in MODES:  # the last stage's file holds the whole surrogate
            out = model.rollout(u0, nu, dt, 2, mode, generator=torch.Generator().manual_seed(0))
            if out.shape != (u0.shape[0], 3, nx) or not torch.isfinite(out).all():
                raise RuntimeError(f"rollout in mode {mode} gave shape {tuple(out.shape)} or non-finite values")
        eval_note = _tiny_eval(cfg, Path(tmp) / "checkpoints" / f"{STAGES[-1]}.pt", bundle, nt)
    params = sum(p.numel() for p in model.parameters())
    return (f"preflight OK: architecture {cfg.architecture_fingerprint()}, {params / 1e6:.2f}M parameters, "
            f"{nx} grid points, {cfg.model.codec.latent_tokens} tokens, 4 stages x 2 steps (every trained "
            f"parameter gets a gradient: data-parallel ready), checkpoints reloaded, rollouts in {', '.join(MODES)}{eval_note} ({time.perf_counter() - t0:.1f}s)")


def _tiny_eval(cfg: RunConfig, ckpt: Path, bundle: SimpleNamespace, nt: int) -> str:
    """The configured small eval (modes, TTC) on the synthetic val split, through the real evaluator."""
    try:
        from usim_core.eval.evaluate import evaluate_checkpoint
    except ModuleNotFoundError as exc:
        if exc.name == "usim_core.eval.evaluate":
            return "; eval module not installed (eval not checked)"
        raise
    es = cfg.eval.small.model_copy(update={"trajectories": 2, "horizons": [1, nt - 1]})
    report = evaluate_checkpoint(ckpt, "val", eval_set=es, bundle=bundle, pictures=False)
    return f"; tiny eval OK ({', '.join(report.get('modes', {}))})"
