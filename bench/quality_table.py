"""The quality bench's table: rows of per-(seed, trajectory) errors summarised with a paired bootstrap.

Every learned row has, per seed, the per-trajectory per-frame nRMSE (and VRMSE) on the evaluation set; the
references that learn nothing have the same values for every seed. A row's interval and its ratio to the best
baseline resample seeds and trajectories together (the same draws for both rows of a ratio: paired), so the
interval holds both the seed-to-seed and the trajectory-to-trajectory spread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DRAWS = 4000


def _draws(n_seeds: int, n_traj: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resampling weights: (DRAWS, n_seeds) and (DRAWS, n_traj) counts of each seed and trajectory drawn."""
    g = np.random.default_rng(seed)
    s = np.stack([np.bincount(g.integers(0, n_seeds, n_seeds), minlength=n_seeds) for _ in range(DRAWS)])
    t = np.stack([np.bincount(g.integers(0, n_traj, n_traj), minlength=n_traj) for _ in range(DRAWS)])
    return s.astype(float), t.astype(float)


def _means(a: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The mean of a (n_seeds, n_traj) under each draw's weights."""
    return np.einsum("ds,sj,dj->d", s, a, t) / (s.sum(1) * t.sum(1))


def mean_ci(a: np.ndarray) -> dict[str, Any]:
    s, t = _draws(*a.shape)
    boot = _means(a, s, t)
    return {"mean": float(a.mean()), "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def ratio_ci(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """mean(a) / mean(b) with its paired-bootstrap 95% interval; `excludes_1` says whether it is a win or a loss
    the data support."""
    s, t = _draws(*a.shape)
    boot = _means(a, s, t) / _means(b, s, t)
    lo, hi = float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))
    return {"mean": float(a.mean() / b.mean()), "ci95": [lo, hi], "excludes_1": bool(hi < 1 or lo > 1)}


def fmt(d: dict[str, Any], digits: int = 4) -> str:
    lo, hi = d["ci95"]
    return f"{d['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def show(out: dict[str, Any]) -> None:
    where = "sealed test set" if out["test_set"]["sealed"] else "VAL (development mode: the sealed set unread)"
    print(f"\n{len(out['seeds'])} seeds; {out['test_set']['n_trajectories']} trajectories of the {where}; "
          f"best baseline (on val) {out['best_baseline']}; primary mode (on val) {out['primary_mode']}")
    print(f"{'row':34s} {'budget GFLOP':>12s} {'nRMSE/frame [95%]':>28s} {'VRMSE':>8s} {'ratio to best [95%]':>24s} "
          f"{'mass drift':>10s} {'train CPU s':>11s} {'infer s/traj b1':>15s} {'b256':>9s}")
    for r in out["table"]:
        b = r["train_budget"]
        print(f"{r['name']:34s} {b['flops'] / 1e9 if b else 0:12.1f} {fmt(r['nrmse_frame']):>28s} "
              f"{r['vrmse']['mean']:8.4f} {fmt(r['ratio_to_best_baseline'], 3):>24s} {r['mass_drift_max']:10.1e} "
              f"{r['train_cpu_s'] or 0:11.0f} {r['infer_cpu_s_per_traj_batch1']:15.2e} "
              f"{r['infer_cpu_s_per_traj']:9.2e}")
    print(f"\n{out['conclusion']}")


def plot(out: dict[str, Any], path: str) -> None:
    """Two panels: per-frame nRMSE against training FLOPs (each learned family over the budgets, 95% bars), and
    against inference CPU seconds per trajectory at batch 256 (filled) and batch 1 (open) for every row at its
    largest budget."""
    from usim_core.eval.plots import _plt

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    families: dict[str, list[dict[str, Any]]] = {}
    for r in out["table"]:
        families.setdefault(r["name"].split("@")[0], []).append(r)
    last = max(r["train_budget"]["fraction"] for r in out["table"] if r["train_budget"])
    learned = [n for n, rows in families.items() if rows[0]["train_budget"]]
    refs = [n for n in families if n not in learned]
    for name, rows in families.items():
        # learned families: a colour each; references: grey shades, told apart by their markers
        if name in learned:
            color, marker = plt.get_cmap("tab10")(learned.index(name) % 10), "o"
        else:
            j = refs.index(name)
            color, marker = str(0.15 + 0.6 * j / max(1, len(refs))), "sDv^<>p*"[j % 8]
        y = [r["nrmse_frame"]["mean"] for r in rows]
        err = np.array([[m - r["nrmse_frame"]["ci95"][0], r["nrmse_frame"]["ci95"][1] - m]
                        for r, m in zip(rows, y, strict=True)]).T
        if rows[0]["train_budget"]:
            x = [r["train_budget"]["flops"] for r in rows]
            a.errorbar(x, y, yerr=err, marker=marker, color=color, label=name, capsize=3)
        top = [r for r in rows if not r["train_budget"] or r["train_budget"]["fraction"] == last]
        for r in top:
            m = r["nrmse_frame"]["mean"]
            b.scatter(r["infer_cpu_s_per_traj"], m, color=color, marker=marker, label=name)
            b.scatter(r["infer_cpu_s_per_traj_batch1"], m, facecolors="none", edgecolors=color, marker=marker)
    split = "sealed test" if out["test_set"]["sealed"] else "val"
    a.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel=f"per-frame nRMSE ({split})",
          title="error against training compute")
    b.set(xscale="log", yscale="log", xlabel="CPU s per trajectory (filled: batch 256, open: batch 1)",
          ylabel=f"per-frame nRMSE ({split})", title="error against inference cost (largest budget)")
    a.legend(fontsize=7)
    b.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
