"""Strict, typed run configuration (no torch).

Every key in a run config is either consumed by the code or rejected: an unknown key fails with the file,
the dotted key path and the closest valid key. YAML files may `include:` others (relative paths, deep merge,
later keys win, cycles refused).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message says which file, which key and what to do."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------- data
class GenerateConfig(Strict):
    """How to generate Burgers data when the files are absent (PDEBench conventions)."""

    n: int = Field(200, ge=3, description="trajectories per viscosity")
    nx: int = Field(1024, ge=16, description="spatial points of the generated solution")
    nt: int = Field(201, ge=2, description="stored frames, t in [0, t_end]")
    t_end: float = Field(2.0, gt=0)
    seed: int = 0
    length: Literal[1.0, 2.0] = Field(1.0, description="period of x: 1 ([0, 1)) or 2 (PDEBench's (-1, 1))")
    family: Literal["offset", "pdebench"] = Field(
        "offset", description="initial conditions: usim's (a uniform mean offset) or PDEBench's own init_multi")


class SplitConfig(Strict):
    """Trajectory-disjoint split sizes, as fractions of the trajectories of each viscosity."""

    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class DataConfig(Strict):
    pde: Literal["burgers1d"] = "burgers1d"
    nu: list[float] = Field(default_factory=lambda: [0.01], min_length=1)
    files: list[str] = Field(
        default_factory=list,
        description="HDF5 files in PDEBench layout, one per viscosity; empty = generate into cache_dir",
    )
    cache_dir: str = "data"
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    x_stride: int = Field(4, ge=1, description="spatial subsampling (PDEBench baselines: 1024/4 = 256)")
    t_stride: int = Field(5, ge=1, description="temporal subsampling (PDEBench baselines: 201 -> 41)")
    splits: SplitConfig = Field(default_factory=SplitConfig)
    max_trajectories: int | None = Field(None, ge=3, description="cap on trajectories per file (quick runs)")

    @model_validator(mode="after")
    def _files_match_nu(self) -> DataConfig:
        if self.files and len(self.files) != len(self.nu):
            raise ValueError(f"data.files has {len(self.files)} entries but data.nu has {len(self.nu)}")
        return self


# ---------------------------------------------------------------- model
class CodecConfig(Strict):
    latent_tokens: int = Field(32, ge=1)
    latent_dim: int = Field(32, ge=1)
    hidden_dim: int = Field(64, ge=1, description="width of the encoder and the any-point decoder")
    depth: int = Field(2, ge=1)
    linear_path: bool = Field(False, description="a per-token linear patch map beside the learned encoder and "
                              "decoder, initialised as an exact pair (lossless when latent_dim >= the patch's "
                              "points); the learned parts start at zero and learn what it misses")


class TransformerWidth(Strict):
    """Width and heads of a transformer; the heads must split the width evenly."""

    hidden_dim: int = Field(96, ge=1)
    heads: int = Field(6, ge=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerWidth:
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by heads {self.heads}")
        return self


class OperatorConfig(TransformerWidth):
    depth: int = Field(3, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    mixer: Literal["attention", "spectral"] = Field(
        "attention", description="token mixing: attention (rotary token positions) or spectral (FNO-style: each "
                                 "Fourier mode of the token axis mixes the channels; heads unused)")
    viscous_step: bool = Field(False, description="each step's viscous part exact (ETD1 in Fourier): "
                               "u' = E u + phi1 (u_op - u), E = exp(-(nu/pi) k^2 dt); the operator's fine-scale "
                               "error is damped as viscosity damps it (pair it with an exact codec, linear_path)")


class DiffusionConfig(TransformerWidth):
    depth: int = Field(2, ge=1)
    steps: int = Field(8, ge=1, description="K: refinement/denoising steps of the sampler")
    prediction: Literal["eps", "v"] = "v"
    min_noise_std: float = Field(2e-3, gt=0, lt=1, description="PDE-Refiner's smallest noise level")


class ConsistencyConfig(Strict):
    steps: int = Field(1, ge=1, le=2, description="student sampling steps")


class ModelConfig(Strict):
    codec: CodecConfig = Field(default_factory=CodecConfig)
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)


# ---------------------------------------------------------------- stages
class StageConfig(Strict):
    epochs: int = Field(1, ge=0)
    batch_size: int = Field(12, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = Field(0.0, ge=0, lt=1, description="linear warmup, fraction of the stage's optimizer steps")
    min_lr: float = Field(0.0, ge=0, description="floor of the cosine decay")
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="max gradient norm; 0 = off")
    accum_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    patience: int = Field(10, ge=1, description="epochs without val improvement before stopping")
    max_steps: int | None = Field(None, ge=1, description="cap on optimizer steps (quick runs)")
    reflect: bool = Field(False, description="mirror half the training windows (x -> -x, u -> -u): a symmetry of "
                                             "Burgers, so each is another exact solution (train/augment.py)")
    galilean: float = Field(0.0, ge=0, description="boost each training window by c ~ U(-galilean, galilean): "
                                                   "u(x - c t, t) + c, another exact solution at a shifted mean; 0 = off")
    initial_repeat: int = Field(1, ge=1, description="draw training windows that start in the first initial_span "
                                                     "frames this many times as often: the first steps, from fields "
                                                     "not yet smoothed by viscosity, are the hardest, and their error "
                                                     "is carried to the end")
    initial_span: int = Field(1, ge=1, description="how many of the first start frames initial_repeat covers "
                                                   "(1 = windows from the initial condition only)")

    @model_validator(mode="after")
    def _floor_below_lr(self) -> StageConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr:g} is above lr {self.lr:g}")
        return self


class CodecStageConfig(StageConfig):
    low_mode_weight: float = Field(
        0.0, ge=0, description="extra weight on the reconstruction error's lowest Fourier modes: a rollout re-encodes "
                               "every step, and a low-mode error, which viscosity barely damps, is carried to the end")
    low_modes: int = Field(8, ge=1, description="how many of the lowest nonzero modes low_mode_weight covers")


class OperatorStageConfig(StageConfig):
    unroll: int = Field(4, ge=1, description="steps of the unrolled (multi-step) loss")
    unroll_weight: float = Field(0.5, ge=0, description="weight of the unrolled loss beside the one-step loss")


class StagesConfig(Strict):
    codec: CodecStageConfig = Field(default_factory=CodecStageConfig)
    operator: OperatorStageConfig = Field(default_factory=OperatorStageConfig)
    diffusion_residual: StageConfig = Field(default_factory=StageConfig)
    consistency_distill: StageConfig = Field(default_factory=StageConfig)


STAGES: tuple[str, ...] = ("codec", "operator", "diffusion_residual", "consistency_distill")


def check_batch_split(cfg: RunConfig, parts: int, what: str) -> None:
    """A stage's batch_size is the global batch, split over `parts` data-parallel processes (one per GPU): it
    needs at least one row for each. `what` names where `parts` came from, for the message."""
    for stage in STAGES:
        size = getattr(cfg.stages, stage).batch_size
        if size < parts:
            raise ConfigError(f"stages.{stage}.batch_size {size} is smaller than {what} ({parts}): the batch is "
                              "split over them, at least one row each")


# ---------------------------------------------------------------- eval
class RewardWeights(Strict):
    mass: float = Field(1.0, ge=0)
    energy: float = Field(1.0, ge=0)
    residual: float = Field(1.0, ge=0)


class TTCConfig(Strict):
    enabled: bool = False
    candidates: int = Field(8, ge=1)
    max_evaluations: int = Field(150, ge=1, description="reward evaluations per trajectory")
    lookahead: int = Field(0, ge=0, description="extra steps rolled out before scoring a candidate")
    noise_scale: float = Field(1.0, gt=0)
    weights: RewardWeights = Field(default_factory=RewardWeights)
    select: Literal["reward", "mean", "random"] = Field(
        "reward", description="reward: TTC proper; mean / random: compute-matched controls (the candidates' "
                              "mean latent, or a random candidate, at the same N and budget)")


class EvalSetConfig(Strict):
    enabled: bool = True
    split: Literal["val", "test"] = "val"
    trajectories: int | None = Field(None, ge=1, description="first N of the split; null = all")
    horizons: list[int] = Field(default_factory=lambda: [1, 4, 16], min_length=1)
    modes: list[Literal["operator", "diffusion", "consistency"]] = Field(
        default_factory=lambda: ["operator", "diffusion", "consistency"], min_length=1
    )


class EvalConfig(Strict):
    small: EvalSetConfig = Field(default_factory=lambda: EvalSetConfig(split="val", trajectories=16))
    full: EvalSetConfig = Field(default_factory=lambda: EvalSetConfig(split="test"))
    ttc: TTCConfig = Field(default_factory=TTCConfig)


# ---------------------------------------------------------------- tracking
class WandbConfig(Strict):
    mode: Literal["online", "offline", "disabled"] = "disabled"
    project: str = "usim"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    run_name: str | None = None
    run_id: str | None = Field(None, description="stable id; the same across relaunch attempts of a cell")


class TrackingConfig(Strict):
    wandb: WandbConfig = Field(default_factory=WandbConfig)


# ---------------------------------------------------------------- run
class RunConfig(Strict):
    seed: int = 17
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """Hash of the experiment: everything but tracking metadata (names, tags, ids)."""
        return config_hash(self.to_dict())

    def architecture(self) -> dict[str, Any]:
        """What decides the shapes of the saved weights; an eval may never change it."""
        return {"model": self.model.model_dump(mode="json"), "data": {"x_stride": self.data.x_stride}}

    def architecture_fingerprint(self) -> str:
        return _digest(self.architecture())


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_hash(resolved: dict[str, Any]) -> str:
    return _digest({k: v for k, v in resolved.items() if k != "tracking"})


# ---------------------------------------------------------------- loading
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# The configs shipped with usim (the repository's configs/, installed as usim_core/configs): sweeps, run configs
# and fault profiles, each named without a path from anywhere (`demo`, `burgers_tiny`, `seed_night`).
SHIPPED = Path(__file__).resolve().parent / "configs"
SHIPPED_KINDS = {"sweeps": "sweep", "runs": "run config", "faults": "fault profile"}


def shipped_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (SHIPPED / kind).glob("*.yaml"))


def resolve_config(value: str | Path, kind: str) -> Path:
    """The file a command was given: a path as it is when it exists, else the shipped `<kind>/<value>.yaml` for
    a bare name. ConfigError naming the shipped ones when it is neither."""
    path = Path(value)
    if path.exists():
        return path
    shipped = SHIPPED / kind / f"{value}.yaml"
    if str(value) == path.name and not path.suffix and shipped.is_file():
        return shipped
    raise ConfigError(f"{value}: no such file, and no shipped {SHIPPED_KINDS[kind]} of that name; shipped {kind}: "
                      f"{', '.join(shipped_names(kind)) or 'none'} ({SHIPPED / kind})")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: a directory; expected a YAML file")
    if path.read_bytes()[:16] == b"SQLite format 3\x00":   # a small ledger can even decode as text
        raise ConfigError(f"{path}: not a YAML text file (a SQLite ledger: pass it with --ledger)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (binary content)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _origins(tree: dict[str, Any], file: Path, prefix: str = "") -> dict[str, Path]:
    out: dict[str, Path] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out[path] = file
        if isinstance(value, dict):
            out.update(_origins(value, file, path + "."))
    return out


def load_tree(path: str | Path, _stack: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read a YAML file with its includes merged in. Returns (tree, dotted key -> file that set it)."""
    path = Path(path).resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError(f"{path}: include cycle: {chain}")
    data = _read_yaml(path)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include must be a path or a list of paths relative to this file")
    tree: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    for inc in includes:
        sub, sub_origins = load_tree(path.parent / inc, (*_stack, path))
        tree = deep_merge(tree, sub)
        origins.update(sub_origins)
    tree = deep_merge(tree, data)
    origins.update(_origins(data, path))
    return tree, origins


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid field names at the parent of loc in the model tree (best effort)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _expected(err: dict[str, Any]) -> str:
    kind = err["type"]
    names = {
        "int_parsing": "an integer",
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_parsing": "a number",
        "float_type": "a number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a string",
        "list_type": "a list",
        "tuple_type": "a list",
        "dict_type": "a mapping",
        "model_type": "a mapping of keys",
        "model_attributes_type": "a mapping of keys",
    }
    if kind in names:
        return f"expected {names[kind]}, got {err.get('input')!r}"
    return err["msg"]


def format_validation_error(exc: ValidationError, file: Path | str, origins: dict[str, Path] | None = None,
                            model: type[BaseModel] | None = None) -> str:
    model = model or RunConfig
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc)
        where = (origins or {}).get(dotted) or _nearest_origin(origins or {}, dotted) or Path(file)
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            parent = ".".join(str(p) for p in loc[:-1])
            hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
            allowed = f"valid keys here: {', '.join(valid)}" if valid else ""
            lines.append(f"{where}: unknown key '{dotted}'" + "".join(f"; {s}" for s in (hint, allowed) if s))
        elif err["type"] == "literal_error":
            lines.append(f"{where}: {dotted}: {err['msg'].lower()}, got {err.get('input')!r}")
        else:
            lines.append(f"{where}: {dotted or '(top level)'}: {_expected(err)}")
    return "\n".join(lines)


def _nearest_origin(origins: dict[str, Path], dotted: str) -> Path | None:
    parts = dotted.split(".")
    while parts:
        parts.pop()
        hit = origins.get(".".join(parts))
        if hit:
            return hit
    return None


def validate(tree: dict[str, Any], file: Path | str = "<config>",
             origins: dict[str, Path] | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, file, origins)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a run config file (with includes; or a shipped one by name, `burgers_tiny`) and apply dotted
    overrides ({"stages.operator.lr": 3e-4}). An empty file is refused: every default is a choice to make."""
    path = resolve_config(path, "runs")
    tree, origins = load_tree(path)
    if not tree:
        raise ConfigError(f"{path}: an empty run config; start from a shipped one (include: it), e.g. "
                          "configs/runs/burgers_tiny.yaml")
    for dotted, value in (overrides or {}).items():
        set_dotted(tree, dotted, value)
    return validate(tree, path, origins)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted}: '{part}' is not a mapping")
        node = nxt
    node[parts[-1]] = value


def get_dotted(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
