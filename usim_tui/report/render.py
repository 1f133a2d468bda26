"""The report itself: sections 1-8 (1-9 with early stopping) of the analysis as a Doc, figures beside it, written as report.md
(and report.html on request)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from usim_core.eval.gates import ENERGY_TOL, MASS_TOL, gate
from usim_tui.report import analysis as A
from usim_tui.report import figures
from usim_tui.report.doc import Doc, to_html, to_markdown
from usim_tui.report.model import PRIMARY, EarlyStopRecord, ReportData


def _f(x: float | None, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def _usd(x: float | None) -> str:
    return "n/a" if x is None else f"${x:.3f}"


def _gate(metrics: dict[str, float], name: str) -> str:
    key = "mass_drift" if name == "mass" else "energy_violation"
    ok = gate(metrics, name)
    if ok is None:
        return "n/a"
    return f"{metrics[key]:.3g} {'pass' if ok else 'FAIL'}" if key in metrics else ("pass" if ok else "FAIL")


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


SECTIONS = ("summary", "coverage", "leaderboard", "comparisons", "curves", "early_stopping", "failures", "next",
            "wandb")


def numbers(data: ReportData) -> dict[str, int]:
    """Each section's number: the early-stopping section only where the sweep has a rule or a cell was stopped
    early, the sections after it one further down."""
    shown = [s for s in SECTIONS if s != "early_stopping" or A.has_early_stopping(data)]
    return {s: i for i, s in enumerate(shown, 1)}


def _summary(doc: Doc, data: ReportData, s: A.Summary) -> None:
    doc.h2("1. Summary")
    n = numbers(data)
    stopped = f", {s.stopped_early} stopped early (section {n['early_stopping']})" if s.stopped_early else ""
    state = (f"complete: {s.finished} finished{stopped}" if s.complete and s.stopped_early else "complete"
             if s.complete else f"**ended: {s.finished} finished, {s.failed} failed{stopped}; nothing more runs "
             "without a relaunch**" if s.ended else "**in progress: the figures below cover what exists so far**")
    doc.p(f"Sweep `{data.sweep}` on provider `{data.provider}`, report of {_when(data.now)}: {state}.")
    over = " (**over budget**)" if s.spent > s.budget else ""
    if data.crash_loop:
        doc.p(f"**Launching is paused by a crash loop**: `{data.crash_loop}` (section {n['failures']}).")
    elif data.paused:
        doc.p("**Launching is paused.**")
    early = [["cells stopped early", f"{s.stopped_early}, costing {_usd(s.stopped_cost)} (section "
              f"{n['early_stopping']})"]] if "early_stopping" in n else []
    doc.table(["", "value"], [
        ["cells finished", f"{s.finished} / {s.total}"],
        ["cells running", str(s.running)],
        ["cells failed", str(s.failed)],
        *early,
        ["cells waiting for a relaunch", str(s.retrying)],
        ["cells not started", str(s.not_started)],
        ["duplicates (not run)", str(s.duplicates)],
        ["spend / budget", f"{_usd(s.spent)} / {_usd(s.budget)} ({100 * s.spent / s.budget:.0f}%){over}"],
        ["cost per finished config", f"{_usd(s.cost_per_finished)} (planned {_usd(s.planned_cost_per_cell)})"],
        *_interruptible_rows(data),
        ["wall-clock", A.format_seconds(s.wall_clock_s)],
    ])
    if s.missing:
        doc.h3("What is missing")
        doc.p(f"{len(s.missing)} of {s.total} cells have no result yet; comparisons below use only the "
              f"{s.finished} finished cells.")
        doc.table(["cell", "state", "attempts", "last reason"],
                  [[c.name, c.state, str(c.attempts), c.reason or ""] for c in s.missing])


def _interruptible_rows(data: ReportData) -> list[list[str]]:
    """Summary rows of a sweep that rented at a bid: what that saved against on demand, what interruptions cost."""
    bids = [a for a in data.attempts if a.bid is not None]
    if not bids:
        return []
    outbid = sum(1 for a in data.attempts if a.reason == "outbid")
    resumed = sum(1 for a in data.attempts if a.resumed_from is not None)
    lost = sum(a.lost_s for a in data.attempts)
    return [["saved at a bid (vs on demand)", f"about {_usd(sum(a.saved for a in bids))} on {len(bids)} "
             "interruptible attempts: what the same instances would have cost at their hosts' on-demand prices, "
             "less what they cost (the extra hosts and training that interruptions cost are in the spend)"],
            ["interruptions", f"{outbid} attempts ended outbid; {resumed} attempts resumed from a pulled "
             f"checkpoint; {A.format_seconds(lost)} of training lost"]]


def _coverage(doc: Doc, data: ReportData, out: Path) -> None:
    doc.h2(f"{numbers(data)['coverage']}. Coverage")
    for cov in A.coverage(data):
        doc.h3(f"Round `{cov.round}`")
        if cov.axes:
            a0, a1 = cov.axes[0], (cov.axes[1] if len(cov.axes) > 1 else "")
            rows = []
            for r in cov.rows:
                row = [r]
                for c in cov.cols:
                    cell = cov.grid.get((r, c))
                    v = cell.metrics.get(PRIMARY) if cell else None
                    row.append("—" if cell is None else cell.state + (f" {v:.4g}" if v is not None else ""))
                rows.append(row)
            doc.table([f"{a0} \\ {a1}" if a1 else a0, *(cov.cols if a1 else [PRIMARY])], rows)
            name = figures.coverage_map(cov, out)
            if name:
                doc.image(name, f"coverage of {cov.round}")
        else:
            doc.table(["cell", "state", "overrides", PRIMARY],
                      [[c.name, c.state + (f" (= {c.duplicate_of})" if c.duplicate_of else ""),
                        ", ".join(f"{k}={v}" for k, v in c.overrides.items()), _f(c.metrics.get(PRIMARY))]
                       for c in cov.cells])


def _leaderboard(doc: Doc, data: ReportData) -> None:
    doc.h2(f"{numbers(data)['leaderboard']}. Leaderboard")
    board = A.leaderboard(data)
    champ = A.champion(data)
    if not board:
        doc.p(f"No cell has a `{PRIMARY}` evaluation yet.")
        other = [c for c in data.cells if c.metrics]
        if other:
            keys = sorted({k for c in other for k in c.metrics})
            doc.p(f"{len(other)} cells reported eval metrics without `{PRIMARY}` (not in the eval schema of "
                  "usim_core/eval/schema.py), shown as recorded:")
            doc.table(["cell", "source", *keys], [[c.name, c.eval.source if c.eval else "",
                                                   *(_f(c.metrics.get(k)) for k in keys)] for c in other])
        return
    doc.p(f"Lower is better. Ranked by the val (small) eval's per-frame nRMSE (`val`), as the champion is chosen; "
          "test numbers never rank. `split` says whether the other numbers come from the full (test) or the small "
          f"(val) eval. Gates: |mass drift| ≤ {MASS_TOL:g}, energy violation ≤ {ENERGY_TOL:g}.")
    rows = []
    for c in board:
        m = c.metrics
        mark = " **champion**" if c is champ else ""
        rows.append([c.name + mark, _f(c.val_score(PRIMARY)), c.eval.split if c.eval else "", _f(m.get(PRIMARY)),
                     _f(m.get("nrmse_1step")),
                     _gate(m, "mass"), _gate(m, "energy"),
                     _f(c.eval.ttc_gain if c.eval else None, ".2%"),
                     A.format_seconds(c.train_seconds), _usd(c.cost)])
    for name, m in A.baselines(data).items():
        rows.append([f"baseline: {name}", "", "", _f(m.get(PRIMARY)), _f(m.get("nrmse_1step")),
                     "", "", "", "", ""])
    doc.table(["cell", "val", "split", "per-frame nRMSE", "1-step nRMSE", "mass drift", "energy violation", "TTC gain",
               "train time", "cost"], rows)
    if not champ:
        doc.p("No champion: no finished cell has a val (small) eval, and a champion is never chosen on test.")
    else:
        base = A.baselines(data).get("persistence", {}).get(PRIMARY)
        vs = f", {base / champ.metrics[PRIMARY]:.2f}× better than persistence" if base else ""
        gated = A.passes_gates(champ.metrics)
        warn = " **No finished cell passes the physics gates**: this is only the lowest error." if gated is False else ""
        doc.p(f"Champion: `{champ.name}` with per-frame nRMSE {champ.metrics[PRIMARY]:.4g}{vs}.{warn}")
        coarse = A.baselines(data).get("coarse_solver")
        if coarse and "nx" in coarse:
            cost = champ.metrics.get("model_cpu_s_per_traj")
            doc.p(f"Coarse-solver reference (the project's own solver on {coarse['nx']:.0f} points, the grid whose "
                  f"CPU cost matches the model's): per-frame nRMSE {_f(coarse.get(PRIMARY))} at "
                  f"{_f(coarse.get('cpu_s_per_traj'))} CPU s per trajectory; the champion costs "
                  f"{_f(cost)} CPU s per trajectory.")


def _comparisons(doc: Doc, data: ReportData, out: Path) -> None:
    doc.h2(f"{numbers(data)['comparisons']}. Comparisons")
    noise = A.run_noise(data)
    if noise.std is None:
        hint = f"; section {numbers(data)['next']} suggests repeats" if A.champion(data) else ""
        doc.p("Run-to-run noise: **unknown** (no repeated configuration finished), so no difference below can be "
              f"called real yet{hint}.")
    else:
        doc.p(f"Run-to-run noise: pooled std {noise.std:.4g} of {PRIMARY} over {noise.dof} degrees of freedom "
              f"from repeats {', '.join('/'.join(g) for g in noise.groups)}.")
    stats = {axis: A.group_stats(data, axis) for axis in A.axes(data)}
    for axis, groups in stats.items():
        if not groups:
            continue
        doc.h3(f"By `{axis}`")
        doc.table([axis, "cells", f"mean {PRIMARY}", "std", "min", "max"],
                  [[g.value, str(g.n), _f(g.mean), _f(g.std), _f(g.lo), _f(g.hi)] for g in groups])
        verdict = A.exceeds_noise(groups, noise)
        if len(groups) < 2:
            doc.p(f"Only one `{axis}` group has finished cells: nothing to compare yet.")
        else:
            best = A.best_group(groups)
            spread = max(g.mean for g in groups) - min(g.mean for g in groups)
            said = {None: "cannot be compared with run-to-run noise (no repeats)",
                    True: "**exceeds** run-to-run noise (more than 2 standard errors)",
                    False: "is **within** run-to-run noise"}[verdict]
            named = (f"Best `{axis}` on val = {best.value} (mean val score {best.val_mean:.4g})" if best else
                     f"No `{axis}` is named best: not every group has a val eval, and a best is never chosen on test")
            doc.p(f"{named}; the spread of group means ({spread:.4g}) {said}.")
    name = figures.groups(stats, out)
    if name:
        doc.image(name, "metric by axis value")
    rows = A.capacity_rows(data)
    if len({c.params["hidden_dim"] for c in rows}) >= 2:
        doc.h3("Capacity against cost")
        doc.table(["cell", "operator hidden", "latent tokens", PRIMARY, "cost", "train time"],
                  [[c.name, str(c.params["hidden_dim"]), str(c.params.get("latent_tokens", "")),
                    _f(c.metrics[PRIMARY]), _usd(c.cost), A.format_seconds(c.train_seconds)] for c in rows])
        name = figures.capacity(rows, out)
        if name:
            doc.image(name, "capacity against cost")
    else:
        doc.p("Capacity against cost: fewer than two capacities have finished.")


def _curves(doc: Doc, data: ReportData, out: Path) -> None:
    doc.h2(f"{numbers(data)['curves']}. Training curves and instance timeline")
    files = figures.loss_curves(data, out)
    if not files:
        doc.p("No loss curves recorded for finished cells yet.")
    for name, stage in files:
        doc.image(name, f"{stage} loss")
    name = figures.timeline(data, out)
    if name:
        doc.image(name, "instance timeline")
    doc.table(["attempt", "gpu", "machine", "$/h", "state", "reason", "ran", "spent"],
              [[a.label, a.gpu or "", a.machine_id or "", f"{a.price_per_hour:.3f}", a.state, a.reason or "",
                A.format_seconds(((a.ended_at or data.now) - a.created_at) if a.created_at else None),
                _usd(a.spent)] for a in data.attempts])


def _failures(doc: Doc, data: ReportData) -> None:
    doc.h2(f"{numbers(data)['failures']}. Failures")
    by = A.failures_by_reason(data)
    if not by:
        doc.p("No attempt failed.")
    else:
        doc.table(["reason", "attempts", "cost"], [[r, str(n), _usd(c)] for r, (n, c) in by.items()])
    failed = [a for a in data.attempts if a.reason and a.reason not in A.NOT_FAILURES]
    if failed:
        doc.table(["attempt", "reason", "cost", "error"],
                  [[a.label, a.reason or "", _usd(a.spent), "`" + A.first_line(a.error).replace("`", "'") + "`" if a.error else ""]
                   for a in failed])
    lost = [a for a in data.attempts if a.results and a.results.startswith("results lost")]
    if lost:   # money beat data: the instance was destroyed before its run dir came back
        doc.h3("Results lost")
        doc.table(["attempt", "why"], [[a.label, a.results.removeprefix("results lost: ")] for a in lost])
        doc.p("These instances were destroyed before their run directories came back (the budget cap, a stop, "
              "or a pull that kept failing): their checkpoints and eval files exist nowhere.")
    if data.crash_loop:
        doc.p(f"**Crash loop**: launching was paused on the shared error `{data.crash_loop}`.")
    for err, labels in A.shared_errors(data):
        shown = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
        doc.p(f"Shared error of {len(labels)} attempts ({shown}): `{err}`")
    stuck = A.stuck_attempts(data)
    if stuck:
        doc.h3("Stuck instances")
        doc.table(["attempt", "waited", "cost", "ended"],
                  [[s.attempt.label, A.format_seconds(s.seconds), _usd(s.cost), s.attempt.reason or "still waiting"]
                   for s in stuck])
        doc.p(f"Stuck instances cost {_usd(sum(s.cost for s in stuck))} in total.")


def _at(es: EarlyStopRecord, position: int) -> str:
    """A position in the stage, in the rule's unit: `20%`, `epoch 3`, `step 400`."""
    return {"percent": f"{position}%", "epochs": f"epoch {position}", "steps": f"step {position}"}[es.unit]


def _early_stopping(doc: Doc, data: ReportData, out: Path) -> None:
    """The stopping rule, the cells it stopped (with their reason and cost), the rungs and their cut-offs."""
    doc.h2(f"{numbers(data)['early_stopping']}. Early stopping")
    es, e = data.early_stop, A.early_stopping(data)
    if es is not None:
        shown = range(max([*e.judged, 0]) + 2)   # those judged and the next; in percent, those before the end
        rungs = ", ".join(_at(es, es.rung_position(k)) for k in shown if es.unit != "percent"
                          or es.rung_position(k) < 100) + ("" if es.unit == "percent" else ", …")
        per = {"percent": " of each cell's own epochs", "epochs": "", "steps": ""}[es.unit]
        doc.p(f"Rule: successive halving (Optuna's SuccessiveHalvingPruner) on `{es.metric}` of the `{es.stage}` "
              f"stage, lower is better. Rungs at {rungs}{per}; at each rung about 1 in {es.eta} of the "
              f"cells compared go on, once {es.min_compared} cells have reached it; the {es.continue_best} best "
              "stopped cell(s) are trained again to the full length once nothing waits. A kept cell is judged but "
              "never stopped.")
    else:
        doc.p("The sweep has no `early_stop:` rule; these cells were stopped early by a person.")
    finished = (f"; a finished cell cost {_usd(e.finished_mean_cost)} on average" if e.finished_mean_cost is not None
                else "")
    if e.stopped or e.stopped_cost:
        doc.p(f"**{len(e.stopped)} cell(s) stopped early**, costing {_usd(sum(x.cost for x in e.stopped))} in all"
              f"{finished}. Every attempt ended early (continued cells' first ones too) cost "
              f"{_usd(e.stopped_cost)}. Their results so far were pulled back; they are not failures.")
    else:
        doc.p("No cell was stopped early.")
    if e.stopped:
        doc.table(["cell", "stopped at", es.metric if es else "metric", "cut-off", "compared", "attempts", "cost",
                   "reason"],
                  [[x.cell.name, f"rung {x.rung.rung} ({_at(es, x.rung.position)})" if x.rung and es else "by a person",
                    _f(x.rung.value) if x.rung else "", _f(x.rung.cutoff) if x.rung else "",
                    str(x.rung.compared) if x.rung else "", str(x.cell.attempts), _usd(x.cost), x.cell.reason or ""]
                   for x in e.stopped])
    if e.continued:
        doc.p("Continued to the full length after being stopped: " + ", ".join(
            f"`{c.name}` ({c.state})" for c in e.continued) + ".")
    if e.kept:
        doc.p("Kept by a person (judged, never stopped by the rule): " + ", ".join(f"`{c.name}` ({c.state})" for c in e.kept) + ".")
    if es is not None and e.judged:
        doc.table(["rung", "at", "cells judged", "stopped", f"cut-off ({es.metric})"],
                  [[str(k), _at(es, es.rung_position(k)), str(n), str(e.stops.get(k, 0)), _f(e.cutoffs[k].cutoff)]
                   for k, n in e.judged.items()])
        name = figures.rungs(data, out)
        if name:
            doc.image(name, "early stopping: each cell's metric, where it was stopped, the cut-off at each rung")
    elif es is not None:
        doc.p("No cell has been judged at a rung yet.")


def _next(doc: Doc, data: ReportData) -> None:
    doc.h2(f"{numbers(data)['next']}. Next steps")
    ns = A.next_steps(data)
    basis = "observed" if ns.observed else "planned (nothing finished yet)"
    price = f" at an observed ${ns.price_per_hour:.3f}/h" if ns.price_per_hour else ""
    items = []
    if ns.champion:
        cfg = ", ".join(f"`{k}={v}`" for k, v in ns.champion.overrides.items()) or "the base config"
        items.append(f"Best configuration: `{ns.champion.name}` ({cfg}), per-frame nRMSE "
                     f"{ns.champion.metrics[PRIMARY]:.4g}.")
    else:
        have = any(c.state == "finished" and PRIMARY in c.metrics for c in data.cells)
        items.append("No finished cell has a val (small) evaluation: no best configuration is named (it is never "
                     "chosen on test)." if have else
                     f"No finished cell has a `{PRIMARY}` evaluation yet: there is no best configuration.")
    if ns.uncovered:
        items.append(f"{len(ns.uncovered)} cells remain uncovered ({', '.join(c.name for c in ns.uncovered)}); "
                     f"at {_usd(ns.cost_per_cell)} per finished config ({basis}){price} they would cost about "
                     f"{_usd(ns.cost_per_cell * len(ns.uncovered))}.")
    else:
        items.append("Every cell is covered.")
    if A.run_noise(data).std is None and ns.champion:
        items.append(f"Repeat `{ns.champion.name}` with two more seeds to measure run-to-run noise "
                     f"(about {_usd(2 * ns.cost_per_cell)}).")
    doc.bullets(items)
    if ns.next_round:
        doc.p(f"Suggested next round around the champion ({ns.next_cells} cells, about "
              f"{_usd(ns.next_cells * ns.cost_per_cell)}), to paste under `rounds:` of a sweep file:")
        doc.code(yaml.safe_dump([ns.next_round], sort_keys=False, default_flow_style=None), "yaml")


def _wandb(doc: Doc, data: ReportData) -> None:
    links = [c for c in data.cells if c.wandb_url]
    doc.h2(f"{numbers(data)['wandb']}. W&B runs")
    if links:
        doc.bullets([f"[{c.name}]({c.wandb_url})" for c in links])
    else:
        doc.p(data.wandb_note or "No W&B links: tracking.wandb.mode is not online.")


def build(data: ReportData, out: Path) -> Doc:
    """The whole report as a Doc; figures are written into `out` as a side effect."""
    doc = Doc(title=f"Sweep report: {data.sweep}")
    s = A.summarize(data)
    _summary(doc, data, s)
    _coverage(doc, data, out)
    _leaderboard(doc, data)
    _comparisons(doc, data, out)
    _curves(doc, data, out)
    if A.has_early_stopping(data):
        _early_stopping(doc, data, out)
    _failures(doc, data)
    _next(doc, data)
    _wandb(doc, data)
    return doc


def write_report(data: ReportData, out: str | Path, fmt: str = "md") -> list[Path]:
    """Write report.md (and report.html for fmt 'html') with PNGs beside it; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in figures.PATTERNS:  # figures of an earlier report that may no longer apply
        for old in out.glob(pattern):
            old.unlink()
    doc = build(data, out)
    written = [out / "report.md"]
    written[0].write_text(to_markdown(doc))
    if fmt == "html":
        written.append(out / "report.html")
        written[1].write_text(to_html(doc))
    return written + [out / name for name in doc.images()]
