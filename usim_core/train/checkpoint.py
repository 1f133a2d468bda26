"""Self-describing, atomic checkpoints: one file per stage (<run_dir>/checkpoints/<stage>.pt) plus
<stage>.last.pt while a stage is unfinished. The architecture always comes from the file's own config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from usim_core.config import ConfigError, RunConfig

FORMAT_VERSION = 4  # 4: linear codec path, viscous step; 3: PDE-Refiner corrector and the domain; 2: local patch codec
OLD_FORMATS = {1: "written before the local patch codec", 2: "written before the PDE-Refiner corrector",
               3: "written before the linear codec path and the viscous step"}


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def _stats_dict(stats: Any) -> dict[str, float]:
    if isinstance(stats, dict):
        return {"mean": float(stats["mean"]), "std": float(stats["std"])}
    if hasattr(stats, "to_dict"):
        return {k: float(v) for k, v in stats.to_dict().items()}
    return {"mean": float(stats.mean), "std": float(stats.std)}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def atomic_save(obj: Any, path: str | Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename: a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: str | Path, *, stage: str, step: int, cfg: RunConfig, model: torch.nn.Module,
                    ema: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None, stats: Any,
                    manifest_hash: str, rng: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> None:
    payload = {
        "format_version": FORMAT_VERSION,
        "stage": stage,
        "step": step,
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "architecture_fingerprint": cfg.architecture_fingerprint(),
        "nx": int(model.nx),
        "stats": _stats_dict(stats),
        "manifest_hash": manifest_hash,
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": rng,
        "extra": extra or {},
    }
    atomic_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torn or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        got = ckpt.get("format_version") if isinstance(ckpt, dict) else type(ckpt).__name__
        hint = f" ({OLD_FORMATS[got]}; its weights do not fit this model: retrain)" if got in OLD_FORMATS else ""
        raise CheckpointError(f"{path}: format_version {got!r}, this usim reads {FORMAT_VERSION}{hint}")
    cfg = RunConfig.model_validate(ckpt["config"])
    if cfg.architecture_fingerprint() != ckpt["architecture_fingerprint"]:
        raise CheckpointError(f"{path}: architecture fingerprint {ckpt['architecture_fingerprint']} does not "
                              f"match its own config ({cfg.architecture_fingerprint()}); the file is inconsistent")
    ckpt["cfg"] = cfg
    return ckpt


def load_surrogate(path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True):
    """(Surrogate in eval mode, its RunConfig, meta). Built from the checkpoint's own config, always."""
    from usim_core.data.domain import Domain
    from usim_core.models.surrogate import Surrogate

    ckpt = load_checkpoint(path)
    cfg: RunConfig = ckpt["cfg"]
    extra = ckpt.get("extra", {})
    domain = extra.get("domain")
    if domain is None and cfg.model.operator.viscous_step:
        raise CheckpointError(f"{path}: no domain recorded, and its viscous step needs the data's period length "
                              f"(every trainer writes extra.domain; this file was not written by one)")
    model = Surrogate(cfg, ckpt["nx"], ckpt["stats"], Domain.from_dict(domain).length if domain else 1.0)
    state = ckpt["ema"] if use_ema and ckpt["ema"] is not None else ckpt["model"]
    model.load_state_dict(state)
    model.to(device).eval()
    meta = {
        "stats": ckpt["stats"],
        "manifest_hash": ckpt["manifest_hash"],
        "manifest": extra.get("manifest"),
        "dt": extra.get("dt"),
        "domain": extra.get("domain"),
        "nx": ckpt["nx"],
        "stage": ckpt["stage"],
        "step": ckpt["step"],
        "config_hash": ckpt["config_hash"],
        "architecture_fingerprint": ckpt["architecture_fingerprint"],
        "completed": extra.get("completed", False),
    }
    return model, cfg, meta
