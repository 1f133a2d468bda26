"""Evaluate a checkpoint in physical space on a trajectory-disjoint split; write the eval JSON and pictures.

The architecture always comes from the checkpoint's own config; the eval set may change only what is
evaluated (split, trajectories, horizons, modes, TTC). Refuses a checkpoint whose training rows intersect the
rows being evaluated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from usim_core.config import ConfigError, EvalSetConfig, TTCConfig
from usim_core.eval import metrics as M
from usim_core.eval.fno import rows_hash
from usim_core.eval.rollout import one_step, rollout
from usim_core.eval.schema import METRIC_KEYS, clean, validate_report

# modes a checkpoint can run, by the last stage it finished
STAGE_MODES = {
    "codec": (),
    "operator": ("operator",),
    "diffusion_residual": ("operator", "diffusion"),
    "consistency_distill": ("operator", "diffusion", "consistency"),
}
PRIMARY_ORDER = ("consistency", "diffusion", "operator")  # the richest deployable mode is the headline
ONE_STEP_CHUNK = 1024  # frames per one-step batch


def train_rows(meta: dict[str, Any], bundle: Any) -> set[tuple[str, int]] | None:
    """The training rows the checkpoint was fitted on: from its stored manifest, or, when the checkpoint only
    has the manifest hash and it equals the data's, the data's own train split. None = unknown."""
    man = meta.get("manifest") or {}
    splits = (man.get("splits") or man.get("rows")) if isinstance(man, dict) else None
    train = splits.get("train") if isinstance(splits, dict) else None  # [[file hash, row], ...]
    if isinstance(train, dict):
        train = train.get("rows")
    if train is not None:
        return {(str(r[0]), int(r[1])) for r in train}
    if meta.get("manifest_hash") == bundle.manifest_hash:
        return {(str(r[0]), int(r[1])) for r in bundle.train.rows}
    return None


def check_disjoint(train: set[tuple[str, int]] | None, rows: list, what: str, split: str) -> None:
    if train is None:
        raise ConfigError(f"{what}: carries no training rows and its manifest hash differs from the data's; "
                          f"cannot prove the {split} split is disjoint from its training data")
    overlap = sorted(train & {(str(r[0]), int(r[1])) for r in rows})
    if overlap:
        shown = ", ".join(f"{h[:12]}#{i}" for h, i in overlap[:5])
        raise ConfigError(f"{what}: {len(overlap)} of the {len(rows)} {split} trajectories were in its training "
                          f"data (file hash#row: {shown}{', ...' if len(overlap) > 5 else ''}); the evaluation "
                          f"would be contaminated. Evaluate on data disjoint from the checkpoint's manifest.")


def _true_residual(u: Tensor, nu: Tensor, dt: float) -> float | None:
    """The data's own pde_residual at this frame spacing: what a perfect prediction would score."""
    u64 = u.double().cpu()
    return clean(float(M.pde_residual(u64[:, 1:], u64[:, 0], dt, nu.double().cpu()).mean()))


@torch.no_grad()
def codec_nrmse(model: Any, u: Tensor, nu: Tensor) -> float | None:
    """Mean per-frame nRMSE of decode(encode(u)): the floor under every latent mode's error."""
    b, t, nx = u.shape
    rec = model.decode(model.encode(u.reshape(-1, nx), nu.repeat_interleave(t))).reshape(b, t, nx)
    u64 = u.double().cpu()
    return clean(float(M.nrmse_per_frame(rec.double().cpu(), u64, u64[:, 0]).mean()))


def _one_step_chunked(model: Any, u: Tensor, nu: Tensor, dt: Tensor, mode: str, seed: int) -> Tensor:
    per = max(1, ONE_STEP_CHUNK // max(1, u.shape[1] - 1))
    gen = torch.Generator(device=u.device).manual_seed(seed)
    return torch.cat([one_step(model, u[i:i + per], nu[i:i + per], dt[i:i + per], mode, gen)
                      for i in range(0, u.shape[0], per)])


def mode_result(pred: Tensor, one: Tensor, u: Tensor, nu: Tensor, dt: float, horizons: list[int],
                ttc: dict | None = None) -> dict[str, Any]:
    """pred (B, T, nx) rollout frames 1..T; one (B, T, nx) teacher-forced one-step predictions; u (B, T+1, nx)."""
    pred, one, u, nu = (t.detach().double().cpu() for t in (pred, one, u, nu))
    true, u0 = u[:, 1:], u[:, 0]
    per_traj = M.trajectory_metrics(pred, true, u0, dt, nu)
    per_traj["nrmse_1step"] = M.nrmse_per_frame(one, true, u0).mean(-1)
    avg = {k: clean(v) for k, v in M.average(per_traj).items()}
    curve = [clean(float(v)) for v in M.nrmse_per_frame(pred, true, u0).mean(0)]
    return {"metrics": {k: avg[k] for k in METRIC_KEYS},
            "nrmse_by_horizon": {str(h): curve[h - 1] for h in horizons},
            "nrmse_curve": curve, "ttc": ttc}


def _ttc_result(mode: str, cfg: TTCConfig, stats: Any, without: float | None, with_: float | None) -> dict:
    gain = (without - with_) / without if without and with_ is not None else None
    distinct = len(set(torch.stack(stats.choices).flatten().tolist())) if stats.choices else 0
    return {"mode": mode, "candidates": cfg.candidates, "max_evaluations": cfg.max_evaluations,
            "lookahead": cfg.lookahead, "evaluations": float(stats.evaluations.double().mean()),
            "max_evaluations_spent": int(stats.evaluations.max()), "scored_steps": stats.scored_steps,
            "distinct_choices": distinct, "nrmse_rollout_without": without, "nrmse_rollout_with": with_,
            "gain": gain}


def _fno_baseline(path: Path, rows: list, split: str, u: Tensor, nu: Tensor, dt: float, horizons: list[int],
                  device: str) -> tuple[dict | None, str | None, Tensor | None]:
    if not path.exists():
        return None, f"no FNO baseline at {path} (train one: usim-core baseline fno)", None
    from usim_core.eval.fno import load_fno

    model, meta = load_fno(path)
    if abs(float(meta["dt"]) - dt) > 1e-9:
        return None, f"{path}: trained with dt {meta['dt']} but this split has dt {dt}", None
    check_disjoint({(str(r[0]), int(r[1])) for r in meta["train_rows"]}, rows, str(path), split)
    model.to(device)
    dts = torch.full_like(nu, dt)
    pred, _ = rollout(model, u[:, 0], nu, dts, u.shape[1] - 1)
    one = _one_step_chunked(model, u, nu, dts, "operator", 0)
    return mode_result(pred, one, u, nu, dt, horizons), None, pred


def evaluate_checkpoint(checkpoint: str | Path, split: str = "val", *, eval_set: EvalSetConfig | None = None,
                        ttc: bool | None = None, out: str | Path | None = None, device: str = "cpu",
                        progress: Callable[[str], None] | None = None, bundle: Any = None,
                        name: str | None = None, pictures: bool = True) -> dict[str, Any]:
    """The eval JSON (also written to `out`, with PNGs beside it). `bundle` skips prepare_data (tests, bench)."""
    from usim_core.train.checkpoint import load_surrogate

    t0 = time.time()
    say = progress or (lambda _msg: None)
    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: allowed values are val, test")
    checkpoint = Path(checkpoint)
    model, cfg, meta = load_surrogate(checkpoint, device)
    es = (eval_set or (cfg.eval.full if split == "test" else cfg.eval.small)).model_copy(update={"split": split})
    ttc_cfg = cfg.eval.ttc
    use_ttc = ttc_cfg.enabled if ttc is None else ttc
    if bundle is None:
        from usim_core.data import prepare_data

        say("preparing data")
        bundle = prepare_data(cfg)
    data = getattr(bundle, split)
    if data.u.shape[-1] != int(meta["nx"]):
        raise ConfigError(f"{checkpoint}: trained on {meta['nx']} grid points but the {split} data has "
                          f"{data.u.shape[-1]}; the data settings changed since training")
    n = min(es.trajectories or len(data.rows), len(data.rows))
    rows = [tuple(r) for r in data.rows[:n]]
    check_disjoint(train_rows(meta, bundle), rows, str(checkpoint), split)

    u = torch.as_tensor(data.u[:n], dtype=torch.float32, device=device)
    nu = torch.as_tensor(data.nu[:n], dtype=torch.float32, device=device)
    dt = float(bundle.dt)
    dts = torch.full_like(nu, dt)
    steps = u.shape[1] - 1
    horizons = sorted({h for h in es.horizons if 1 <= h <= steps} | {steps})
    available = STAGE_MODES.get(meta["stage"], ())
    modes: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    preds: dict[str, Tensor] = {}
    for i, mode in enumerate(es.modes):
        if mode not in available:
            skipped[mode] = f"checkpoint stage {meta['stage']!r} has no {mode} model"
            continue
        seed = cfg.seed + 1000 * i
        say(f"{mode}: rollout of {n} trajectories x {steps} steps")
        pred, _ = rollout(model, u[:, 0], nu, dts, steps, mode, generator=torch.Generator(device).manual_seed(seed))
        one = _one_step_chunked(model, u, nu, dts, mode, seed)
        modes[mode] = mode_result(pred, one, u, nu, dt, horizons)
        preds[mode] = pred
        if mode == "operator":
            continue
        if not use_ttc:
            skipped[f"{mode}+ttc"] = "TTC disabled (eval.ttc.enabled false or --no-ttc)"
            continue
        say(f"{mode}+ttc: {ttc_cfg.candidates} candidates, {ttc_cfg.max_evaluations} evaluations/trajectory")
        pred_t, stats = rollout(model, u[:, 0], nu, dts, steps, mode, ttc=ttc_cfg,
                                generator=torch.Generator(device).manual_seed(seed))
        res = mode_result(pred_t, one, u, nu, dt, horizons)
        res["ttc"] = _ttc_result(mode, ttc_cfg, stats, modes[mode]["metrics"]["nrmse_rollout"],
                                 res["metrics"]["nrmse_rollout"])
        modes[f"{mode}+ttc"] = res
    if not modes:
        raise ConfigError(f"{checkpoint}: stage {meta['stage']!r} supports none of the eval modes {es.modes}")

    persistence = u[:, :1].expand(-1, steps, -1)
    baselines: dict[str, Any] = {"persistence": mode_result(persistence, u[:, :-1], u, nu, dt, horizons)}
    say("baselines")
    fno, note, fno_pred = _fno_baseline(checkpoint.parent.parent / "baselines" / "fno.pt", rows, split, u, nu,
                                        dt, horizons, device)
    baselines["fno"], baselines["fno_note"] = fno, note

    primary = next(m for m in PRIMARY_ORDER if m in modes)
    ttc_modes = [m for m in (f"{primary}+ttc", "consistency+ttc", "diffusion+ttc") if m in modes]
    ttc_main = modes[ttc_modes[0]]["ttc"] if ttc_modes else None
    name = name or (Path(out).stem if out else "eval")
    report: dict[str, Any] = {
        "schema_version": 1, "name": name, "checkpoint": str(checkpoint), "stage": meta["stage"],
        "step": int(meta["step"]), "config_hash": meta["config_hash"],
        "architecture": meta["architecture_fingerprint"], "manifest_hash": bundle.manifest_hash,
        "checkpoint_manifest_hash": str(meta["manifest_hash"]),
        "split": split, "rows_hash": rows_hash(rows), "trajectories": n, "steps": steps, "horizons": horizons,
        "dt": dt, "codec_nrmse": codec_nrmse(model, u, nu), "pde_residual_true": _true_residual(u, nu, dt), "primary_mode": primary, "metrics": modes[primary]["metrics"], "modes": modes,
        "skipped_modes": skipped, "baselines": baselines,
        "ttc": {"enabled": bool(use_ttc and ttc_main), "candidates": ttc_cfg.candidates,
                "max_evaluations": ttc_cfg.max_evaluations,
                "evaluations": ttc_main["evaluations"] if ttc_main else 0.0,
                "gain": ttc_main["gain"] if ttc_main else None, "mode": ttc_main["mode"] if ttc_main else None},
        "pictures": [], "seconds": 0.0,
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if pictures:
            report["pictures"] = _pictures(out, u, preds[primary], primary, fno_pred, report, dt)
    report["seconds"] = round(time.time() - t0, 2)
    validate_report(report)
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, out)
    return report


def _pictures(out: Path, u: Tensor, pred: Tensor, label: str, fno_pred: Tensor | None, report: dict,
              dt: float) -> list[str]:
    from usim_core.eval.plots import error_png, fields_png

    full = torch.cat([u[:, :1], pred], dim=1).cpu().numpy()
    paths = [fields_png(out.with_name(f"{out.stem}_fields.png"), u.cpu().numpy(), full, label, dt)]
    curves = {m: r["nrmse_curve"] for m, r in report["modes"].items()}
    curves["persistence"] = report["baselines"]["persistence"]["nrmse_curve"]
    if fno_pred is not None:
        curves["fno"] = report["baselines"]["fno"]["nrmse_curve"]
    paths.append(error_png(out.with_name(f"{out.stem}_error.png"), curves, dt))
    return [p.name for p in paths]
