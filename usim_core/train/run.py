"""The run driver behind `usim-core train`: data, stages in order (resuming where asked), evaluations,
and the progress protocol from `started` to exactly one `done` or `error`. Under torchrun every rank trains
(train/parallel.py); rank 0 alone writes the run directory and runs the evaluations, after the others have left
the process group."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import torch

from usim_core.config import STAGES, ConfigError, RunConfig, check_batch_split, save_config
from usim_core.data.domain import domain_of
from usim_core.events import EventLog
from usim_core.models.surrogate import Surrogate
from usim_core.train import parallel
from usim_core.train.checkpoint import load_checkpoint
from usim_core.train.loop import RunContext, plan_steps, run_stage
from usim_core.train.losses import stage_horizon
from usim_core.train.progress import Display, MetricsFile
from usim_core.train.ranks import Ranks
from usim_core.train.tracking import Tracker


def set_threads(ranks: Ranks = Ranks()) -> None:
    """USIM_THREADS (default: all cores, shared by the processes on this host); local sweeps run two trainers
    side by side."""
    n = os.environ.get("USIM_THREADS")
    torch.set_num_threads(max(1, int(n)) if n else max(1, (os.cpu_count() or 1) // ranks.local_world))


def pick_device(name: str, ranks: Ranks = Ranks()) -> torch.device:
    """The device by name; under torchrun on CUDA, this process's GPU (cuda:LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if ranks.parallel:
        if ranks.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started {ranks.local_world} processes on this host but it has "
                              f"{torch.cuda.device_count()} CUDA devices: give --nproc-per-node at most that")
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cuda")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int | float):
            out[key] = v
    return out


def load_bundle(cfg: RunConfig):
    from usim_core.data import prepare_data

    return prepare_data(cfg)


def train_run(cfg: RunConfig, run_dir: str | Path, *, stage: str | None = None, resume: bool = False,
              device: str = "auto", bundle: Any = None, events: EventLog | None = None,
              run_evals: bool = True, quiet: bool = False, ranks: Ranks = Ranks()) -> dict[str, Any]:
    """Train the stages (all, or just `stage`) and run the configured evals. Raises on failure; the caller
    turns exceptions into the `error` event. `ranks`: this process's place under torchrun (one process by
    default); only rank 0 writes, and only rank 0 returns the `done` event (the others return {})."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    events = events or EventLog(run_dir)
    display = Display(run_dir / "train.log" if ranks.main else Path(os.devnull), quiet=quiet or not ranks.main)
    tracker = None
    t0 = time.time()

    def emit(kind: str, **fields: Any) -> dict[str, Any]:
        ev = events.emit(kind, **fields)
        display.on_event(kind, ev)
        return ev

    try:
        _check_start(cfg, run_dir, stage, resume, ranks)
        set_threads(ranks)
        dev = pick_device(device, ranks)
        parallel.start(ranks, dev)
        emit("started", config_hash=cfg.config_hash(), architecture=cfg.architecture_fingerprint(),
             device=str(dev), resume=resume, stage=stage, pid=os.getpid(), threads=torch.get_num_threads(),
             processes=ranks.world)
        if bundle is None:
            bundle = load_bundle(cfg)
        tracker = Tracker(cfg, run_dir) if ranks.main else None
        metrics_file = MetricsFile(run_dir)

        def log_metrics(rec: dict[str, Any]) -> None:
            if tracker is not None:  # rank 0
                metrics_file.write(rec)
                tracker.log(rec)

        ctx = RunContext(cfg, run_dir, bundle, dev, emit, log_metrics, ranks=ranks)
        selected = STAGES if stage is None else (stage,)
        _train_stages(ctx, selected, resume, tracker)
        parallel.stop()  # evaluation is rank 0's alone; the other ranks are done
        if not ranks.main:
            return {}
        final_ckpt = ctx.ckpt_dir / f"{selected[-1]}.pt"
        if run_evals and selected[-1] == STAGES[-1]:
            _evaluate(cfg, run_dir, final_ckpt, str(dev), emit, tracker, bundle)
        done = emit("done", checkpoint=str(final_ckpt), seconds=round(time.time() - t0, 1))
        if tracker:
            tracker.finish(0)
        return done
    except BaseException:
        if tracker:
            tracker.finish(1)
        raise
    finally:
        display.close()


def _check_start(cfg: RunConfig, run_dir: Path, stage: str | None, resume: bool, ranks: Ranks) -> None:
    """Refuse a bad --stage, a batch smaller than the processes, or a resume with another config; write the
    resolved config (rank 0)."""
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: allowed values are {', '.join(STAGES)}")
    check_batch_split(cfg, ranks.world, "the processes torchrun started")
    if not ranks.main:
        return
    cfg_path = run_dir / "config.yaml"
    if resume and cfg_path.exists():
        from usim_core.config import load_config

        old = load_config(cfg_path)
        if old.config_hash() != cfg.config_hash():
            raise ConfigError(f"{cfg_path}: --resume with a different config (hash {cfg.config_hash()} vs "
                              f"{old.config_hash()} in the run dir); use a new --run-dir")
    save_config(cfg, cfg_path)


def _train_stages(ctx: RunContext, selected: tuple[str, ...], resume: bool, tracker: Tracker | None) -> None:
    """Each selected stage in order: earlier stages loaded, finished ones skipped on resume."""
    cfg, bundle, dev = ctx.cfg, ctx.bundle, ctx.device
    offset = 0
    for s in STAGES:
        ctx.step_offset[s] = offset
        n = bundle.train.u.shape[0] * (bundle.train.u.shape[1] - stage_horizon(s, cfg))
        offset += plan_steps(cfg, s, n)[1]
    torch.manual_seed(cfg.seed)
    model = Surrogate(cfg, int(bundle.train.u.shape[-1]), bundle.stats, domain_of(bundle).length).to(dev)
    ema = copy.deepcopy(model)
    for s in STAGES:
        final = ctx.ckpt_dir / f"{s}.pt"
        last = ctx.ckpt_dir / f"{s}.last.pt"
        if s not in selected:
            if STAGES.index(s) < STAGES.index(selected[0]):
                _load_into(final, model, ema, dev, needed_by=selected[0])
            continue
        if resume and final.exists():
            _load_into(final, model, ema, dev)
            ctx.emit("stage_end", stage=s, step=load_checkpoint(final)["step"], skipped=True, checkpoint=str(final))
            continue
        run_stage(ctx, s, model, ema, resume_from=last if resume and last.exists() else None)
        if tracker:
            tracker.artifact(final, s)


def training_cpu_seconds(run_dir: str | Path) -> float | None:
    """Process CPU seconds the run's finished stages took to train (from their checkpoints); None if none."""
    total, found = 0.0, False
    for s in STAGES:
        path = Path(run_dir) / "checkpoints" / f"{s}.pt"
        if path.exists():
            total += float(load_checkpoint(path)["extra"].get("cpu_s", 0.0))
            found = True
    return total if found else None


def _load_into(path: Path, model: Surrogate, ema: Surrogate, dev: torch.device, needed_by: str | None = None
               ) -> None:
    if not path.exists():
        need = f" (needed by --stage {needed_by})" if needed_by else ""
        raise ConfigError(f"{path}: checkpoint of an earlier stage not found{need}; train it first")
    ck = load_checkpoint(path, map_location=dev)
    model.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])


def _evaluate(cfg: RunConfig, run_dir: Path, ckpt: Path, device: str, emit, tracker, bundle: Any) -> None:
    try:
        from usim_core.eval.evaluate import evaluate_checkpoint
    except ImportError as exc:
        emit("warning", reason=f"evaluation skipped: usim_core.eval.evaluate not importable ({exc})")
        return
    for name in ("small", "full"):
        es = getattr(cfg.eval, name)
        if not es.enabled:
            continue
        result = evaluate_checkpoint(ckpt, es.split, eval_set=es, out=run_dir / "eval" / f"{name}.json",
                                     device=device, bundle=bundle, name=name)
        coarse = result["baselines"].get("coarse_solver") or {}
        metrics = flatten({**result.get("metrics", result), "model_cpu_s_per_traj": result.get("model_cpu_s_per_traj"),
                           "corrector": result.get("corrector") or {},
                           "coarse_solver": {k: coarse.get(k) for k in ("nx", "nrmse_frame", "cpu_s_per_traj")}})
        emit("eval", name=name, metrics=metrics, path=str(run_dir / "eval" / f"{name}.json"))
        tracker.summary({f"eval/{name}/{k}": v for k, v in metrics.items()})
