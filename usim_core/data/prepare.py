"""From a run config to a DataBundle: files (generated into the cache when absent) -> trajectory-disjoint
splits recorded in a manifest -> normalisation fitted on train only."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from usim_core.config import RunConfig
from usim_core.data.domain import Domain
from usim_core.data.h5io import DataError, PdeFile, fingerprint, open_pdebench, read_rows

MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class Split:
    u: np.ndarray                                  # (n, nt, nx) float32, physical values, strided
    nu: np.ndarray                                 # (n,) float32
    rows: list[tuple[str, int]] = field(default_factory=list)   # (file content hash, row) per trajectory
    dt: float | None = None                        # time between frames (set by prepare_data)


@dataclass
class NormStats:
    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormStats:
        return cls(mean=float(d["mean"]), std=float(d["std"]))

    @classmethod
    def fit(cls, u: np.ndarray) -> NormStats:
        u64 = u.astype(np.float64)
        return cls(mean=float(u64.mean()), std=max(float(u64.std()), 1e-8))


@dataclass
class DataBundle:
    train: Split
    val: Split
    test: Split
    x: np.ndarray        # (nx,) fraction of the period, in [0, 1), after striding
    dt: float            # time between stored frames after striding
    stats: NormStats
    manifest: dict[str, Any]
    manifest_hash: str
    length: float = 1.0  # period of the domain (2 for PDEBench's published files)

    @property
    def domain(self) -> Domain:
        return Domain(self.length, int(self.x.size), self.dt)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)


def split_rows(n: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Disjoint sorted row indices per split; each split gets at least one row."""
    if n < 3:
        raise DataError(f"need at least 3 trajectories to split into train/val/test, got {n}")
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(f"{n} trajectories leave none for train with fractions {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    parts = (perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:])
    return {name: np.sort(p) for name, p in zip(SPLITS, parts, strict=True)}


def data_files(cfg: RunConfig, root: str | Path = ".", workers: int | None = None) -> list[PdeFile]:
    """The config's files, one per nu, validated; generated into cache_dir first when none are given."""
    d = cfg.data
    root = Path(root)
    if d.files:
        paths = [Path(p) if Path(p).is_absolute() else root / p for p in d.files]
    else:
        from usim_core.data.generate import GenSpec, generate
        g = d.generate
        cache = Path(d.cache_dir) if Path(d.cache_dir).is_absolute() else root / d.cache_dir
        paths = []
        for nu in d.nu:
            spec = GenSpec(nu=nu, n=g.n, nx=g.nx, nt=g.nt, t_end=g.t_end, seed=g.seed, length=g.length,
                           family=g.family)
            # in-process unless asked: forking a pool inside a trainer that already runs torch threads can
            # deadlock (seen: one of two local trainers hung for good); `usim-core datagen` asks for every core
            paths.append(generate(spec, cache / spec.filename(), workers=workers or 1))
    files = [open_pdebench(p, nu) for p, nu in zip(paths, d.nu, strict=True)]
    shapes = {(f.nt, f.nx) for f in files}
    if len(shapes) > 1:
        raise DataError("data files differ in (frames, points): "
                        + ", ".join(f"{f.path}: {f.nt}x{f.nx}" for f in files))
    if len({f.length for f in files}) > 1:
        raise DataError("data files differ in their domain length (different problems at the same nu): "
                        + ", ".join(f"{f.path}: {f.length:g}" for f in files))
    if len({round(frame_dt(f), 6) for f in files}) > 1:
        raise DataError("data files differ in their time step: "
                        + ", ".join(f"{f.path}: {frame_dt(f):g}" for f in files))
    return files


def frame_dt(f: PdeFile) -> float:
    """Mean spacing of the stored frames (float32 coordinates make single differences inexact)."""
    return float((f.t[-1] - f.t[0]) / (f.nt - 1))


def prepare_data(cfg: RunConfig, root: str | Path = ".", workers: int | None = None) -> DataBundle:
    d = cfg.data
    files = data_files(cfg, root, workers)
    s = d.splits
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]]] = {k: [] for k in SPLITS}
    manifest_files = []
    for f in files:
        h = fingerprint(f.path)
        n = min(f.n, d.max_trajectories or f.n)
        rows = split_rows(n, (s.train, s.val, s.test), s.seed)
        for name in SPLITS:
            u = read_rows(f.path, rows[name], d.x_stride, d.t_stride)
            parts[name].append((u, np.full(len(u), f.nu, dtype=np.float32), [(h, int(r)) for r in rows[name]]))
        manifest_files.append({"path": str(f.path), "hash": h, "nu": f.nu, "rows_used": n,
                               "shape": [f.n, f.nt, f.nx], "length": f.length})
    ref = files[0]
    dt = frame_dt(ref) * d.t_stride
    splits = {name: Split(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps]),
                          [r for p in ps for r in p[2]], dt) for name, ps in parts.items()}
    manifest = {
        "version": MANIFEST_VERSION,
        "files": manifest_files,
        "splits": {name: [[h, r] for h, r in sp.rows] for name, sp in splits.items()},
        "settings": {"x_stride": d.x_stride, "t_stride": d.t_stride, "max_trajectories": d.max_trajectories,
                     "splits": s.model_dump(mode="json"), "nu": list(d.nu)},
    }
    return DataBundle(
        train=splits["train"], val=splits["val"], test=splits["test"],
        x=ref.x[::d.x_stride].astype(np.float64), dt=dt,
        stats=NormStats.fit(splits["train"].u), manifest=manifest, manifest_hash=manifest_hash(manifest),
        length=ref.length,
    )


def manifest_hash(manifest: dict[str, Any]) -> str:
    """Hash of what was seen (file hashes, rows, settings), not of where the files lie on this machine."""
    portable = {**manifest, "files": [{k: v for k, v in f.items() if k != "path"} for f in manifest["files"]]}
    return hashlib.sha256(json.dumps(portable, sort_keys=True).encode()).hexdigest()[:16]
