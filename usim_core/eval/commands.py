"""`usim-core eval`, `usim-core baseline`, `usim-core leaderboard`, `usim-core gate`.
Nothing heavy is imported until a handler runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from usim_core.config import ConfigError
from usim_core.eval.schema import PRIMARY_METRIC

SUMMARY_KEYS = ("nrmse_frame", "nrmse_1step", "nrmse_rollout", "rmse", "mass_drift", "energy_violation", "pde_residual")


def _fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.4g}"


def _eval(args: argparse.Namespace) -> int:
    from usim_core.eval.evaluate import evaluate_checkpoint
    from usim_core.train.run import set_threads

    set_threads()  # CPU seconds per trajectory are comparable only at the trainer's USIM_THREADS
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.parent.parent / "eval" / f"{'full' if args.split == 'test' else 'small'}.json"
    rep = evaluate_checkpoint(ckpt, args.split, ttc=args.ttc, out=out, device=args.device,
                              progress=lambda m: print(f"eval: {m}", file=sys.stderr, flush=True))
    print(f"{out}: {rep['split']} split, {rep['trajectories']} trajectories x {rep['steps']} steps, "
          f"stage {rep['stage']}, config {rep['config_hash']}, data {rep['manifest_hash']}")
    rows = {**{m: r["metrics"] for m, r in rep["modes"].items()},
            **{b: r["metrics"] for b in ("persistence", "fno") if (r := rep["baselines"].get(b))}}
    width = max(len(k) for k in rows)
    print(f"  {'':<{width}}  " + "  ".join(f"{k:>16}" for k in SUMMARY_KEYS))
    for name, m in rows.items():
        print(f"  {name:<{width}}  " + "  ".join(f"{_fmt(m[k]):>16}" for k in SUMMARY_KEYS))
    if rep["baselines"].get("fno_note"):
        print(f"  fno: {rep['baselines']['fno_note']}")
    if rep["ttc"]["enabled"]:
        print(f"  ttc ({rep['ttc']['mode']}): gain {_fmt(rep['ttc']['gain'])}, "
              f"{rep['ttc']['evaluations']:.0f}/{rep['ttc']['max_evaluations']} evaluations per trajectory")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from usim_core.config import load_config

    cfg = load_config(args.config)
    run_dir = Path(args.run_dir)
    from usim_core.train.run import set_threads, training_cpu_seconds

    set_threads()  # the same USIM_THREADS rule as the trainer: CPU seconds are comparable only at equal threads
    budget = args.budget_s or training_cpu_seconds(run_dir)
    if budget is None:
        raise ConfigError(f"--budget-s not given and {run_dir / 'checkpoints'} has no finished stage whose "
                          "training CPU seconds to match; pass --budget-s SECONDS (process CPU seconds)")
    from usim_core.data import prepare_data
    from usim_core.eval.fno import save_fno, train_fno

    bundle = prepare_data(cfg)
    tr, op = bundle.train, cfg.stages.operator
    print(f"baseline fno: {tr.u.shape[0]} training trajectories, budget {budget:.0f} CPU s", file=sys.stderr)
    model, info = train_fno(tr.u, tr.nu, bundle.stats.mean, bundle.stats.std, budget_s=budget, seed=cfg.seed,
                            unroll=args.unroll or op.unroll, unroll_weight=op.unroll_weight,
                            batch_size=op.batch_size, lr=args.lr or op.lr,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    path = run_dir / "baselines" / "fno.pt"
    save_fno(path, model, dt=float(bundle.dt), manifest_hash=bundle.manifest_hash, train_rows=tr.rows,
             config_hash=cfg.config_hash(), info=info, length=bundle.length)
    print(json.dumps({"path": str(path), **info}))
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from usim_core.eval import leaderboard as lb

    rows, bad = lb.build(args.dir, args.metric)
    extra: dict = {"metric": args.metric, "unreadable": bad, "gate": None}
    if args.champion:
        champ = lb.load_champion(args.champion)
        for r in rows:
            r["gate"] = lb.gate(r, champ, args.metric, args.tolerance)
        extra["gate"] = {"champion": str(args.champion), "tolerance": args.tolerance}
    js, cs = lb.write(args.dir, rows, extra)
    for r in rows:
        g = f"  gate {r['gate']['status']}" if r.get("gate") else ""
        print(f"{r['rank']:>3} {r['name']:<6} {r['cell']:<28} {r['attempt']:<3} val {_fmt(r['val_score'])}  "
              f"{args.metric} {_fmt(r[args.metric])}  persistence {_fmt(r.get('persistence_' + args.metric))}  "
              f"coarse solver {_fmt(r.get('coarse_' + args.metric))}{g}")   # the baselines in the same metric
    for b in bad:
        print(f"skipped {b}", file=sys.stderr)
    if args.freeze:
        best = lb.choose_on_val(rows, args.freeze_name)
        lb.freeze(best, args.freeze)
        print(f"froze {best['path']} as champion in {args.freeze} (chosen on val: {args.metric} {best['val_score']:.4g})")
    print(f"wrote {js} and {cs} ({len(rows)} rows)")
    return 0


def _gate(args: argparse.Namespace) -> int:
    from usim_core.eval import leaderboard as lb
    from usim_core.eval.schema import validate_report

    path = Path(args.eval_json)
    if not path.exists():
        raise ConfigError(f"{path}: eval JSON not found")
    champ = lb.load_champion(args.champion)
    rep = json.loads(path.read_text())
    row = lb.row_of(path, path.parent)
    result = lb.gate(row, champ, args.metric, args.tolerance)
    rep["gate"] = result
    validate_report(rep)
    path.write_text(json.dumps(rep, indent=2))
    print(f"gate {result['status']}: {result['reason']} (recorded in {path})")
    return 0  # a failed gate is a result, not a crash


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint in physical space (JSON + PNGs)",
                       description="Evaluate a checkpoint in physical space on a split (val or test): one-step and "
                       "rollout errors, physics checks and baselines, written as JSON and figures; the model is "
                       "built from the checkpoint's own config.")
    p.add_argument("--checkpoint", required=True, help="a stage checkpoint, e.g. RUN/checkpoints/consistency_distill.pt")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="val = the config's small eval set, test = the full eval set")
    p.add_argument("--ttc", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time compute on the stochastic modes (default: eval.ttc.enabled)")
    p.add_argument("--out", help="JSON path (default RUN/eval/small.json or full.json); PNGs beside it")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.set_defaults(func=_eval)

    b = sub.add_parser("baseline", help="train a baseline on the same training split and budget",
                       description="Train a baseline (fno) on the run's training split with a budget matched to the "
                       "run's, for the eval reports to compare against.")
    b.add_argument("kind", choices=("fno",), help="fno: neuralop.models.FNO")
    b.add_argument("--config", required=True, help="the run config (same data and split)")
    b.add_argument("--run-dir", required=True, help="writes RUN/baselines/fno.pt; eval picks it up")
    b.add_argument("--budget-s", type=float,
                   help="process CPU seconds (default: the CPU seconds the run's stages took to train)")
    b.add_argument("--lr", type=float, help="the FNO's learning rate (default: the run's stages.operator.lr)")
    b.add_argument("--unroll", type=int, choices=range(1, 65), metavar="1..64",
                   help="steps unrolled in the FNO's training loss (default: the run's stages.operator.unroll); "
                        "the quality bench chose lr 2e-3 and unroll 1 on val for the FNO (docs/eval.md)")
    b.set_defaults(func=_baseline)

    lbp = sub.add_parser("leaderboard", help="rank the eval JSONs of a sweep dir (CSV + JSON)",
                         description="Rank the eval JSONs under a sweep directory on val by the primary metric "
                         "(runs evaluated on different domains are refused), writing CSV and JSON; --freeze-name "
                         "freezes the champion for gates.")
    lbp.add_argument("dir", help="runs/<sweep> (reads <cell>/<attempt>/eval/*.json)")
    lbp.add_argument("--metric", default=PRIMARY_METRIC,
                     help=f"rank (on val) by this metric, lower is better (default {PRIMARY_METRIC}: PDEBench's "
                          "per-frame nRMSE; nrmse_rollout is the pooled space-time one)")
    lbp.add_argument("--champion", help="gate every row against this frozen champion file")
    lbp.add_argument("--tolerance", type=float, default=0.0, help="relative slack of the gate")
    lbp.add_argument("--freeze", help="after writing, freeze the run best on val as the champion in this file")
    lbp.add_argument("--freeze-name", default="full", help="which eval (small|full) the champion is taken from")
    lbp.set_defaults(func=_leaderboard)

    g = sub.add_parser("gate", help="compare one eval JSON with a frozen champion; records the result, exit 0",
                       description="Compare one eval JSON with a frozen champion on the primary metric and the "
                       "physics gates; the result is recorded (a gate is a result, never a crash: exit 0).")
    g.add_argument("eval_json")
    g.add_argument("--champion", required=True)
    g.add_argument("--metric", default=PRIMARY_METRIC, help=f"compared metric (default {PRIMARY_METRIC})")
    g.add_argument("--tolerance", type=float, default=0.0)
    g.set_defaults(func=_gate)
