"""PDEBench-layout HDF5 files: validated opening, chunked strided reads, cheap content fingerprints.

Layout: dataset `tensor` (N, nt, nx) float32, `x-coordinate` (nx,), `t-coordinate` (nt,) and attribute `Nu`.
Published PDEBench files differ in two ways that are accepted here: x on (-1, 1) (domain length 2; the
coordinate is kept as the fraction of the period, in [0, 1), and the length as `length`) and a t-coordinate
with nt + 1 entries (the extra last entry is dropped). Files `datagen` writes hold x on [0, 1) (length 1), or on (-1, 1) with `--length 2`. `nu` comes from the `Nu` attribute or,
failing that, from the file name (`..._Nu0.01.hdf5`). Files are never read whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from usim_core.config import ConfigError

READ_ROWS = 32   # rows per read: ~26 MB at 201 x 1024 float32


class DataError(ConfigError):
    """Unusable data; the message names the file and the problem."""


@dataclass
class PdeFile:
    path: Path
    n: int
    nt: int
    nx: int
    nu: float
    x: np.ndarray   # (nx,) fraction of the period, in [0, 1)
    t: np.ndarray   # (nt,)
    length: float = 1.0   # period of the domain in the file's own x units


def _nu_from_name(path: Path) -> float | None:
    m = re.search(r"nu[_=]?([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", path.stem, flags=re.IGNORECASE)
    return float(m.group(1)) if m else None


def open_pdebench(path: str | Path, nu: float | None = None) -> PdeFile:
    """Check a file's layout (not its values) and return its description; `nu`, when given, must match."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        for key in ("tensor", "x-coordinate", "t-coordinate"):
            if key not in f:
                raise DataError(f"{path}: missing dataset '{key}' (PDEBench layout needs tensor, "
                                f"x-coordinate, t-coordinate); found: {', '.join(sorted(f.keys())) or 'nothing'}")
        ds = f["tensor"]
        if ds.ndim != 3:
            raise DataError(f"{path}: 'tensor' must be (samples, time, x), got shape {ds.shape}")
        n, nt, nx = ds.shape
        if n < 1 or nt < 2 or nx < 4:
            raise DataError(f"{path}: 'tensor' shape {ds.shape} is too small (need >= 1 sample, 2 frames, 4 points)")
        x = np.asarray(f["x-coordinate"][()], dtype=np.float64).ravel()
        t = np.asarray(f["t-coordinate"][()], dtype=np.float64).ravel()
        file_nu = float(f.attrs["Nu"]) if "Nu" in f.attrs else _nu_from_name(path)
    if x.size != nx:
        raise DataError(f"{path}: x-coordinate has {x.size} entries but tensor has {nx} points")
    if t.size not in (nt, nt + 1):
        raise DataError(f"{path}: t-coordinate has {t.size} entries but tensor has {nt} frames (allowed: {nt} or {nt + 1})")
    t = t[:nt]
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
        raise DataError(f"{path}: x-coordinate or t-coordinate contains NaN/Inf")
    if np.any(np.diff(t) <= 0) or np.any(np.diff(x) <= 0):
        raise DataError(f"{path}: x-coordinate and t-coordinate must be increasing")
    length = 1.0
    if x.min() >= 0 and x.max() < 1:
        pass
    elif x.min() > -1 and x.max() < 1:
        x, length = (x + 1) / 2, 2.0   # published PDEBench files: (-1, 1), a domain of length 2
    else:
        raise DataError(f"{path}: x-coordinate spans [{x.min():g}, {x.max():g}]; expected [0, 1) or (-1, 1)")
    if file_nu is None:
        raise DataError(f"{path}: no viscosity: no 'Nu' attribute and no Nu<value> in the file name")
    if nu is not None and not np.isclose(file_nu, nu, rtol=1e-6, atol=0):
        raise DataError(f"{path}: the file holds nu = {file_nu:g}, but the config asks for nu = {nu:g}")
    return PdeFile(path, n, nt, nx, file_nu, x, t, length)


def read_rows(path: str | Path, rows: np.ndarray, x_stride: int = 1, t_stride: int = 1) -> np.ndarray:
    """(len(rows), ceil(nt/t_stride), ceil(nx/x_stride)) float32 of the given rows (any order), read in chunks
    of READ_ROWS rows. Raises DataError if a row holds NaN/Inf."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows)
    sorted_rows = rows[order]
    with h5py.File(path, "r") as f:
        ds = f["tensor"]
        if rows.size and (sorted_rows[0] < 0 or sorted_rows[-1] >= ds.shape[0]):
            raise DataError(f"{path}: row index out of range 0..{ds.shape[0] - 1}")
        nt = len(range(0, ds.shape[1], t_stride))
        nx = len(range(0, ds.shape[2], x_stride))
        out = np.empty((rows.size, nt, nx), dtype=np.float32)
        for lo in range(0, rows.size, READ_ROWS):
            chunk = sorted_rows[lo:lo + READ_ROWS]
            span = int(chunk[-1] - chunk[0]) + 1
            if span <= 2 * chunk.size:   # dense rows: one contiguous read, strided in memory (faster)
                block = ds[int(chunk[0]):int(chunk[0]) + span]
                out[order[lo:lo + READ_ROWS]] = block[chunk - chunk[0], ::t_stride, ::x_stride]
            else:
                for j, r in zip(order[lo:lo + READ_ROWS], chunk, strict=True):
                    out[j] = ds[int(r)][::t_stride, ::x_stride]
    bad = ~np.isfinite(out).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"{path}: NaN/Inf in row(s) {rows[bad][:10].tolist()} of 'tensor'")
    return out


def fingerprint(path: str | Path) -> str:
    """Content hash from size, layout, attributes and three sampled rows: cheap for 8 GB files, but any
    regeneration with other settings, seed or solver changes it."""
    path = Path(path)
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        ds = f["tensor"]
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
        h.update(json.dumps({"size": path.stat().st_size, "shape": ds.shape, "dtype": str(ds.dtype),
                             "attrs": attrs}, sort_keys=True, default=str).encode())
        for key in ("x-coordinate", "t-coordinate"):
            h.update(np.ascontiguousarray(f[key][()]).tobytes())
        n = ds.shape[0]
        for row in sorted({0, n // 2, n - 1}):
            h.update(np.ascontiguousarray(ds[row]).tobytes())
    return h.hexdigest()[:16]
