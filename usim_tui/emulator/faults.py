"""Fault profiles (`configs/faults/*.yaml`): what goes wrong, how often and for how long, in the emulator.

Probabilities are per instance unless said otherwise; durations are [low, high] seconds drawn uniformly.
Every draw comes from a generator seeded by (seed, instance label), so two policies rehearsed with the
same seed meet the same machines for the same cell and attempt.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from usim_core.config import ConfigError, Strict, format_validation_error, load_tree, resolve_config

Span = tuple[float, float]


class _Span(Strict):
    @field_validator("*", mode="after")
    @classmethod
    def _ordered(cls, v: Any) -> Any:
        if isinstance(v, tuple) and len(v) == 2 and v[0] > v[1]:
            raise ValueError(f"range [{v[0]}, {v[1]}] must be [low, high]")
        return v


class Chance(_Span):
    p: float = Field(0.0, ge=0, le=1, description="probability per instance")


class Timed(Chance):
    duration_s: Span = Field((0.0, 0.0), description="how long it lasts")


class AfterStart(Chance):
    after_s: Span = Field((600.0, 1800.0), description="seconds after reaching running")


class BadBuild(_Span):
    cells: int = Field(0, ge=0, description="cells (drawn by seed) whose every attempt crashes at start-up")
    p: float = Field(0.0, ge=0, le=1, description="or: probability per cell")
    from_attempt: int | None = Field(None, ge=1, description="or: every cell's attempts from this number on "
                                     "(a bad build shipped for the relaunches)")
    exit_after_s: Span = Field((10.0, 60.0))


class Stages(_Span):
    codec: Span = (300.0, 420.0)
    operator: Span = (600.0, 900.0)
    diffusion_residual: Span = (300.0, 480.0)
    consistency_distill: Span = (180.0, 300.0)
    eval_small: Span = (60.0, 120.0)
    eval_full: Span = (180.0, 300.0)


class ApiFaults(Strict):
    burst_429_p: float = Field(0.0, ge=0, le=1, description="chance a request starts a burst of 429s")
    burst_len: int = Field(3, ge=1, description="requests answered 429 in a burst")
    error_5xx_p: float = Field(0.0, ge=0, le=1, description="chance a request is answered 502/503")
    drop_p: float = Field(0.0, ge=0, le=1, description="chance a connection is dropped without an answer")
    html_list_p: float = Field(0.0, ge=0, le=1, description="chance a listing is answered by an HTML error page "
                               "with HTTP 200 (a CDN in front of the API)")


class VastRealism(_Span):
    """How the real Vast behaves where it is unkind, on by default (docs/vast.md cites each; where Vast's own
    figures are unknown, the worse case). `Emulator(gentle=True)` turns all of it off, for unit tests only."""

    listing_lag_s: Span = Field((60.0, 180.0), description="a new instance shows in listings and show-one only "
                                "this long after its create (drawn per instance)")
    slow_create: Timed = Field(default_factory=lambda: Timed(p=0.2, duration_s=(20.0, 200.0)),
                               description="the create's answer comes this late; the instance exists at once")
    ssh_refused_s: Span = Field((5.0, 60.0), description="SSH refuses connections this long after `running`")
    ssh_dead: Chance = Field(default_factory=lambda: Chance(p=0.03),
                             description="hosts whose listed SSH port never answers")
    bare_ssh_env: bool = Field(True, description="SSH sessions get a container's bare environment: the image's "
                               "variables (PATH to its python) only in the init process and the onstart")
    reliability_field: Literal["reliability", "reliability2", "both", "mixed"] = Field(
        "mixed", description="which reliability field an offer row carries (mixed: each machine one of them)")


class Market(_Span):
    """Interruptible (bid) instances (market.py, docs/vast.md "Interruptible instances"): how often a running one is
    outbid, the price that clears its machine then, and whether and when the market falls back to its bid. The
    rate does not depend on the bid (the worse case: Vast does not say how often a bid margin buys peace)."""

    outbid_per_hour: float = Field(0.0, ge=0, description="a running bid instance is outbid at this rate (a Poisson "
                                   "process over its running hours)")
    clearing_rise: Span = Field((1.1, 1.5), description="once outbid, the bid that would run it again, as a "
                                "multiple of its bid then (a raised bid at or above it runs it at once)")
    back_p: float = Field(0.6, ge=0, le=1, description="chance the market falls back to its bid by itself")
    back_after_s: Span = Field((900.0, 3600.0), description="and how long after the outbid it does")


class FaultProfile(_Span):
    name: str
    description: str = ""
    provisioning_s: Span = Field((5.0, 30.0), description="null/created before loading")
    image_pull_s: Span = Field((30.0, 120.0), description="normal loading time")
    slow_pull: Timed = Field(default_factory=Timed, description="loading takes duration_s instead")
    stuck_loading: Timed = Field(default_factory=Timed, description="loading for duration_s (hours), then runs")
    oci_error: Chance = Field(default_factory=Chance, description="stays `created` with OCI runtime create failed")
    offline: AfterStart = Field(default_factory=AfterStart, description="host goes offline mid-run")
    outbid: AfterStart = Field(default_factory=AfterStart, description="stopped triple mid-run, on any instance (a "
                               "fault for tests; a bid instance's real outbids come from `market`)")
    market: Market = Field(default_factory=Market, description="interruptible instances: outbids and comebacks")
    bad_build: BadBuild = Field(default_factory=BadBuild)
    eval_failure: Chance = Field(default_factory=Chance, description="full eval exits non-zero after training")
    install_s: Span = Field((30.0, 120.0), description="SSH hosts: installing the wheel's dependencies before "
                            "the run starts")
    stages: Stages = Field(default_factory=Stages)
    api: ApiFaults = Field(default_factory=ApiFaults)
    vast: VastRealism = Field(default_factory=VastRealism)


GENTLE = VastRealism(listing_lag_s=(0.0, 0.0), slow_create=Timed(), ssh_refused_s=(0.0, 0.0), ssh_dead=Chance(),
                     bare_ssh_env=False, reliability_field="both")


def load_faults(path: str | Path) -> FaultProfile:
    """A fault profile file, or a shipped one by name (`seed_night`)."""
    path = resolve_config(path, "faults")
    data, origins = load_tree(path)  # the run configs' reader: includes, clear YAML errors
    data.setdefault("name", path.stem)
    try:
        return FaultProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, origins, model=FaultProfile)) from None


def rng_for(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(rng: random.Random, span: Span) -> float:
    return rng.uniform(span[0], span[1])
