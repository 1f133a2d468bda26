"""Evaluate a checkpoint in physical space on a trajectory-disjoint split; write the eval JSON and pictures.

The architecture always comes from the checkpoint's own config; the eval set may change only what is
evaluated (split, trajectories, horizons, modes, TTC). Refuses a checkpoint whose training rows intersect the
rows being evaluated, or whose domain (length, dt) differs from the data's. The primary mode is chosen on the
val split (select_on_val), never on the split being reported. Beside the modes: persistence, the FNO, the
coarse-solver reference (coarse.py) and the corrector's own diagnostics (stages.py); costs are process CPU
seconds per trajectory.
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
from usim_core.data.domain import Domain, check_same_domain, domain_of
from usim_core.eval import metrics as M
from usim_core.eval.coarse import coarse_reference
from usim_core.eval.fno import rows_hash
from usim_core.eval.rollout import MODES, one_step, rollout
from usim_core.eval.schema import METRIC_KEYS, SCHEMA_VERSION, clean, validate_report
from usim_core.eval.selection import beats_operator, paired_gain
from usim_core.eval.stages import corrector_diagnostics

# modes a checkpoint can run, by the last stage it finished
STAGE_MODES = {
    "codec": (),
    "operator": ("operator",),
    "diffusion_residual": ("operator", "diffusion"),
    "consistency_distill": ("operator", "diffusion", "consistency"),
}
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


def _true_residual(u: Tensor, nu: Tensor, dt: float, length: float) -> float | None:
    """The data's own pde_residual at this frame spacing: what a perfect prediction would score."""
    u64 = u.double().cpu()
    return clean(float(M.pde_residual(u64[:, 1:], u64[:, 0], dt, nu.double().cpu(), length).mean()))


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
                ttc: dict | None = None, length: float = 1.0, cpu_s: float | None = None) -> dict[str, Any]:
    """pred (B, T, nx) rollout frames 1..T; one (B, T, nx) teacher-forced one-step predictions; u (B, T+1, nx);
    cpu_s: process CPU seconds of the rollout per trajectory."""
    pred, one, u, nu = (t.detach().double().cpu() for t in (pred, one, u, nu))
    true, u0 = u[:, 1:], u[:, 0]
    per_traj = M.trajectory_metrics(pred, true, u0, dt, nu, length)
    per_traj["nrmse_1step"] = M.nrmse_per_frame(one, true, u0).mean(-1)
    avg = {k: clean(v) for k, v in M.average(per_traj).items()}
    curve = [clean(float(v)) for v in M.nrmse_per_frame(pred, true, u0).mean(0)]
    return {"metrics": {k: avg[k] for k in METRIC_KEYS},
            "nrmse_by_horizon": {str(h): curve[h - 1] for h in horizons},
            "nrmse_curve": curve, "ttc": ttc, "cpu_s_per_traj": cpu_s}


def _ttc_result(mode: str, cfg: TTCConfig, stats: Any, without: float | None, with_: float | None) -> dict:
    gain = (without - with_) / without if without and with_ is not None else None
    distinct = len(set(torch.stack(stats.choices).flatten().tolist())) if stats.choices else 0
    return {"mode": mode, "candidates": cfg.candidates, "max_evaluations": cfg.max_evaluations,
            "lookahead": cfg.lookahead, "evaluations": float(stats.evaluations.double().mean()),
            "max_evaluations_spent": int(stats.evaluations.max()), "scored_steps": stats.scored_steps,
            "distinct_choices": distinct, "nrmse_rollout_without": without, "nrmse_rollout_with": with_,
            "gain": gain}


def timed_rollout(model: Any, u: Tensor, nu: Tensor, dt: float, mode: str, seed: int,
                  ttc: TTCConfig | None = None, length: float = 1.0) -> tuple[Tensor, Any, float]:
    """(frames 1..T, TTC stats, process CPU seconds per trajectory) of a rollout from u[:, 0]."""
    gen = torch.Generator(u.device).manual_seed(seed)
    start = time.process_time()
    pred, stats = rollout(model, u[:, 0], nu, torch.full_like(nu, dt), u.shape[1] - 1, mode, ttc=ttc,
                          generator=gen, length=length)
    return pred, stats, (time.process_time() - start) / u.shape[0]


def rollout_nrmse_per_trajectory(model: Any, u: Tensor, nu: Tensor, dt: float, mode: str, seed: int,
                                 length: float = 1.0) -> Tensor:
    """Per-frame rollout nRMSE from u[:, 0] of each trajectory of u (mean over its frames), (B,) float64."""
    pred, _, _ = timed_rollout(model, u, nu, dt, mode, seed, length=length)
    return _frame_nrmse_per_trajectory(pred, u)


def _frame_nrmse_per_trajectory(pred: Tensor, u: Tensor) -> Tensor:
    u64 = u.double().cpu()
    return M.nrmse_per_frame(pred.double().cpu(), u64[:, 1:], u64[:, 0]).mean(-1)


def rollout_nrmse_frame(model: Any, u: Tensor, nu: Tensor, dt: float, mode: str, seed: int,
                        length: float = 1.0) -> float:
    """Per-frame rollout nRMSE from u[:, 0] over the trajectories u (mean over frames and trajectories)."""
    return float(rollout_nrmse_per_trajectory(model, u, nu, dt, mode, seed, length).mean())


def _fno_baseline(path: Path, rows: list, split: str, u: Tensor, nu: Tensor, dom: Domain, horizons: list[int],
                  device: str) -> tuple[dict | None, str | None, Tensor | None]:
    if not path.exists():
        return None, f"no FNO baseline at {path} (train one: usim-core baseline fno)", None
    from usim_core.eval.fno import load_fno

    model, meta = load_fno(path)
    if abs(float(meta["dt"]) - dom.dt) > 1e-9:
        return None, f"{path}: trained with dt {meta['dt']} but this split has dt {dom.dt}", None
    if abs(float(meta.get("length", 1.0)) - dom.length) > 1e-9:
        return None, f"{path}: trained on domain length {meta.get('length', 1.0)} but the data has {dom.length}", None
    check_disjoint({(str(r[0]), int(r[1])) for r in meta["train_rows"]}, rows, str(path), split)
    model.to(device)
    pred, _, cpu = timed_rollout(model, u, nu, dom.dt, "operator", 0, length=dom.length)
    one = _one_step_chunked(model, u, nu, torch.full_like(nu, dom.dt), "operator", 0)
    return mode_result(pred, one, u, nu, dom.dt, horizons, length=dom.length, cpu_s=cpu), None, pred


def _split_tensors(data: Any, n: int, device: str) -> tuple[Tensor, Tensor]:
    return (torch.as_tensor(data.u[:n], dtype=torch.float32, device=device),
            torch.as_tensor(data.nu[:n], dtype=torch.float32, device=device))


def select_on_val(model: Any, cfg: Any, meta: dict, bundle: Any, device: str, dom: Domain,
                  done: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """The primary mode, chosen on the VAL split only (never on test): the operator, unless a stochastic mode
    beats it there by more than MIN_GAIN and by more than the trajectories' noise (selection.beats_operator).
    `done`: rollout frames already computed on these val rows, by mode."""
    available = [m for m in MODES if m in STAGE_MODES.get(meta["stage"], ())]
    val = bundle.val
    n = min(cfg.eval.small.trajectories or len(val.rows), len(val.rows))
    check_disjoint(train_rows(meta, bundle), [tuple(r) for r in val.rows[:n]], "selection on val", "val")
    u, nu = _split_tensors(val, n, device)
    per_traj: dict[str, Tensor] = {}
    for mode in available:
        if done and mode in done:
            per_traj[mode] = _frame_nrmse_per_trajectory(done[mode], u)
        else:
            per_traj[mode] = rollout_nrmse_per_trajectory(model, u, nu, dom.dt, mode,
                                                          cfg.seed + 1000 * MODES.index(mode), length=dom.length)
    scores = {m: clean(float(v.mean())) for m, v in per_traj.items()}
    op = per_traj.get("operator")
    others = [m for m in per_traj if m != "operator"]
    paired = {m: paired_gain(op, per_traj[m]) for m in others} if op is not None else {}
    beats = {m: op is not None and beats_operator(op, per_traj[m], paired[m]) for m in others}
    primary = min([m for m, b in beats.items() if b] or ["operator"], key=lambda m: scores[m] or 0.0)
    return {"split": "val", "trajectories": n, "nrmse_frame": scores, "beats_operator": beats,
            "gain_over_operator": paired, "primary_mode": primary if available else None}


def _run_modes(model: Any, cfg: Any, u: Tensor, nu: Tensor, dom: Domain, horizons: list[int], wanted: list[str],
               stage: str, use_ttc: bool, say: Callable[[str], None]
               ) -> tuple[dict[str, Any], dict[str, str], dict[str, Tensor]]:
    """(results per mode incl. <mode>+ttc, skipped modes with the reason, rollout frames per mode)."""
    available = STAGE_MODES.get(stage, ())
    modes: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    preds: dict[str, Tensor] = {}
    ttc_cfg = cfg.eval.ttc
    for mode in wanted:
        if mode not in available:
            skipped[mode] = f"checkpoint stage {stage!r} has no {mode} model"
            continue
        seed = cfg.seed + 1000 * MODES.index(mode)
        say(f"{mode}: rollout of {u.shape[0]} trajectories x {u.shape[1] - 1} steps")
        pred, _, cpu = timed_rollout(model, u, nu, dom.dt, mode, seed, length=dom.length)
        one = _one_step_chunked(model, u, nu, torch.full_like(nu, dom.dt), mode, seed)
        modes[mode] = mode_result(pred, one, u, nu, dom.dt, horizons, length=dom.length, cpu_s=cpu)
        preds[mode] = pred
        if mode == "operator":
            continue
        if not use_ttc:
            skipped[f"{mode}+ttc"] = "TTC disabled (eval.ttc.enabled false or --no-ttc)"
            continue
        say(f"{mode}+ttc: {ttc_cfg.candidates} candidates, {ttc_cfg.max_evaluations} evaluations/trajectory")
        pred_t, stats, cpu_t = timed_rollout(model, u, nu, dom.dt, mode, seed, ttc=ttc_cfg, length=dom.length)
        res = mode_result(pred_t, one, u, nu, dom.dt, horizons, length=dom.length, cpu_s=cpu_t)
        res["ttc"] = _ttc_result(mode, ttc_cfg, stats, modes[mode]["metrics"]["nrmse_rollout"],
                                 res["metrics"]["nrmse_rollout"])
        modes[f"{mode}+ttc"] = res
    return modes, skipped, preds


def _load(checkpoint: Path, split: str, device: str, bundle: Any, say: Callable[[str], None]
          ) -> tuple[Any, Any, dict, Any, Domain]:
    from usim_core.train.checkpoint import load_surrogate

    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: allowed values are val, test")
    model, cfg, meta = load_surrogate(checkpoint, device)
    if bundle is None:
        from usim_core.data import prepare_data

        say("preparing data")
        bundle = prepare_data(cfg)
    data = getattr(bundle, split)
    if data.u.shape[-1] != int(meta["nx"]):
        raise ConfigError(f"{checkpoint}: trained on {meta['nx']} grid points but the {split} data has "
                          f"{data.u.shape[-1]}; the data settings changed since training")
    dom = domain_of(bundle)
    check_same_domain(meta.get("domain"), dom, str(checkpoint))
    return model, cfg, meta, bundle, dom


def evaluate_checkpoint(checkpoint: str | Path, split: str = "val", *, eval_set: EvalSetConfig | None = None,
                        ttc: bool | None = None, out: str | Path | None = None, device: str = "cpu",
                        progress: Callable[[str], None] | None = None, bundle: Any = None,
                        name: str | None = None, pictures: bool = True) -> dict[str, Any]:
    """The eval JSON (also written to `out`, with PNGs beside it). `bundle` skips prepare_data (tests, bench)."""
    t0 = time.time()
    say = progress or (lambda _msg: None)
    checkpoint = Path(checkpoint)
    model, cfg, meta, bundle, dom = _load(checkpoint, split, device, bundle, say)
    es = (eval_set or (cfg.eval.full if split == "test" else cfg.eval.small)).model_copy(update={"split": split})
    use_ttc = cfg.eval.ttc.enabled if ttc is None else ttc
    data = getattr(bundle, split)
    n = min(es.trajectories or len(data.rows), len(data.rows))
    rows = [tuple(r) for r in data.rows[:n]]
    check_disjoint(train_rows(meta, bundle), rows, str(checkpoint), split)
    u, nu = _split_tensors(data, n, device)
    steps = u.shape[1] - 1
    horizons = sorted({h for h in es.horizons if 1 <= h <= steps} | {steps})
    available = STAGE_MODES.get(meta["stage"], ())
    if not any(m in available for m in es.modes):
        raise ConfigError(f"{checkpoint}: stage {meta['stage']!r} supports none of the eval modes {es.modes}")
    run = lambda wanted: _run_modes(model, cfg, u, nu, dom, horizons, wanted, meta["stage"], use_ttc, say)  # noqa: E731
    n_sel = min(cfg.eval.small.trajectories or len(bundle.val.rows), len(bundle.val.rows))
    if split == "val" and n == n_sel:  # the selection's own rows: reuse the rollouts
        modes, skipped, preds = run(list(dict.fromkeys([*es.modes, *(m for m in MODES if m in available)])))
        selection = select_on_val(model, cfg, meta, bundle, device, dom, done=preds)
    else:
        say("selecting the primary mode on val")
        selection = select_on_val(model, cfg, meta, bundle, device, dom)
        modes, skipped, preds = run(list(dict.fromkeys([*es.modes, selection["primary_mode"]])))
    say("baselines")
    baselines = _baselines(checkpoint, rows, split, u, nu, dom, horizons, device,
                           modes[selection["primary_mode"]]["cpu_s_per_traj"])
    report = _report(checkpoint, name or (Path(out).stem if out else "eval"), meta, bundle, split, rows, n,
                     steps, horizons, dom, model, u, nu, selection, modes, skipped, baselines, cfg, use_ttc)
    report["corrector"] = corrector_diagnostics(model, u, nu, dom.dt, meta["stage"], cfg.seed)
    return _finish(report, out, pictures, u, preds, baselines.pop("_fno_pred"), dom.dt, t0)


def _baselines(checkpoint: Path, rows: list, split: str, u: Tensor, nu: Tensor, dom: Domain, horizons: list[int],
               device: str, model_cpu: float | None) -> dict[str, Any]:
    steps = u.shape[1] - 1
    persistence = u[:, :1].expand(-1, steps, -1)
    out: dict[str, Any] = {"persistence": mode_result(persistence, u[:, :-1], u, nu, dom.dt, horizons,
                                                      length=dom.length, cpu_s=0.0)}
    fno, note, fno_pred = _fno_baseline(checkpoint.parent.parent / "baselines" / "fno.pt", rows, split, u, nu,
                                        dom, horizons, device)
    out["fno"], out["fno_note"], out["_fno_pred"] = fno, note, fno_pred
    out["coarse_solver"] = coarse_reference(u, nu, dom.dt, dom.length, model_cpu)
    return out


def _report(checkpoint: Path, name: str, meta: dict, bundle: Any, split: str, rows: list, n: int, steps: int,
            horizons: list[int], dom: Domain, model: Any, u: Tensor, nu: Tensor, selection: dict,
            modes: dict, skipped: dict, baselines: dict, cfg: Any, use_ttc: bool) -> dict[str, Any]:
    primary = selection["primary_mode"]
    ttc_cfg = cfg.eval.ttc
    ttc_modes = [m for m in (f"{primary}+ttc", "consistency+ttc", "diffusion+ttc") if m in modes]
    ttc_main = modes[ttc_modes[0]]["ttc"] if ttc_modes else None
    return {
        "schema_version": SCHEMA_VERSION, "name": name, "checkpoint": str(checkpoint), "stage": meta["stage"],
        "step": int(meta["step"]), "config_hash": meta["config_hash"],
        "architecture": meta["architecture_fingerprint"], "manifest_hash": bundle.manifest_hash,
        "checkpoint_manifest_hash": str(meta["manifest_hash"]),
        "split": split, "rows_hash": rows_hash(rows), "trajectories": n, "steps": steps, "horizons": horizons,
        "dt": dom.dt, "domain": dom.to_dict(), "codec_nrmse": codec_nrmse(model, u, nu),
        "pde_residual_true": _true_residual(u, nu, dom.dt, dom.length), "primary_mode": primary,
        "selection": selection, "metrics": modes[primary]["metrics"],
        "model_cpu_s_per_traj": modes[primary]["cpu_s_per_traj"], "modes": modes,
        "skipped_modes": skipped, "baselines": baselines,
        "ttc": {"enabled": bool(use_ttc and ttc_main), "candidates": ttc_cfg.candidates,
                "max_evaluations": ttc_cfg.max_evaluations,
                "evaluations": ttc_main["evaluations"] if ttc_main else 0.0,
                "gain": ttc_main["gain"] if ttc_main else None, "mode": ttc_main["mode"] if ttc_main else None},
        "pictures": [], "seconds": 0.0,
    }


def _finish(report: dict, out: str | Path | None, pictures: bool, u: Tensor, preds: dict, fno_pred: Tensor | None,
            dt: float, t0: float) -> dict[str, Any]:
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if pictures:
            primary = report["primary_mode"]
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
