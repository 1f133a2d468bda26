"""`usim-core train` and `usim-core preflight`. Nothing heavy is imported until a handler runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from usim_core.config import STAGES, ConfigError, load_config
from usim_core.train.guard import last_frame, run_guarded


def needs_core() -> None:
    """ModuleNotFoundError for the first of the [core] extra's modules this install lacks (the CLI says it in
    one line, with what to install), before anything is written."""
    import importlib.util

    for name in ("torch", "h5py", "scipy"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _train(args: argparse.Namespace) -> int:
    needs_core()
    from usim_core.train.ranks import Ranks, event_log

    run_dir = Path(args.run_dir)
    ranks = Ranks.from_env()  # several processes under torchrun; rank 0 writes the run dir
    events = event_log(run_dir, ranks)

    def body() -> None:
        cfg = load_config(args.config)
        from usim_core.train.run import train_run

        try:
            train_run(cfg, run_dir, stage=args.stage, resume=args.resume, device=args.device, events=events,
                      ranks=ranks)
        except ConfigError as exc:   # a key's value the run refused (a batch the processes cannot split): name the file
            head = str(exc).split(": ", 1)[0]
            if head.endswith((".yaml", ".yml")) or head.startswith("--"):
                raise
            raise ConfigError(f"{args.config}: {exc}") from None

    code = run_guarded(events, body)
    if ranks.parallel:
        # torch 2.13's gloo aborts at interpreter teardown after its process group is destroyed ("terminate called
        # without an active exception", SIGABRT) in about one two-process launch in 25 on a loaded CPU; a
        # pure-torch script does the same (docs/training.md). Everything a rank writes is closed per write and the
        # tracker has finished by now, so a launched rank ends without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _preflight(args: argparse.Namespace) -> int:
    needs_core()
    try:
        cfg = load_config(args.config)
        from usim_core.train.preflight import preflight

        print(preflight(cfg, args.root))
        return 0
    except ConfigError as exc:
        print(f"preflight FAILED: {args.config}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"preflight FAILED: {args.config}: {type(exc).__name__}: {exc} (at {last_frame(exc)})",
              file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the surrogate's stages, then run the configured evaluations",
        description="Train codec, operator, diffusion residual and consistency student in order, then the "
        "configured evaluations, printing one `@usim {json}` event per line and writing the run directory "
        "(config.yaml, events.jsonl, metrics.jsonl, checkpoints/, eval/). --resume continues from the last "
        "checkpoint of the unfinished stage. On a host with N GPUs, run it data-parallel: `torchrun --standalone "
        "--nproc-per-node=N -m usim_core train ...` (a stage's batch_size is the global batch, split over the "
        "processes; the learning rate is the config's; rank 0 writes the run dir and evaluates; docs/training.md).")
    p.add_argument("--config", required=True, help="run config YAML")
    p.add_argument("--run-dir", required=True, help="output folder (config.yaml, events, metrics, checkpoints)")
    p.add_argument("--stage", choices=STAGES, help="train only this stage (earlier stages' checkpoints needed)")
    p.add_argument("--resume", action="store_true", help="skip finished stages; continue the unfinished one")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=_train)

    q = sub.add_parser("preflight", help="CPU smoke test of a config: every model, stage, checkpoint, rollout",
                       description="Before any money is spent: build every model of a config, take two optimizer "
                       "steps of each stage on small synthetic data on the CPU, reload each checkpoint, roll out "
                       "in every mode and run a tiny eval; data files are checked as training reads them.")
    q.add_argument("--config", required=True, help="run config YAML")
    q.add_argument("--root", default=".", help="folder that relative data.files paths are resolved against")
    q.set_defaults(func=_preflight)
