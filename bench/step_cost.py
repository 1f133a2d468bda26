"""Process CPU seconds of the quality bench's operator training step and of a rollout, its defaults against a
reference (the defaults with --ref overrides), measured alternately in this one process so the host's speed
cancels out of the ratio. Real bench data (generated and cached as bench/quality.py does), one thread.

    USIM_THREADS=1 .venv/bin/python bench/step_cost.py \\
        --ref model.codec.linear_path=false --ref model.operator.viscous_step=false [--steps 250] [--rounds 4]

Prints each round's seconds and defaults / reference for the operator step (forward, backward, AdamW on a batch of
the bench's size) and for rolling out 20 val trajectories over 40 frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as Q  # noqa: E402

from usim_core.config import RunConfig  # noqa: E402
from usim_core.data import prepare_data  # noqa: E402
from usim_core.models.surrogate import Surrogate  # noqa: E402
from usim_core.train.batches import windows  # noqa: E402
from usim_core.train.losses import operator_loss  # noqa: E402


def cost(cfg: RunConfig, bundle, steps: int) -> tuple[float, float]:
    """(CPU s of `steps` operator training steps, CPU s of one 40-frame rollout of 20 val trajectories)."""
    torch.manual_seed(0)
    model = Surrogate(cfg, bundle.train.u.shape[-1], bundle.stats, bundle.length)
    opt = torch.optim.AdamW(model.operator.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    win = windows(bundle.train, cfg.stages.operator.unroll, bundle.dt)
    start = time.process_time()
    for _ in range(steps):
        rows = torch.randint(0, len(win), (cfg.stages.operator.batch_size,), generator=gen)
        loss = operator_loss(model, *win.batch(rows, "cpu"), cfg, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train = time.process_time() - start
    u = torch.as_tensor(bundle.val.u, dtype=torch.float32)
    nu = torch.as_tensor(bundle.val.nu, dtype=torch.float32)
    start = time.process_time()
    model.eval().rollout(u[:, 0], nu, torch.full_like(nu, bundle.dt), u.shape[1] - 1)
    return train, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", action="append", default=[], metavar="KEY=VALUE",
                    help="an override that makes the reference config (repeatable)")
    ap.add_argument("--steps", type=int, default=250, help="operator training steps per measurement")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of both configs, which goes first alternating (the first of a pair runs slower)")
    args = ap.parse_args()
    if not args.ref:
        ap.error("name at least one --ref KEY=VALUE: the reference is the defaults with those overrides")
    torch.set_num_threads(1)

    def config(overrides: list[str]) -> RunConfig:
        return Q.config(argparse.Namespace(n=200, steps_scale=1.0, set=overrides, threads=1), 0)

    cfgs = {"defaults": config([]), "reference": config(args.ref)}
    bundle = prepare_data(cfgs["defaults"])
    sums = {name: [0.0, 0.0] for name in cfgs}
    for r in range(args.rounds):
        for name in (("defaults", "reference") if r % 2 == 0 else ("reference", "defaults")):  # order alternates
            cfg = cfgs[name]
            train, roll = cost(cfg, bundle, args.steps)
            sums[name][0] += train
            sums[name][1] += roll
            print(f"round {r}: {name:9s} {args.steps} operator steps {train:6.2f} CPU s, rollout {roll:5.2f} CPU s",
                  flush=True)
    d, ref = sums["defaults"], sums["reference"]
    print(f"defaults / reference ({' '.join(args.ref)}): operator step {d[0] / ref[0]:.3f}x, "
          f"rollout {d[1] / ref[1]:.3f}x")


if __name__ == "__main__":
    main()
