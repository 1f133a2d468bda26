"""`usim-core datagen`: generate a PDEBench-layout Burgers file (resumable, all cores, atomic rename)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from usim_core.config import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datagen", help="generate 1D Burgers trajectories into an HDF5 file in PDEBench's layout",
        description="Solve 1D viscous Burgers (diffusion nu/pi, periodic [0, 1), or (-1, 1) with --length 2) from PDEBench-style random "
                    "initial conditions. An interrupted run resumes from <out>.partial; the final name "
                    "only ever holds a complete file.",
        epilog="Examples: usim-core datagen --nu 0.01 --n 1000 --nx 1024 --nt 201 --seed 0 --out data/burgers_nu0.01.h5\n"
               "          usim-core datagen --config configs/runs/burgers_base.yaml   (fill that run's data cache)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a run config: generate the cached files its data section needs, then stop")
    p.add_argument("--nu", type=float, help="viscosity (the diffusion coefficient is nu/pi)")
    p.add_argument("--n", type=int, default=1000, help="trajectories (default 1000)")
    p.add_argument("--nx", type=int, default=1024, help="grid points (default 1024)")
    p.add_argument("--nt", type=int, default=201, help="stored frames on [0, t_end] (default 201)")
    p.add_argument("--t-end", type=float, default=2.0, help="final time (default 2.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", type=float, default=1.0,
                   help="period of x: 1 writes x on [0, 1) (default, the generated data's domain), 2 writes x on "
                        "(-1, 1) solved on that domain, as PDEBench's published files are (docs/data.md)")
    p.add_argument("--family", choices=("offset", "pdebench"), default="offset",
                   help="initial conditions: offset (default: usim's, a uniform mean offset) or pdebench (PDEBench's "
                        "own init_multi: the random mean from unpicked modes, the window at absolute x)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--out", help="output .h5 path")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_datagen)


def _check(args: argparse.Namespace) -> None:
    if args.nu is None or args.out is None:
        raise ConfigError("datagen needs --nu and --out (or --config RUN.yaml)")
    bad = [(name, value, rule) for name, value, ok, rule in (
        ("--nu", args.nu, args.nu > 0, "> 0"),
        ("--n", args.n, args.n >= 1, ">= 1"),
        ("--nx", args.nx, args.nx >= 16 and args.nx % 2 == 0, "an even number >= 16"),
        ("--nt", args.nt, args.nt >= 2, ">= 2"),
        ("--t-end", args.t_end, args.t_end > 0, "> 0"),
        ("--length", args.length, args.length in (1.0, 2.0), "one of 1, 2 (x on [0, 1) or PDEBench's (-1, 1))"),
        ("--workers", args.workers, args.workers is None or args.workers >= 1, ">= 1"),
    ) if not ok]
    if bad:
        raise ConfigError("; ".join(f"datagen {n} = {v} must be {rule}" for n, v, rule in bad))


def _from_config(args: argparse.Namespace) -> int:
    from usim_core.config import load_config
    from usim_core.data.prepare import data_files

    cfg = load_config(args.config)
    if cfg.data.files:
        print(f"{args.config}: data.files are given; nothing to generate")
    for f in data_files(cfg, workers=args.workers or len(os.sched_getaffinity(0))):
        print(f"{f.path}: {f.n} trajectories x {f.nt} frames x {f.nx} points, nu={f.nu:g}")
    return 0


def _datagen(args: argparse.Namespace) -> int:
    if args.config:
        return _from_config(args)
    _check(args)
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from usim_core.data.generate import GenSpec, generate
    from usim_core.data.h5io import open_pdebench

    out = Path(args.out)
    if out.exists():
        if not args.force:
            print(f"{out}: exists; nothing to do (--force to regenerate)")
            return 0
        out.unlink()
    spec = GenSpec(nu=args.nu, n=args.n, nx=args.nx, nt=args.nt, t_end=args.t_end, seed=args.seed, length=args.length,
                   family=args.family)
    start = time.time()
    if sys.stdout.isatty():
        with Progress(TextColumn(f"datagen nu={args.nu:g}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task("datagen", total=args.n)
            generate(spec, out, workers=args.workers, progress=lambda done, total: bar.update(task, completed=done))
    else:   # logs (a rented host): a plain line per block
        generate(spec, out, workers=args.workers,
                 progress=lambda done, total: print(f"datagen {done}/{total} ({time.time() - start:.0f} s)", flush=True))
    info = open_pdebench(out, args.nu)
    import h5py
    with h5py.File(out, "r") as f:
        solver = f.attrs.get("solver", "?")
    took = time.time() - start
    print(f"{out}: {info.n} trajectories x {info.nt} frames x {info.nx} points, nu={info.nu:g}, domain length "
          f"{args.length:g}, {args.family} initial conditions, solver {solver}, "
          f"{took:.1f} s ({info.n / max(took, 1e-9):.1f} trajectories/s)")
    return 0
