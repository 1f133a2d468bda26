"""One stage: AdamW with warmup + cosine, accumulation, clipping, EMA, bf16 autocast on CUDA, a validation
loss (EMA weights) every epoch with early stopping on it, a `<stage>.last.pt` every epoch for exact resume,
and the final `<stage>.pt` (best-validation EMA weights copied into the model). Under torchrun every rank runs
this loop on its share of each batch (train/parallel.py) and rank 0 writes the checkpoints."""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usim_core.config import RunConfig
from usim_core.data.domain import domain_of
from usim_core.models.surrogate import STAGE_MODULES, Surrogate
from usim_core.train.augment import augment
from usim_core.train.batches import Windows, windows
from usim_core.train.checkpoint import load_checkpoint, rng_state, save_checkpoint
from usim_core.train.ema import copy_modules, ema_update
from usim_core.train.losses import (
    STAGE_LOSS,
    STAGE_VAL_LOSS,
    fit_increment_scale,
    fit_residual_stats,
    stage_horizon,
)
from usim_core.train.parallel import Part, StageForward, reduce_sum, wrap
from usim_core.train.ranks import Ranks
from usim_core.train.schedule import lr_at

VAL_CAP = 512  # validation windows per epoch (a fixed subset), so val stays cheap on big splits
LOGS_PER_EPOCH = 4


@dataclass
class RunContext:
    cfg: RunConfig
    run_dir: Path
    bundle: Any
    device: torch.device
    emit: Callable[..., Any]                    # EventLog.emit-like
    log_metrics: Callable[[dict[str, Any]], None]
    step_offset: dict[str, int] = field(default_factory=dict)  # global step at each stage's start
    ranks: Ranks = field(default_factory=Ranks)                # one process unless torchrun started several

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"


def stage_seed(seed: int, stage: str, epoch: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(stage.encode()) * 1009 + epoch) % (2**63)


def plan_steps(cfg: RunConfig, stage: str, n_train: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps of the stage)."""
    sc = getattr(cfg.stages, stage)
    per_epoch = math.ceil(n_train / (sc.batch_size * sc.accum_steps))
    total = per_epoch * sc.epochs
    return per_epoch, min(total, sc.max_steps) if sc.max_steps else total


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def validate(ctx: RunContext, stage: str, model: Surrogate, data: Windows) -> float:
    model.eval()
    loss_fn = STAGE_VAL_LOSS[stage]
    gen = torch.Generator().manual_seed(stage_seed(ctx.cfg.seed, stage, -1))
    rows = torch.randperm(len(data), generator=gen)[:VAL_CAP]
    bs = getattr(ctx.cfg.stages, stage).batch_size
    total, count = 0.0, 0
    for i in range(0, len(rows), bs):
        part = Part.of(len(rows[i:i + bs]), ctx.ranks)
        u, nu, dt = data.batch(part.take(rows[i:i + bs]), ctx.device)
        with _autocast(ctx.device):
            loss = loss_fn(model, u, nu, dt, ctx.cfg, gen, part)
        total += float(loss) * part.n
        count += part.n
    total, count = reduce_sum([total, count], ctx.device)
    return total / max(count, 1)


@torch.no_grad()
def val_rollout_score(ctx: RunContext, model: Surrogate) -> float:
    """The operator's per-frame rollout nRMSE on the val trajectories the primary mode is chosen on (the small
    eval's, eval/evaluate.py select_on_val, with its seed): what picks a sweep's champion, each epoch."""
    from usim_core.eval.evaluate import rollout_nrmse_frame

    model.eval()
    val = ctx.bundle.val
    n = min(ctx.cfg.eval.small.trajectories or len(val.u), len(val.u))
    u = torch.as_tensor(val.u[:n], dtype=torch.float32, device=ctx.device)
    nu = torch.as_tensor(val.nu[:n], dtype=torch.float32, device=ctx.device)
    dom = domain_of(ctx.bundle)
    return rollout_nrmse_frame(model, u, nu, dom.dt, "operator", ctx.cfg.seed, length=dom.length)


def _prepare_stage(ctx: RunContext, stage: str, model: Surrogate, ema: Surrogate, train: Windows) -> None:
    if stage == "operator":
        pairs = windows(ctx.bundle.train, 1, ctx.bundle.dt)
        rows = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(ctx.cfg.seed))[:2048]
        u, nu, _ = pairs.batch(rows, ctx.device)
        fit_increment_scale(model, u, nu)
        ema.operator.dz_scale.copy_(model.operator.dz_scale)
    if stage == "diffusion_residual":
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(ctx.cfg.seed))[:2048]
        fit_residual_stats(model, *train.batch(rows, ctx.device))
        ema.r_mean.copy_(model.r_mean)
        ema.r_std.copy_(model.r_std)
    if stage == "consistency_distill":  # the student starts as its teacher
        model.student.load_state_dict(model.denoiser.state_dict())
        ema.student.load_state_dict(model.denoiser.state_dict())


@dataclass
class StageRun:
    """The moving parts of one stage while it trains."""

    stage: str
    model: Surrogate
    ema: Surrogate
    train: Windows
    val: Windows
    params: list[torch.nn.Parameter]
    forward: torch.nn.Module    # the stage's loss; DistributedDataParallel around it under torchrun
    opt: torch.optim.Optimizer
    per_epoch: int
    total: int
    state: dict[str, Any]
    cpu_start: float = field(default_factory=time.process_time)

    def cpu_s(self, device: torch.device) -> float:
        """Process CPU seconds of this stage's training, across resumes and summed over ranks."""
        return self.state.get("cpu_base", 0.0) + reduce_sum([time.process_time() - self.cpu_start], device)[0]


def _setup_stage(ctx: RunContext, stage: str, model: Surrogate, ema: Surrogate, resume_from: Path | None
                 ) -> StageRun:
    sc = getattr(ctx.cfg.stages, stage)
    horizon = stage_horizon(stage, ctx.cfg)
    train = windows(ctx.bundle.train, horizon, ctx.bundle.dt, sc.initial_repeat, sc.initial_span)
    val = windows(ctx.bundle.val, horizon, ctx.bundle.dt)
    per_epoch, total = plan_steps(ctx.cfg, stage, len(train))
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for name in STAGE_MODULES[stage] for p in getattr(model, name).parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=sc.lr, betas=tuple(sc.betas), weight_decay=sc.weight_decay)
    state = {"epoch": 0, "step": 0, "best_val": math.inf, "best_score": math.inf, "bad_epochs": 0, "stopped": False,
             "best": None, "cpu_base": 0.0}
    if resume_from is not None:
        ck = load_checkpoint(resume_from, map_location=ctx.device)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        state.update(ck["extra"]["loop"])
        state["cpu_base"] = float(ck["extra"].get("cpu_s", 0.0))
    else:
        _prepare_stage(ctx, stage, model, ema, train)
    forward = wrap(StageForward(model, STAGE_LOSS[stage], ctx.cfg), ctx.device)
    return StageRun(stage, model, ema, train, val, params, forward, opt, per_epoch, total, state)


def run_stage(ctx: RunContext, stage: str, model: Surrogate, ema: Surrogate, resume_from: Path | None = None,
              on_epoch: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    sc = getattr(ctx.cfg.stages, stage)
    run = _setup_stage(ctx, stage, model, ema, resume_from)
    state = run.state
    offset = ctx.step_offset.get(stage, 0)
    initial: dict[str, Any] = {}
    if resume_from is None:  # the untrained stage's validation loss: the baseline its training must beat
        initial = {"val_loss_initial": validate(ctx, stage, ema, run.val)}
        ctx.log_metrics({"step": offset, "stage": stage, "stage_step": 0,
                         f"val/{stage}/loss": initial["val_loss_initial"]})
    ctx.emit("stage_start", stage=stage, epochs=sc.epochs, steps=run.total, steps_per_epoch=run.per_epoch,
             resumed_at_step=state["step"] if resume_from else None, **initial)
    while state["epoch"] < sc.epochs and state["step"] < run.total and not state["stopped"]:
        epoch = state["epoch"]
        train_loss = _train_epoch(ctx, run, epoch, offset)
        _end_epoch(ctx, run, epoch, offset, train_loss)
        if on_epoch:
            on_epoch(stage, epoch)
    return _finish_stage(ctx, run)


def _train_epoch(ctx: RunContext, run: StageRun, epoch: int, offset: int) -> float:
    """One pass over the shuffled training windows (or until the step cap); returns the last step's loss."""
    cfg, dev, stage, state = ctx.cfg, ctx.device, run.stage, run.state
    sc = getattr(cfg.stages, stage)
    gen = torch.Generator().manual_seed(stage_seed(cfg.seed, stage, epoch))
    perm = torch.randperm(len(run.train), generator=gen)
    run.model.train()
    length = domain_of(ctx.bundle).length   # the augmentation's period, fixed for the run
    log_every = max(1, run.per_epoch // LOGS_PER_EPOCH)
    samples, t_mark, pos, train_loss = 0, time.perf_counter(), 0, math.nan
    while pos < len(perm) and state["step"] < run.total:
        step = state["step"]
        lr = lr_at(step, run.total, sc.lr, sc.warmup, sc.min_lr)
        for g in run.opt.param_groups:
            g["lr"] = lr
        run.opt.zero_grad(set_to_none=True)
        acc = 0.0
        micro = min(sc.accum_steps, math.ceil((len(perm) - pos) / sc.batch_size))
        for i in range(micro):
            rows = perm[pos:pos + sc.batch_size]
            pos += sc.batch_size
            part = Part.of(len(rows), ctx.ranks)
            u, nu, dt = run.train.batch(part.take(rows), dev)
            u = augment(u, dt, length, gen, sc.reflect, sc.galilean, part)  # as is when both off
            # DDP averages gradients over ranks on the last micro-batch's backward only
            sync = run.forward.no_sync() if i < micro - 1 and hasattr(run.forward, "no_sync") \
                else contextlib.nullcontext()
            with sync:
                with _autocast(dev):
                    loss = run.forward(u, nu, dt, gen, part) * part.weight / sc.accum_steps
                loss.backward()
            acc += float(loss.detach())
            samples += len(rows)
        if step == 0:
            _check_gradients(run)
        clip = sc.grad_clip if sc.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, clip))
        run.opt.step()
        ema_update(run.ema, run.model, STAGE_MODULES[stage], sc.ema_decay, step)
        state["step"] = step + 1
        train_loss = acc  # this rank's weighted share of the batch's loss; the whole batch's where it is logged
        if state["step"] % log_every == 0:
            now = time.perf_counter()
            metrics = {f"train/{stage}/loss": _whole_batch(ctx, acc), "lr": lr, "grad_norm": grad_norm,
                       "samples_per_s": samples / max(now - t_mark, 1e-9), "epoch": epoch}
            samples, t_mark = 0, now
            ctx.log_metrics({"step": offset + state["step"], "stage": stage, "stage_step": state["step"], **metrics})
            ctx.emit("metric", stage=stage, epoch=epoch, step=state["step"], total_steps=run.total, metrics=metrics)
    return _whole_batch(ctx, train_loss)


def _whole_batch(ctx: RunContext, share: float) -> float:
    """The whole batch's loss from each rank's weighted share (the loss itself in one process)."""
    return reduce_sum([share], ctx.device)[0] / ctx.ranks.world


def _check_gradients(run: StageRun) -> None:
    """Every parameter a stage trains must get a gradient: DistributedDataParallel needs it (preflight checks it
    on the CPU, before a multi-GPU host is rented), and a parameter without one is a modelling bug anyway."""
    names = {id(p): n for n, p in run.model.named_parameters()}
    unused = [names[id(p)] for p in run.params if p.grad is None]
    if unused:
        raise RuntimeError(f"stage {run.stage}: {len(unused)} trained parameters get no gradient from its loss "
                           f"(e.g. {', '.join(unused[:3])})")


def _end_epoch(ctx: RunContext, run: StageRun, epoch: int, offset: int, train_loss: float) -> None:
    """Validation (EMA weights), early stopping, and the resumable `<stage>.last.pt`."""
    stage, state = run.stage, run.state
    sc = getattr(ctx.cfg.stages, stage)
    val_loss = validate(ctx, stage, run.ema, run.val)
    if val_loss < state["best_val"]:
        state["best_val"], state["bad_epochs"] = val_loss, 0
        # a copy: ema_update changes the EMA's tensors in place, and state_dict() shares them
        state["best"] = {n: {k: v.detach().clone() for k, v in getattr(run.ema, n).state_dict().items()}
                         for n in STAGE_MODULES[stage]}
    else:
        state["bad_epochs"] += 1
        state["stopped"] = state["bad_epochs"] >= sc.patience
    state["epoch"] = epoch + 1
    metrics = {f"train/{stage}/loss": train_loss, f"val/{stage}/loss": val_loss,
               f"val/{stage}/best": state["best_val"], "epoch": epoch}
    if stage == "operator":   # the selection's own score, for a rule that stops losing cells early (fleet)
        score = val_rollout_score(ctx, run.ema)
        state["best_score"] = min(state["best_score"], score)
        metrics |= {"val/operator/nrmse_frame": score, "val/operator/best_nrmse_frame": state["best_score"]}
    ctx.log_metrics({"step": offset + state["step"], "stage": stage, "stage_step": state["step"], **metrics})
    ctx.emit("metric", stage=stage, epoch=epoch, step=state["step"], total_steps=run.total, metrics=metrics)
    _save(ctx, ctx.ckpt_dir / f"{stage}.last.pt", stage, state, run.model, run.ema, run.opt, completed=False,
          cpu_s=run.cpu_s(ctx.device))


def _finish_stage(ctx: RunContext, run: StageRun) -> dict[str, Any]:
    """The stage's result: its best-validation EMA weights, in both the model and the EMA copy."""
    stage, state, modules = run.stage, run.state, STAGE_MODULES[run.stage]
    if state["best"] is not None:
        for n in modules:
            getattr(run.ema, n).load_state_dict(state["best"][n])
    copy_modules(run.model, run.ema, modules)
    final = ctx.ckpt_dir / f"{stage}.pt"
    cpu_s = run.cpu_s(ctx.device)
    _save(ctx, final, stage, state, run.model, run.ema, None, completed=True, cpu_s=cpu_s)
    if ctx.ranks.main:
        (ctx.ckpt_dir / f"{stage}.last.pt").unlink(missing_ok=True)
    summary = {"stage": stage, "step": state["step"], "epochs_run": state["epoch"],
               "best_val": None if math.isinf(state["best_val"]) else state["best_val"],
               "stopped_early": state["stopped"], "checkpoint": str(final)}
    ctx.emit("stage_end", **summary)
    return {**summary, "cpu_s": cpu_s}


def _save(ctx: RunContext, path: Path, stage: str, state: dict[str, Any], model: Surrogate, ema: Surrogate,
          opt: torch.optim.Optimizer | None, completed: bool, cpu_s: float = 0.0) -> None:
    if not ctx.ranks.main:  # every rank holds the same state; one writes it
        return
    b = ctx.bundle
    loop = {k: v for k, v in state.items() if k != "cpu_base" and (completed is False or k != "best")}
    save_checkpoint(path, stage=stage, step=state["step"], cfg=ctx.cfg, model=model, ema=ema, optimizer=opt,
                    stats=b.stats, manifest_hash=b.manifest_hash, rng=rng_state(),
                    extra={"loop": loop, "completed": completed, "dt": float(b.dt), "cpu_s": round(cpu_s, 3),
                           "domain": domain_of(b).to_dict(),
                           "manifest": getattr(b, "manifest", None)})
