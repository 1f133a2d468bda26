"""Sweep files and their expansion into cells (no torch).

A sweep names a base run config and rounds of overrides. A grid round is the product of its axes
(dotted key -> values); a list round is named override sets. Each cell gets a stable, readable name
(`round_a_lr3e-4_w5pct`), tags, the overrides that differ from the base, the fully resolved config and a
config hash. Cells whose resolved configs are identical are reported as duplicates, and an axis whose
values never change the resolved config is refused.

Each cell also says how many GPUs its host has (`num_gpus`: the round's `num_gpus`, else `provider.num_gpus`); the
cell trains data-parallel over all of them (`torchrun --nproc-per-node=<num_gpus>`). It is not part of the run
config: a stage's batch_size is the global batch, so the experiment (and its config hash) is the same on any
number of GPUs; only its speed and its price per hour change.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from usim_core.config import (
    ConfigError,
    RunConfig,
    Strict,
    check_batch_split,
    deep_merge,
    format_validation_error,
    get_dotted,
    load_tree,
    resolve_config,
    set_dotted,
    validate,
)


class Axis(Strict):
    key: str = Field(description="dotted run-config key, e.g. stages.operator.lr")
    name: str = Field(description="tag name, e.g. lr or warmup")
    short: str | None = Field(None, description="prefix in the cell name (default: name)")
    values: list[Any] = Field(min_length=1)
    format: Literal["sci", "pct", "plain"] = "plain"


class Round(Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    # YAML keys `set` and `list` (aliases: those names would shadow builtins here)
    common: dict[str, Any] = Field(default_factory=dict, alias="set", description="overrides for every cell of the round")
    grid: list[Axis] = Field(default_factory=list)
    items: dict[str, dict[str, Any]] = Field(default_factory=dict, alias="list", description="named override sets")
    num_gpus: int | None = Field(None, ge=1, description="GPUs per host for this round's cells, each trained "
                                 "data-parallel over all of them (default: provider.num_gpus)")

    @model_validator(mode="after")
    def _one_kind(self) -> Round:
        if bool(self.grid) == bool(self.items):
            raise ValueError(f"round {self.name} needs exactly one of grid: or list:")
        return self


class ProviderSettings(Strict):
    kind: Literal["local", "vast"] = "local"
    gpu: str = "RTX 4090"
    num_gpus: int = Field(1, ge=1, description="GPUs per host (a round's num_gpus overrides it for its cells); "
                          "every price here and in planning is for a host of this many GPUs")
    max_dph: float = Field(0.45, gt=0, description="highest $/h accepted for an offer (a cell on N GPUs: "
                           "N / num_gpus times it)")
    min_reliability: float = Field(0.98, ge=0, le=1)
    verified: bool = True
    disk_gb: int = Field(64, ge=8)
    image: str = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
    install: str = Field(
        "wheel", description="what the host runs: 'wheel' (the wheel built from the sweep's checkout, pushed and "
        "installed over SSH: fleet/hosts/bring_up.py), or for the onstart bootstrap a pinned requirement "
        "('usim-sweeps==0.1.0'), a wheel URL (https://.../usim_sweeps-0.1.0-py3-none-any.whl) or a git URL@ref")
    price_per_hour: float = Field(0.35, ge=0, description="local provider: notional $/h so budget burn is real "
                                  "(a cell on N GPUs: N / num_gpus times it)")
    startup_deadline_s: float = Field(900, gt=0, description="no started marker by then -> destroy, relaunch")
    max_runtime_s: float = Field(3 * 3600, gt=0, description="hard deadline per attempt")
    offline_grace_s: float = Field(180, ge=0, description="an instance listed offline/unknown this long is given up")
    max_checkpoint_mb: float = Field(2048, ge=0, description="SSH hosts: the last checkpoint is pulled back "
                                     "before destroy unless it is larger than this (0: never)")
    checkpoint_every_s: float = Field(600, ge=0, description="SSH hosts: a training run's resume point (its "
                                      "checkpoints, events, metrics) is pulled this often, the newest kept per "
                                      "cell, so a lost host costs at most this much work (0: never)")
    ssh_deadline_s: float = Field(300, gt=0, description="SSH hosts: an instance whose SSH does not answer (or that "
                                  "cannot be set up) this long after it runs is given up as ssh_unreachable")
    create_timeout_s: float = Field(120, gt=0, description="seconds a create may take to answer (the vastai CLI "
                                    "waits 120); an unanswered create is never retried: the listing settles it")
    create_settle_s: float = Field(600, gt=0, description="how long a new instance may take to show in listings "
                                   "(Vast does not say: docs/vast.md); an unanswered create or a new instance "
                                   "not listed yet is not given up before this")

    pricing: Literal["on-demand", "interruptible", "interruptible-fallback"] = Field(
        "on-demand", description="vast: rent on demand at the offer's price, or interruptible at a bid (outbid "
        "instances stop; docs/vast.md), or interruptible falling back to on demand when no bid offer fits or the "
        "market has taken a cell's host fallback_after_outbids times")
    fallback_after_outbids: int = Field(1, ge=1, description="interruptible-fallback: a cell outbid this many times "
                                        "(since a relaunch) rents on demand from its next attempt on")
    bid_margin: float = Field(1.15, ge=1, description="interruptible: the bid is the offer's min_bid times this")
    max_bid_share: float = Field(0.9, gt=0, le=1, description="interruptible: a bid never exceeds this share of the "
                                 "offer's on-demand GPU price (an offer whose min_bid needs more is skipped)")

    @model_validator(mode="after")
    def _pricing_needs_vast(self) -> ProviderSettings:
        if self.pricing != "on-demand" and self.kind != "vast":
            raise ValueError(f"provider.pricing {self.pricing!r} rents at a bid on Vast: it needs provider.kind: "
                             f"vast (this sweep's is {self.kind!r}); allowed for {self.kind}: on-demand")
        return self

    def host_price(self, price: float, num_gpus: int) -> float:
        """`price`, given (as every $/h of a sweep file) for a host of `self.num_gpus` GPUs, for a host of
        `num_gpus`: prices scale with the GPUs, so a 2-GPU cell is planned and capped at twice a 1-GPU cell's."""
        return price * num_gpus / self.num_gpus


class Planning(Strict):
    price_per_hour: float = Field(0.35, gt=0, description="assumed $/h for planning (a cell on N GPUs: N / "
                                  "provider.num_gpus times it)")
    hours_per_cell: float = Field(1.0, gt=0, description="assumed wall-clock per cell")
    stage_share: float = Field(0.5, gt=0, le=1, description="with early_stop: the share of a cell's hours spent in "
                               "early_stop.stage")
    after_share: float = Field(0.0, ge=0, lt=1, description="with early_stop: the share of a cell's hours after "
                               "early_stop.stage (later stages, evals), which a cell stopped in it never pays; 0 "
                               "plans a stopped cell as paying all of it")

    @model_validator(mode="after")
    def _shares(self) -> Planning:
        if self.stage_share + self.after_share > 1:
            raise ValueError(f"planning.stage_share {self.stage_share} + planning.after_share {self.after_share} is "
                             "more than a cell's hours (at most 1)")
        return self


class EarlyStop(Strict):
    """Successive halving across the sweep's cells (the rule: usim_tui/fleet/stopping/): at each rung the cells
    that reached it are compared on `metric` and the worse ones are stopped, their results pulled as a finished
    cell's are. Rungs lie at grace, grace x eta, grace x eta^2, ... of the stage, in `unit`."""

    metric: str = Field("val/operator/best", description="a metric the trainer writes once per epoch of `stage`; "
                        "lower is better (val/<stage>/loss: this epoch's; val/<stage>/best: the best so far; "
                        "operator: val/operator/nrmse_frame and best_nrmse_frame, the rollout score the champion is "
                        "chosen on)")
    stage: Literal["codec", "operator", "diffusion_residual", "consistency_distill"] = "operator"
    unit: Literal["epochs", "steps", "percent"] = Field(
        "percent", description="what rungs count: the stage's epochs, its optimiser steps, or percent of the "
        "cell's own epochs of the stage (so a cell that trains longer is compared at the same fraction)")
    grace: int = Field(ge=1, description="the first rung, in `unit`: nothing is stopped before it")
    eta: int = Field(3, ge=2, description="reduction factor: about 1 in eta of the cells compared at a rung go on")
    min_compared: int = Field(3, ge=2, description="cells that must have reached a rung before any is stopped there")
    continue_best: int = Field(1, ge=0, description="once no cell waits, this many of the best stopped cells are "
                               "launched again to the full length (from the start; budget permitting)")

    @model_validator(mode="after")
    def _metric_of_stage(self) -> EarlyStop:
        if self.unit == "percent" and self.grace >= 100:
            raise ValueError(f"early_stop.grace {self.grace} percent: the first rung must lie before the stage's "
                             "end (below 100), or no cell is ever judged")
        allowed = self.metrics(self.stage)
        if self.metric not in allowed:
            raise ValueError(f"early_stop.metric {self.metric!r} is not one the trainer writes each epoch of stage "
                             f"{self.stage}; allowed: {', '.join(allowed)}")
        return self

    def rung_position(self, rung: int) -> int:
        """Where rung k lies, in `unit`: grace x eta^k."""
        return self.grace * self.eta ** rung

    def rungs_before(self, end: float) -> list[int]:
        """The rungs that lie before a stage's end (at the end itself nobody is stopped: it is finished)."""
        out: list[int] = []
        while self.rung_position(len(out)) < end:
            out.append(len(out))
        return out

    @staticmethod
    def metrics(stage: str) -> tuple[str, ...]:
        """What usim_core/train/loop.py writes once per epoch of a stage (the operator also its rollout score on
        the val trajectories the champion is chosen on, and the best of it so far)."""
        score = ("val/operator/best_nrmse_frame", "val/operator/nrmse_frame") if stage == "operator" else ()
        return (f"val/{stage}/best", f"val/{stage}/loss", f"train/{stage}/loss", *score)


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    base: str = Field(description="run config, relative to the sweep file")
    common: dict[str, Any] = Field(default_factory=dict, alias="set", description="overrides for every cell")
    tags: list[str] = Field(default_factory=list)
    budget: float = Field(gt=0, description="dollars; nothing launches past it, everything stops at it")
    concurrency: int = Field(4, ge=1)
    max_attempts: int = Field(3, ge=1, description="failed runs per cell (exit/error) before it is marked failed")
    max_machine_faults: int = Field(10, ge=0, description="machine faults per cell (startup_timeout, container_error, "
                                    "offline, outbid) before it is marked failed; they do not use max_attempts")
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    planning: Planning = Field(default_factory=Planning)
    early_stop: EarlyStop | None = Field(None, description="stop losing cells early (see EarlyStop); none: every "
                                         "cell trains to the end")
    rounds: list[Round] = Field(min_length=1)

    @property
    def planned_cost_per_cell(self) -> float:
        """The planned cost of a cell on a host of provider.num_gpus GPUs."""
        return self.planned_cost(self.provider.num_gpus)

    def planned_cost(self, num_gpus: int) -> float:
        """The planned cost of a cell on a host of `num_gpus` GPUs (planning hours at its scaled price)."""
        return self.provider.host_price(self.planning.price_per_hour, num_gpus) * self.planning.hours_per_cell


@dataclass(frozen=True)
class BudgetPlan:
    """What the sweep is planned to cost: every cell in full, and with its early-stopping rule."""

    name: str
    cells: int            # cells that run (duplicates never do)
    budget: float
    full: float           # every cell to the end at the planning price and hours
    fraction: float       # of `full` expected with the rule (1 without one)
    rule: str = ""        # the rule in words, when there is one

    @property
    def expected(self) -> float:
        return self.full * self.fraction

    @property
    def fits(self) -> bool:
        return self.expected <= self.budget * (1 + 1e-9)

    def line(self) -> str:
        text = f"sweep {self.name}: {self.cells} cells planned at ${self.full:.2f} to the end"
        if self.rule:
            text += f"; with early stopping about ${self.expected:.2f} ({self.fraction:.0%}: {self.rule})"
        return text + f"; budget ${self.budget:.2f}" + (": fits" if self.fits else "")


@dataclass
class Cell:
    name: str
    round: str
    tags: list[str]
    overrides: dict[str, Any]
    config: dict[str, Any]
    config_hash: str
    duplicate_of: str | None = None
    run_id: str = ""
    num_gpus: int = 1    # GPUs of the cell's host; it trains on all of them (torchrun --nproc-per-node)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "round": self.round,
            "tags": self.tags,
            "overrides": self.overrides,
            "config": self.config,
            "config_hash": self.config_hash,
            "duplicate_of": self.duplicate_of,
            "run_id": self.run_id,
            "num_gpus": self.num_gpus,
        }


@dataclass
class Sweep:
    spec: SweepSpec
    path: Path
    cells: list[Cell] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(f"sweep {self.name} has no cell {name!r}; cells: {', '.join(c.name for c in self.cells)}")

    @property
    def duplicates(self) -> list[Cell]:
        return [c for c in self.cells if c.duplicate_of]


def format_value(value: Any, fmt: str) -> tuple[str, str]:
    """(text in the cell name, text in the tag) for one axis value. Never truncates: 3e-4 stays 3e-4."""
    if fmt == "sci":
        mantissa, exp = f"{float(value):.6e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa}e{int(exp)}"
        return text, text
    if fmt == "pct":
        pct = f"{float(value) * 100:.4f}".rstrip("0").rstrip(".")
        return f"{pct}pct", f"{pct}%"
    text = str(value)
    return text, text


def load_sweep_spec(path: str | Path) -> SweepSpec:
    tree, origins = load_tree(path)
    try:
        return SweepSpec.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, origins, SweepSpec)) from None


def _resolve(base_tree: dict[str, Any], base_origins: dict[str, Path], overrides: dict[str, Any],
             where: str) -> RunConfig:
    tree = deep_merge(base_tree, {})
    for dotted, value in overrides.items():
        set_dotted(tree, dotted, value)
    try:
        return validate(tree, where, base_origins)
    except ConfigError as exc:
        raise ConfigError(f"{where}:\n{exc}") from None


def _diff(base: dict[str, Any], resolved: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    out = {}
    for key in keys:
        try:
            before = get_dotted(base, key)
        except (KeyError, TypeError):
            before = object()
        after = get_dotted(resolved, key)
        if before != after:
            out[key] = after
    return out


def expand(path: str | Path) -> Sweep:
    """Expand a sweep file (or a shipped sweep by name: `demo`) into cells, with duplicates marked."""
    path = resolve_config(path, "sweeps")
    spec = load_sweep_spec(path)
    base_path = (path.parent / spec.base).resolve()
    if not base_path.is_file():
        raise ConfigError(f"{path}: base: {spec.base} is {base_path}, which is not a file (a relative base is read "
                          "from the sweep file's own folder)")
    base_tree, base_origins = load_tree(base_path)
    base_resolved = validate(base_tree, base_path, base_origins).to_dict()
    sweep = Sweep(spec=spec, path=path)
    seen: dict[str, str] = {}

    def add(name: str, rnd: Round, tags: list[str], overrides: dict[str, Any]) -> None:
        merged = {**spec.common, **rnd.common, **overrides}
        cfg = _resolve(base_tree, base_origins, merged, f"{path} (cell {name})")
        run_id = hashlib.sha256(f"{spec.name}/{name}".encode()).hexdigest()[:12]
        wb = cfg.tracking.wandb
        cfg.tracking.wandb = wb.model_copy(update={
            "run_name": name, "group": wb.group or spec.name, "run_id": run_id,
            "tags": sorted({*wb.tags, *spec.tags, *tags}),
        })
        resolved = cfg.to_dict()
        gpus = rnd.num_gpus or spec.provider.num_gpus
        try:
            check_batch_split(cfg, gpus, f"round {rnd.name}'s num_gpus" if rnd.num_gpus else "provider.num_gpus")
        except ConfigError as exc:
            raise ConfigError(f"{path} (cell {name}): {exc}") from None
        cell = Cell(name=name, round=rnd.name, tags=tags, overrides=_diff(base_resolved, resolved, list(merged)),
                    config=resolved, config_hash=cfg.config_hash(), run_id=run_id, num_gpus=gpus)
        if name in {c.name for c in sweep.cells}:
            raise ConfigError(f"{path}: two cells are named {name!r}; give the rounds or list items distinct names")
        cell.duplicate_of = seen.get(cell.config_hash)
        seen.setdefault(cell.config_hash, name)
        sweep.cells.append(cell)

    for rnd in spec.rounds:
        round_tag = rnd.name.replace("_", "-")
        if rnd.grid:
            _check_axes_change_config(path, base_tree, base_origins, spec, rnd)
            for combo in itertools.product(*(axis.values for axis in rnd.grid)):
                parts, tags, overrides = [rnd.name], [round_tag], {}
                for axis, value in zip(rnd.grid, combo, strict=True):
                    in_name, in_tag = format_value(value, axis.format)
                    parts.append(f"{axis.short if axis.short is not None else axis.name}{in_name}")
                    tags.append(f"{axis.name}={in_tag}")
                    overrides[axis.key] = value
                add("_".join(parts), rnd, tags, overrides)
        else:
            for item, overrides in rnd.items.items():
                add(f"{rnd.name}_{item}", rnd, [round_tag, item], overrides)
    _check_rungs(path, sweep)
    return sweep


def _check_rungs(path: Path, sweep: Sweep) -> None:
    """Refuse an early_stop rule whose first rung no cell reaches (grace at or past every cell's stage end)."""
    es = sweep.spec.early_stop
    if es is None or es.unit != "epochs":
        return
    longest = max(int(c.config["stages"][es.stage]["epochs"]) for c in sweep.cells)
    if es.grace >= longest:
        raise ConfigError(f"{path}: early_stop.grace {es.grace} epochs: no cell trains past it (the longest "
                          f"trains {longest} epochs of {es.stage}), so no cell is ever judged")


def _check_axes_change_config(path: Path, base_tree: dict[str, Any], base_origins: dict[str, Path],
                              spec: SweepSpec, rnd: Round) -> None:
    """Refuse an axis whose values all resolve to the same config (the earlier night's w5 == w6)."""
    for axis in rnd.grid:
        if len(axis.values) < 2:
            without = _resolve(base_tree, base_origins, {**spec.common, **rnd.common}, f"{path} (round {rnd.name})")
            with_it = _resolve(base_tree, base_origins, {**spec.common, **rnd.common, axis.key: axis.values[0]},
                               f"{path} (round {rnd.name}, {axis.key}={axis.values[0]!r})")
            if without.config_hash() == with_it.config_hash():
                raise ConfigError(f"{path}: round {rnd.name}: axis {axis.key} has one value, {axis.values[0]!r}, "
                                  "which is what the round has anyway: it varies nothing (drop it, or add values)")
            continue
        hashes = set()
        for value in axis.values:
            cfg = _resolve(base_tree, base_origins, {**spec.common, **rnd.common, axis.key: value},
                           f"{path} (round {rnd.name}, {axis.key}={value!r})")
            hashes.add(cfg.config_hash())
        if len(hashes) < len(axis.values):
            raise ConfigError(
                f"{path}: round {rnd.name}: axis {axis.key} has values {axis.values} that resolve to the same "
                "config; every value of an axis must change the experiment"
            )


def budget_plan(sweep: Sweep) -> BudgetPlan:
    """The sweep's planned cost in full and with its stopping rule. Successive halving is planned as if the cells
    reached each rung together: past each rung about 1 in eta goes on, plus the min_compared - 1 that no rule
    judges; a stopped cell has paid the hours before its stage and its part of the stage (planning.stage_share),
    not those after it (planning.after_share); each continued cell pays a whole run again. Rungs in steps are planned as no saving (a stage's steps are
    known only once it runs)."""
    spec = sweep.spec
    cells = [c for c in sweep.cells if not c.duplicate_of]
    full = sum(spec.planned_cost(c.num_gpus) for c in cells)
    es = spec.early_stop
    if es is None or not cells or es.unit == "steps":
        return BudgetPlan(spec.name, len(cells), spec.budget, full, 1.0)
    n = len(cells)
    epochs = [float(c.config["stages"][es.stage]["epochs"]) for c in cells]
    shares = [_stage_fraction(es, n, 100.0 if es.unit == "percent" else e) for e in epochs]
    stage = sum(trained for trained, _ in shares) / n
    finishing = sum(done for _, done in shares) / n
    plan = spec.planning
    fraction = min(1.0, 1 - plan.stage_share * (1 - stage) - plan.after_share * (1 - finishing)
                   + min(es.continue_best, n) / n)
    rungs = ", ".join(str(es.rung_position(k)) for k in es.rungs_before(100 if es.unit == "percent" else max(epochs)))
    rule = (f"rungs at {rungs} {es.unit} of {es.stage}, 1 in {es.eta} goes on, {min(es.continue_best, n)} "
            "continued to the end")
    return BudgetPlan(spec.name, n, spec.budget, full, fraction, rule)


def _stage_fraction(es: EarlyStop, n: int, end: float) -> tuple[float, float]:
    """Over n cells under successive halving (rungs before `end`): the mean share of the stage a cell trains, and
    the share of cells that train it to the end."""
    reaching, paid, prev = float(n), 0.0, 0.0
    for k in es.rungs_before(end):
        at = es.rung_position(k)
        paid += reaching * (at - prev) / end
        prev = at
        unjudged = min(es.min_compared - 1.0, reaching)
        reaching = unjudged + (reaching - unjudged) / es.eta
    return (paid + reaching * (end - prev) / end) / n, reaching / n
