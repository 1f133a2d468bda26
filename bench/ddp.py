"""Data-parallel scaling on the CPU: `usim-core train` as one process (the reference) and as two gloo processes
under torchrun, one thread each (so two processes have twice the cores), alternately in this one invocation on
the same config and steps. Per run, over all four stages:

- step throughput: samples per second of the training steps alone (the `samples_per_s` the trainer logs ~4 times an
  epoch, combined as total samples / total time), two / one: ideal 2.0;
- stage throughput: samples per wall second from each `stage_start` to its `stage_end` (also the stage's set-up
  on 2048 windows, which every rank repeats, its validation and checkpoints), two / one;
- CPU seconds per sample, summed over the processes (the stages' checkpoints' `extra.cpu_s`), two / one: ideal
  1.0; above it is the work the parallelism adds (what every rank repeats: AdamW, EMA, clipping, the stage's
  set-up, the whole batch's random draws; the gradient all-reduce).

    .venv/bin/python bench/ddp.py [--config configs/runs/burgers_tiny.yaml] [--steps 60] [--rounds 5] \\
        [--out docs/bench/ddp_cpu_<date>.json]

CPU only, on whatever else this host runs meanwhile (two processes need two free cores); a GPU host's scaling is
estimated in docs/training.md, not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import interval  # noqa: E402

from usim_core.events import read_events  # noqa: E402
from usim_core.train.checkpoint import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("codec", "operator", "diffusion_residual", "consistency_distill")
KEYS = ("step_samples_per_s", "stage_samples_per_s", "cpu_ms_per_sample")


def run(processes: int, cfg: Path, run_dir: Path) -> dict:
    launcher = ([sys.executable, "-m", "usim_core"] if processes == 1 else
                [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc-per-node={processes}",
                 "-m", "usim_core"])
    env = {**os.environ, "USIM_THREADS": "1", "WANDB_MODE": "disabled"}
    subprocess.run([*launcher, "train", "--config", str(cfg), "--run-dir", str(run_dir), "--device", "cpu"],
                   env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = read_events(run_dir)
    conf = yaml.safe_load((run_dir / "config.yaml").read_text())["stages"]
    out: dict = {"processes": processes, "stages": {}}
    for s in STAGES:
        start = next(e for e in events if e["kind"] == "stage_start" and e["stage"] == s)
        end = next(e for e in events if e["kind"] == "stage_end" and e["stage"] == s)
        rates = [e["metrics"]["samples_per_s"] for e in events
                 if e["kind"] == "metric" and e["stage"] == s and "samples_per_s" in e["metrics"]]
        samples = end["step"] * conf[s]["batch_size"] * conf[s]["accum_steps"]
        out["stages"][s] = {
            "samples": samples, "stage_s": end["t"] - start["t"],
            "step_s": samples * sum(1 / r for r in rates) / len(rates),  # the logged windows are equal in steps
            "cpu_s": load_checkpoint(run_dir / "checkpoints" / f"{s}.pt")["extra"]["cpu_s"]}
    total = {k: sum(v[k] for v in out["stages"].values()) for k in ("samples", "stage_s", "step_s", "cpu_s")}
    out.update(step_samples_per_s=total["samples"] / total["step_s"],
               stage_samples_per_s=total["samples"] / total["stage_s"],
               cpu_ms_per_sample=1000 * total["cpu_s"] / total["samples"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/runs/burgers_tiny.yaml"))
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per stage (max_steps)")
    ap.add_argument("--rounds", type=int, default=5, help="pairs of runs; which goes first alternates")
    ap.add_argument("--out", help="write the figures and the command as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="usim-bench-ddp-") as tmp:
        cfg = Path(tmp) / "run.yaml"
        cfg.write_text(yaml.safe_dump({
            "include": str(Path(args.config).resolve()), "data": {"cache_dir": str(ROOT / "data")},
            "stages": {s: {"max_steps": args.steps, "patience": 10**6} for s in STAGES},
            "eval": {"small": {"enabled": False}, "full": {"enabled": False}},
            "tracking": {"wandb": {"mode": "disabled"}}}))
        rows = []
        for r in range(args.rounds):
            pair = {}
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                x = pair[n] = run(n, cfg, Path(tmp) / f"r{r}_p{n}")
                print(f"round {r}: {n} process{'es' if n > 1 else ' '}: {x['step_samples_per_s']:5.0f} samples/s "
                      f"in steps, {x['stage_samples_per_s']:5.0f} in stages, {x['cpu_ms_per_sample']:.2f} CPU ms "
                      "per sample", flush=True)
            rows.append({"round": r, "one": pair[1], "two": pair[2],
                         **{k: pair[2][k] / pair[1][k] for k in KEYS}})
    ratios = {k: interval([row[k] for row in rows]) for k in KEYS}
    print(f"two processes / one, CPU, one thread each ({args.rounds} rounds, mean +/- 95% interval): step throughput "
          f"{_pm(ratios['step_samples_per_s'])} (ideal 2.00), stage throughput "
          f"{_pm(ratios['stage_samples_per_s'])}, CPU seconds per sample {_pm(ratios['cpu_ms_per_sample'])} "
          "(ideal 1.00)")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": " ".join([".venv/bin/python bench/ddp.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                     "torch": metadata.version("torch"), "load_avg_at_end": os.getloadavg()},
            "config": args.config, "steps_per_stage": args.steps, "ratios_two_over_one": ratios,
            "rounds": rows}, indent=1) + "\n")
    return 0


def _pm(s: dict) -> str:
    return f"{s['mean']:.2f}x" + (f" +/- {s['ci95']:.2f}" if s["ci95"] is not None else "")


if __name__ == "__main__":
    sys.exit(main())
