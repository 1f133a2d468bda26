"""Training throughput and peak memory of every stage, base vs tiny config, measured in this process's
children (one per config x stage, so peak RSS is per stage). Prints samples/s, peak memory and tiny/base ratios.

    .venv/bin/python bench/train.py [--device cpu|cuda] [--steps 6] [--batch B]
    .venv/bin/python bench/train.py --codec-curve tiny|quality [--steps 200]   # codec alone, real data
    .venv/bin/python bench/train.py --end-to-end [--out FILE.json]   # `usim-core train` on the tiny config

--codec-curve trains only the codec of that config on its real (generated, cached) data and prints the
held-out reconstruction nRMSE (the floor under every latent mode) at five points of the run.

--end-to-end runs `usim-core train` on the tiny config (USIM_THREADS=1, an empty data cache, so data generation
and both evals count) and reports the child's process CPU seconds (user + sys) and the four stages' own training
CPU seconds (the sum of their checkpoints' `cpu_s`): the figure the README and docs/training.md quote.

On CPU peak memory is the child's max RSS (includes the interpreter and torch, ~300 MB); on CUDA it is
torch.cuda.max_memory_allocated. Synthetic data with the config's grid, frames and batch size (--batch B: every
stage at B instead; one GPU's step at B against B / N is the ceiling of N GPUs' data-parallel speed-up at the global
batch B, docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"base": ROOT / "configs/runs/burgers_base.yaml", "tiny": ROOT / "configs/runs/burgers_tiny.yaml"}
STAGES = ("codec", "operator", "diffusion_residual", "consistency_distill")
# --codec-curve settings: the tiny config as is, and bench/quality.py's data and codec on the base config
CURVES = {
    "tiny": (CONFIGS["tiny"], {"data.cache_dir": str(ROOT / "data")}),
    "quality": (CONFIGS["base"], {"data.generate.n": 300, "data.cache_dir": str(ROOT / "data" / "bench"),
                                  "model.codec": {"latent_tokens": 16, "latent_dim": 16, "hidden_dim": 32,
                                                  "depth": 1}}),
}


def measure(config: str, stage: str, device: str, steps: int, batch: int | None = None) -> dict:
    import torch

    from usim_core.config import load_config
    from usim_core.models.surrogate import STAGE_MODULES, Surrogate
    from usim_core.train.batches import windows
    from usim_core.train.losses import STAGE_LOSS, fit_residual_stats, stage_horizon
    from usim_core.train.preflight import synthetic_bundle

    cfg = load_config(CONFIGS[config])
    dev = torch.device(device)
    nx = math.ceil(cfg.data.generate.nx / cfg.data.x_stride)
    nt = math.ceil(cfg.data.generate.nt / cfg.data.t_stride)
    sc = getattr(cfg.stages, stage)
    if batch:
        sc = sc.model_copy(update={"batch_size": batch})
    bundle = synthetic_bundle(nx, nt, cfg.data.nu, n=max(2, sc.batch_size // max(1, nt - 4) + 1))
    torch.manual_seed(0)
    model = Surrogate(cfg, nx, bundle.stats).to(dev)
    data = windows(bundle.train, stage_horizon(stage, cfg), bundle.dt)
    rows = torch.arange(sc.batch_size) % len(data)
    u, nu, dt = data.batch(rows, dev)
    if stage in ("diffusion_residual", "consistency_distill"):
        fit_residual_stats(model, u[:, :2], nu, dt)
    params = [p for n in STAGE_MODULES[stage] for p in getattr(model, n).parameters()]
    opt = torch.optim.AdamW(params, lr=sc.lr)
    gen = torch.Generator().manual_seed(0)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else None

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        if amp:
            with amp:
                loss = STAGE_LOSS[stage](model, u, nu, dt, cfg, gen)
        else:
            loss = STAGE_LOSS[stage](model, u, nu, dt, cfg, gen)
        loss.backward()
        opt.step()

    for _ in range(2):
        one()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"samples_per_s": steps * sc.batch_size / secs, "peak_mb": peak / 2**20, "batch": sc.batch_size}


def codec_curve(config: str, steps: int) -> None:
    import torch

    from usim_core.config import load_config
    from usim_core.data import prepare_data
    from usim_core.eval.evaluate import codec_nrmse
    from usim_core.models.surrogate import Surrogate
    from usim_core.train.batches import windows
    from usim_core.train.losses import codec_loss
    from usim_core.train.schedule import lr_at

    torch.set_num_threads(1)
    path, over = CURVES[config]
    cfg = load_config(path, over)
    bundle = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    model = Surrogate(cfg, bundle.train.u.shape[2], bundle.stats)
    sc = cfg.stages.codec
    train = windows(bundle.train, 0, bundle.dt)
    held = windows(bundle.val, 0, bundle.dt)
    u_val = held.u[:8]
    nu_val = held.nu[:8]
    params = [*model.encoder.parameters(), *model.decoder.parameters()]
    opt = torch.optim.AdamW(params, lr=sc.lr, weight_decay=sc.weight_decay)
    gen = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    print(f"{config}: codec {sum(p.numel() for p in params) / 1e3:.0f}k params, {len(train)} training frames, "
          f"batch {sc.batch_size}, lr {sc.lr:g}")
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, sc.lr, sc.warmup, sc.min_lr)
        u, nu, dt = train.batch(torch.randint(0, len(train), (sc.batch_size,), generator=gen), "cpu")
        opt.zero_grad(set_to_none=True)
        codec_loss(model, u, nu, dt, cfg, gen).backward()
        torch.nn.utils.clip_grad_norm_(params, sc.grad_clip)
        opt.step()
        if (step + 1) % max(1, steps // 5) == 0:
            model.eval()
            print(f"step {step + 1:>5}: val reconstruction nRMSE {codec_nrmse(model, u_val, nu_val):.4f} "
                  f"({time.perf_counter() - t:.0f}s)", flush=True)
            model.train()


def end_to_end(out: str | None) -> None:
    import os
    import tempfile

    import torch
    import yaml

    from usim_core.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(CONFIGS["tiny"], {"data.cache_dir": str(Path(tmp) / "data")}).to_dict()
        path = Path(tmp) / "tiny.yaml"
        path.write_text(yaml.safe_dump(cfg))
        run_dir = Path(tmp) / "run"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "usim_core", "train", "--config", str(path), "--run-dir", str(run_dir),
                        "--device", "cpu"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "USIM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        stages = {s: torch.load(run_dir / "checkpoints" / f"{s}.pt", map_location="cpu", weights_only=False)
                  ["extra"]["cpu_s"] for s in STAGES}
    doc = {"command": " ".join(["python", "bench/train.py", *sys.argv[1:]]), "config": "configs/runs/burgers_tiny.yaml",
           "date": time.strftime("%Y-%m-%d"), "process_cpu_s": user + system, "user_s": user, "sys_s": system,
           "training_cpu_s": sum(stages.values()), "stage_cpu_s": stages}
    print(f"usim-core train, tiny config, USIM_THREADS=1, data generated: {user + system:.1f} process CPU s "
          f"(user {user:.1f} + sys {system:.1f}); the four stages' own training {sum(stages.values()):.1f} CPU s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in stages.items())})")
    if out:
        Path(out).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--codec-curve", choices=tuple(CURVES), help="codec alone on real data: nRMSE vs steps")
    ap.add_argument("--end-to-end", action="store_true", help="time `usim-core train` on the tiny config")
    ap.add_argument("--out", help="--end-to-end: write its figures as JSON here")
    ap.add_argument("--batch", type=int, help="every stage's batch size (default: each config's own)")
    ap.add_argument("--one", nargs=2, metavar=("CONFIG", "STAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.codec_curve:
        codec_curve(args.codec_curve, args.steps)
        return 0
    if args.end_to_end:
        end_to_end(args.out)
        return 0
    if args.one:
        print(json.dumps(measure(*args.one, args.device, args.steps, args.batch)))
        return 0
    results: dict[tuple[str, str], dict] = {}
    for config in CONFIGS:
        for stage in STAGES:
            out = subprocess.run([sys.executable, __file__, "--one", config, stage, "--device", args.device,
                                  "--steps", str(args.steps), *(["--batch", str(args.batch)] if args.batch else [])],
                                 capture_output=True, text=True, check=True)
            results[config, stage] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"device {args.device}, {args.steps} timed steps per stage (after 2 warm-up steps)")
    print(f"{'stage':<22}{'base samples/s':>15}{'tiny samples/s':>15}{'tiny/base':>10}"
          f"{'base MB':>9}{'tiny MB':>9}{'tiny/base':>10}")
    for stage in STAGES:
        b, t = results["base", stage], results["tiny", stage]
        print(f"{stage:<22}{b['samples_per_s']:>15.1f}{t['samples_per_s']:>15.1f}"
              f"{t['samples_per_s'] / b['samples_per_s']:>10.2f}{b['peak_mb']:>9.0f}{t['peak_mb']:>9.0f}"
              f"{t['peak_mb'] / b['peak_mb']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
