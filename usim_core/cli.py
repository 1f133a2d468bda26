"""`usim-core`: the GPU-host command line.

Each concept registers its own subcommands (`register(subparsers)` in its `commands.py`); handlers import
torch lazily so `usim-core --help` and config/sweep commands stay fast and torch-free.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from usim_core.config import ConfigError, load_config
from usim_core.sweep import budget_plan, expand

COMMAND_MODULES = (
    "usim_core.data.commands",     # datagen
    "usim_core.train.commands",    # train, preflight
    "usim_core.eval.commands",     # eval, baseline, leaderboard
)


def _config_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok (config hash {cfg.config_hash()}, architecture {cfg.architecture_fingerprint()})")
    return 0


def _sweep_expand(args: argparse.Namespace) -> int:
    sweep = expand(args.file)
    if args.json:
        print(json.dumps([c.to_dict() for c in sweep.cells], indent=2))
        return 0
    spec = sweep.spec
    print(f"sweep {spec.name}: {len(sweep.cells)} cells, budget ${spec.budget:.2f}, "
          f"provider {spec.provider.kind}, concurrency {spec.concurrency}, "
          f"planned ${spec.planned_cost_per_cell:.2f}/cell on {spec.provider.num_gpus} GPU(s) "
          f"(${sum(spec.planned_cost(c.num_gpus) for c in sweep.cells):.2f} total)")
    width = max(len(c.name) for c in sweep.cells)
    for c in sweep.cells:
        over = ", ".join(f"{k}={v}" for k, v in c.overrides.items()) or "(base)"
        dup = f"  DUPLICATE of {c.duplicate_of}" if c.duplicate_of else ""
        gpus = f"  [{c.num_gpus} GPUs, data-parallel]" if c.num_gpus > 1 else ""
        print(f"  {c.name:<{width}}  {c.config_hash}  {over}{gpus}{dup}")
    if sweep.duplicates:
        print(f"{len(sweep.duplicates)} duplicate cell(s): same resolved config as an earlier cell; "
              "they would run the same experiment twice.")
    plan = budget_plan(sweep)
    print(plan.line() + ("" if plan.fits else ": MORE THAN THE BUDGET (usim-tui run refuses it)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usim-core",
        description="Burgers data, a latent neural-operator surrogate trained in stages, and honest evaluation.",
        epilog="Example: usim-core train --config configs/runs/burgers_tiny.yaml --run-dir runs/tiny",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cfg = sub.add_parser("config", help="check run configs", description="Check run configs: `usim-core config "
                         "validate FILE` (a file, or a shipped config by name: burgers_tiny)."
                         ).add_subparsers(dest="action", metavar="ACTION")
    val = cfg.add_parser("validate", help="validate a run config: exit 0, or exit 2 naming the file and key")
    val.add_argument("file")
    val.set_defaults(func=_config_validate)

    sw = sub.add_parser("sweep", help="expand sweep files", description="Expand sweep files into their cells: "
                        "`usim-core sweep expand FILE` (a file, or a shipped sweep by name: demo, overnight_sota)."
                        ).add_subparsers(dest="action", metavar="ACTION")
    exp = sw.add_parser("expand", help="list the cells of a sweep (duplicates marked)")
    exp.add_argument("file")
    exp.add_argument("--json", action="store_true", help="JSON list with name, round, tags, overrides, config")
    exp.set_defaults(func=_sweep_expand)

    add_commands(sub, COMMAND_MODULES)
    return parser


def add_commands(sub: argparse._SubParsersAction, modules: tuple[str, ...]) -> None:
    """Each concept registers its own subcommands: `register(subparsers)` in its commands module."""
    for module in modules:
        importlib.import_module(module).register(sub)


# What the [core] extra brings (training, evaluation, data files): a [tui]-only install lacks them.
CORE_MODULES = frozenset({"torch", "h5py", "scipy", "neuralop", "wandb"})


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run the chosen handler, and turn bad input into exit 2 with the message (no traceback)."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name not in CORE_MODULES:
            raise
        print(f"error: {parser.prog} {args.command}: needs {exc.name}, which this install lacks (a laptop's "
              "[tui] install has no torch); install the training side: pip install 'usim-sweeps[core]' "
              "(torch first: pip install torch)", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
