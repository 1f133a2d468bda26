"""Helpers for the data tests: small files in PDEBench's layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def write_pdebench(path: Path, u: np.ndarray, *, nu: float | None = 0.01, published_quirks: bool = False) -> Path:
    """A file in PDEBench's layout; published_quirks: x on (-1, 1), nt + 1 time entries, nu only in the name."""
    n, nt, nx = u.shape
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=u.astype(np.float32))
        if published_quirks:
            dx = 2.0 / nx
            f.create_dataset("x-coordinate", data=(-1 + dx / 2 + dx * np.arange(nx)).astype(np.float32))
            f.create_dataset("t-coordinate", data=np.linspace(0, 2.0 * nt / (nt - 1), nt + 1).astype(np.float32))
        else:
            f.create_dataset("x-coordinate", data=((np.arange(nx) + 0.5) / nx).astype(np.float32))
            f.create_dataset("t-coordinate", data=np.linspace(0, 2, nt).astype(np.float32))
            if nu is not None:
                f.attrs["Nu"] = nu
    return path


def smooth_fields(n: int, nt: int, nx: int, seed: int = 0) -> np.ndarray:
    """Distinct, finite, recognisable rows: row i is offset by i so rows can be told apart after loading."""
    rng = np.random.default_rng(seed)
    x = (np.arange(nx) + 0.5) / nx
    t = np.linspace(0, 1, nt)
    a = rng.uniform(0.5, 1.0, (n, 1, 1))
    return (a * np.sin(2 * np.pi * x)[None, None, :] * np.exp(-t)[None, :, None]
            + np.arange(n)[:, None, None]).astype(np.float32)
