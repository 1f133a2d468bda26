"""PNG figures of the report (matplotlib, Agg backend, imported lazily). Each function writes one file
into `out` and returns its name, or None when there is nothing to draw."""

from __future__ import annotations

from pathlib import Path

from usim_core.config import STAGES
from usim_tui.fleet.store.states import AttemptState, CellState, EndReason
from usim_tui.report.analysis import GroupStat, RoundCoverage
from usim_tui.report.model import PRIMARY, CellRecord, ReportData

PATTERNS = ("curves_*.png", "coverage_*.png", "timeline.png", "groups.png", "capacity.png", "rungs.png")
A = AttemptState
STATE_COLOURS = {A.PENDING: "#bbbbbb", A.LOADING: "#f0ad4e", A.RUNNING: "#5cb85c", A.STOPPED: "#9b59b6",
                 A.EXITED: "#5bc0de", A.DESTROYED: "#d9534f", A.OFFLINE: "#7f8c8d", A.FAILED: "#c0392b",
                 A.LAUNCHING: "#dddddd", A.DESTROYING: "#e8a49e", A.LEAKED: "#8b0000", A.NOT_CREATED: "#eeeeee"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_kind(key: str) -> tuple[str, str] | None:
    """(stage, 'train'|'val') for a loss series key such as `operator/val_loss` or `train/codec/loss`."""
    if "loss" not in key:
        return None
    stage = next((s for s in sorted(STAGES, key=len, reverse=True) if s in key), None)
    if stage is None:
        return None
    return stage, ("val" if "val" in key else "train")


def loss_curves(data: ReportData, out: Path) -> list[tuple[str, str]]:
    """One figure per stage: train (solid) and val (dashed) loss of every finished cell. [(file, stage)]."""
    by_stage: dict[str, list[tuple[CellRecord, str, list[tuple[int, float]]]]] = {}
    for c in data.cells:
        if c.state != CellState.FINISHED:
            continue
        for key, series in c.curves.items():
            kind = curve_kind(key)
            if kind and series:
                by_stage.setdefault(kind[0], []).append((c, kind[1], series))
    if not by_stage:
        return []
    plt = _plt()
    files = []
    for stage in [s for s in STAGES if s in by_stage]:
        fig, ax = plt.subplots(figsize=(7, 4))
        colours = {}
        for cell, kind, series in by_stage[stage]:
            colour = colours.setdefault(cell.name, f"C{len(colours) % 10}")
            steps, values = zip(*series, strict=True)
            ax.plot(steps, values, color=colour, linestyle="-" if kind == "train" else "--",
                    label=f"{cell.name} ({kind})")
        if all(v > 0 for _, _, s in by_stage[stage] for _, v in s):
            ax.set_yscale("log")
        ax.set(title=f"{stage}: train (solid) and val (dashed) loss", xlabel="step", ylabel="loss")
        ax.legend(fontsize=6, loc="upper right")
        fig.tight_layout()
        name = f"curves_{stage}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        files.append((name, stage))
    return files


def timeline(data: ReportData, out: Path) -> str | None:
    """Every attempt as a row of coloured phases (loading, running, exited, destroyed), with its spend."""
    attempts = [a for a in data.attempts if a.phases]
    if not attempts:
        return None
    plt = _plt()
    t0 = min(p.start for a in attempts for p in a.phases)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(attempts)))
    seen = set()
    for i, a in enumerate(attempts):
        for p in a.phases:
            if p.state == A.DESTROYED:
                continue
            label = p.state if p.state not in seen else None
            seen.add(p.state)
            ax.barh(i, (p.end - p.start) / 60, left=(p.start - t0) / 60, height=0.6,
                    color=STATE_COLOURS.get(p.state, "#333333"), label=label)
        end = max(p.end for p in a.phases)
        if any(p.state == A.DESTROYED for p in a.phases):
            ax.plot([(end - t0) / 60], [i], marker="x", color=STATE_COLOURS[A.DESTROYED],
                    label=None if "destroyed" in seen else "destroyed")
            seen.add("destroyed")
        ax.text((end - t0) / 60, i, f" ${a.spent:.3f} {a.reason or ''}", va="center", fontsize=7)
    ax.set_yticks(range(len(attempts)), [a.label for a in attempts], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="minutes since the first launch", title="instances by state, with spend and end reason")
    span = max(p.end for a in attempts for p in a.phases) - t0
    ax.set_xlim(0, span / 60 * 1.3 + 0.1)   # room for the spend labels
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=90)
    plt.close(fig)
    return "timeline.png"


def coverage_map(cov: RoundCoverage, out: Path, metric: str = PRIMARY) -> str | None:
    """The grid of one round: colour = metric of finished cells, text = state (and value)."""
    if not cov.axes:
        return None
    import numpy as np

    plt = _plt()
    z = np.full((len(cov.rows), len(cov.cols)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(cov.cols), 1.2 + 0.8 * len(cov.rows)))
    for (r, c), cell in cov.grid.items():
        i, j = cov.rows.index(r), cov.cols.index(c)
        value = cell.metrics.get(metric)
        if value is not None and cell.state == CellState.FINISHED:
            z[i, j] = value
        text = cell.state + (f"\n{value:.4g}" if value is not None else "")
        ax.text(j, i, text, ha="center", va="center", fontsize=8)
    im = ax.imshow(z, cmap="viridis_r", aspect="auto")
    if not np.isnan(z).all():
        fig.colorbar(im, ax=ax, label=metric)
    ax.set_xticks(range(len(cov.cols)), cov.cols)
    ax.set_yticks(range(len(cov.rows)), cov.rows)
    ax.set(xlabel=cov.axes[1] if len(cov.axes) > 1 else "", ylabel=cov.axes[0], title=f"{cov.round}: {metric}")
    fig.tight_layout()
    name = f"coverage_{cov.round}.png"
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def groups(stats: dict[str, list[GroupStat]], out: Path, metric: str = PRIMARY) -> str | None:
    """Mean ± std of the metric per axis value, one panel per axis, every cell as a dot."""
    stats = {k: v for k, v in stats.items() if v}
    if not stats:
        return None
    plt = _plt()
    fig, axs = plt.subplots(1, len(stats), figsize=(3.6 * len(stats), 3.4), squeeze=False)
    for ax, (axis, groups_) in zip(axs[0], stats.items(), strict=True):
        xs = range(len(groups_))
        ax.errorbar(xs, [g.mean for g in groups_], yerr=[g.std or 0 for g in groups_], fmt="o", capsize=4)
        for x, g in zip(xs, groups_, strict=True):
            ax.plot([x, x], [g.lo, g.hi], color="#999999", linewidth=6, alpha=0.3)
        ax.set_xticks(list(xs), [g.value for g in groups_])
        ax.set(xlabel=axis, ylabel=metric, title=f"{metric} by {axis}")
    fig.tight_layout()
    fig.savefig(out / "groups.png", dpi=90)
    plt.close(fig)
    return "groups.png"


def capacity(rows: list[CellRecord], out: Path, metric: str = PRIMARY) -> str | None:
    """Cost against metric for cells of different capacity."""
    if len({c.params["hidden_dim"] for c in rows}) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in rows:
        ax.scatter(c.cost, c.metrics[metric])
        ax.annotate(f"{c.name} (h{c.params['hidden_dim']})", (c.cost, c.metrics[metric]), fontsize=7)
    ax.set(xlabel="cost of the cell ($)", ylabel=metric, title="capacity: cost against error")
    fig.tight_layout()
    fig.savefig(out / "capacity.png", dpi=90)
    plt.close(fig)
    return "capacity.png"


STOPPED_COLOUR = "#8e44ad"   # the app's purple for stopped early


def rungs(data: ReportData, out: Path) -> str | None:
    """Early stopping: every attempt's curve of the rule's metric against its position in the stage (the rule's
    unit), an X where a cell was stopped (hollow where a person stopped it), the cut-off at each rung (the last
    judgement there: the most cells compared) and the rungs as dotted lines."""
    es = data.early_stop
    if es is None or not es.rungs:
        return None
    plt = _plt()
    attempts = {a.attempt_id: a for a in data.attempts}
    judged_at = {r.attempt_id for r in es.rungs if r.stop}
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colours: dict[str, str] = {}
    by_hand = False
    for aid, pts in es.points.items():
        a = attempts.get(aid)
        if a is None or not pts:
            continue
        colour = colours.setdefault(a.cell, f"C{len(colours) % 10}")
        xs, ys = zip(*pts, strict=True)
        several = sum(1 for i in es.points if i in attempts and attempts[i].cell == a.cell) > 1
        ax.plot(xs, ys, color=colour, linewidth=1.2, alpha=0.85, marker=".", markersize=3,
                label=f"{a.cell}#{a.attempt}" if several else a.cell)
        if a.reason == EndReason.STOPPED_EARLY and aid not in judged_at:   # a person's stop: its last point
            ax.plot([xs[-1]], [ys[-1]], marker="X", markersize=9, markerfacecolor="none", color=STOPPED_COLOUR,
                    linestyle="none", label=None if by_hand else "stopped by a person")
            by_hand = True
    stops = [r for r in es.rungs if r.stop]
    if stops:
        ax.plot([r.position for r in stops], [r.value for r in stops], marker="X", markersize=9, linestyle="none",
                color=STOPPED_COLOUR, label="stopped early")
    last = {r.rung: r for r in es.rungs}   # each rung's last judgement: its cut-off among the most cells
    for k, r in sorted(last.items()):
        x = es.rung_position(k)
        ax.axvline(x, color="#999999", linestyle=":", linewidth=0.8)
        ax.plot([x], [r.cutoff], marker="_", markersize=22, markeredgewidth=2.5, color="black", linestyle="none",
                label="cut-off at a rung" if k == min(last) else None)
        ax.annotate(f"rung {k}", (x, r.cutoff), textcoords="offset points", xytext=(4, 6), fontsize=7)
    values = [v for pts in es.points.values() for _, v in pts] + [r.cutoff for r in es.rungs]
    if values and all(v > 0 for v in values):
        ax.set_yscale("log")
    unit = {"percent": f"% of the cell's {es.stage} epochs", "epochs": f"{es.stage} epoch",
            "steps": f"{es.stage} optimiser step"}[es.unit]
    ax.set(xlabel=unit, ylabel=es.metric, title=f"early stopping on {es.metric}: cells, stops and cut-offs")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out / "rungs.png", dpi=90)
    plt.close(fig)
    return "rungs.png"
