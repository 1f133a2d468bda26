"""Generate PDEBench-layout Burgers files: row blocks solved in worker processes, written to a partial file
that a rerun resumes, renamed into place only when complete. A lock file serialises concurrent generators of
the same file (two local runs starting at once): the second waits, then finds the file done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from usim_core.data.burgers import solve
from usim_core.data.initial import grid, sample_initial

FORMAT_VERSION = 2   # bump when the solver or the initial conditions change: cached files are keyed by it
BLOCK = 16   # trajectories per solver call: amortises FFT overhead, keeps progress fine-grained


@dataclass(frozen=True)
class GenSpec:
    nu: float
    n: int
    nx: int
    nt: int
    t_end: float
    seed: int
    length: float = 1.0   # the period of x: 1 ([0, 1), generated data) or 2 (PDEBench's published (-1, 1))
    family: str = "offset"   # the initial conditions (usim_core.data.initial.FAMILIES)

    def key(self) -> str:
        fields = asdict(self)
        if self.length == 1.0:
            del fields["length"]  # the key of every file written before lengths existed stays the same
        if self.family == "offset":
            del fields["family"]  # and before families did
        return hashlib.sha256(json.dumps({**fields, "version": FORMAT_VERSION}, sort_keys=True).encode()).hexdigest()[:12]

    def filename(self) -> str:
        on = ("" if self.length == 1.0 else f"_L{self.length:g}") + ("" if self.family == "offset" else f"_{self.family}")
        return f"burgers_nu{self.nu:g}_n{self.n}_{self.nx}x{self.nt}{on}_{self.key()}.h5"

    def x(self) -> np.ndarray:
        """Cell centres: of [0, 1) at length 1, of (-1, 1) at length 2 (PDEBench's published files)."""
        return grid(self.nx) if self.length == 1.0 else self.length * grid(self.nx) - self.length / 2

    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.nt)


def _solve_block(args: tuple[GenSpec, int, int]) -> tuple[int, np.ndarray, str]:
    spec, lo, hi = args
    u0 = sample_initial(hi - lo, spec.nx, spec.seed, start=lo, family=spec.family, length=spec.length)
    sol = solve(u0, spec.nu, spec.times(), length=spec.length)
    return lo, sol.u.astype(np.float32), sol.method


def _workers(requested: int | None) -> int:
    return max(1, requested or len(os.sched_getaffinity(0)))


def generate(spec: GenSpec, out: str | Path, workers: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the file at `out` (unless it already exists) and return its path."""
    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes, also if this process dies
        if out.exists():
            return out
        partial = out.with_name(out.name + ".partial")
        done = _open_partial(partial, spec)
        todo = [(spec, lo, min(lo + BLOCK, spec.n)) for lo in range(0, spec.n, BLOCK) if not done[lo // BLOCK]]
        if progress:
            progress(spec.n - sum(hi - lo for _, lo, hi in todo), spec.n)
        n_workers = min(_workers(workers), max(1, len(todo)))
        # fork (spawn and forkserver re-run an unguarded __main__ script in each worker), and fork before the
        # HDF5 file is open so no child inherits the library's state mid-write
        pool = mp.get_context("fork").Pool(n_workers) if n_workers > 1 else None
        results = pool.imap_unordered(_solve_block, todo) if pool else map(_solve_block, todo)
        with h5py.File(partial, "a") as f:
            ds, mask = f["tensor"], f["blocks_done"]
            try:
                for lo, u, method in results:
                    ds[lo:lo + u.shape[0]] = u
                    mask[lo // BLOCK] = 1
                    f.attrs["solver"] = method if f.attrs.get("solver", method) == method else "mixed"
                    f.flush()
                    if progress:
                        progress(int(np.sum(mask[()] * _block_sizes(spec))), spec.n)
            finally:
                if pool is not None:
                    pool.terminate()
            del f["blocks_done"]
        os.replace(partial, out)
    return out


def _block_sizes(spec: GenSpec) -> np.ndarray:
    return np.array([min(BLOCK, spec.n - lo) for lo in range(0, spec.n, BLOCK)])


def _open_partial(partial: Path, spec: GenSpec) -> np.ndarray:
    """Create the partial file, or reuse one left by an interrupted run of the same spec; the done-mask."""
    nblocks = -(-spec.n // BLOCK)
    if partial.exists():
        try:
            with h5py.File(partial, "r") as f:
                if f.attrs.get("gen_key") == spec.key() and "blocks_done" in f:
                    return f["blocks_done"][()].astype(bool)
        except OSError:
            pass   # torn file from a crash mid-create: start over
        partial.unlink()
    with h5py.File(partial, "w") as f:
        f.create_dataset("tensor", (spec.n, spec.nt, spec.nx), dtype=np.float32,
                         chunks=(1, spec.nt, spec.nx))
        f.create_dataset("x-coordinate", data=spec.x().astype(np.float32))
        f.create_dataset("t-coordinate", data=spec.times().astype(np.float32))
        f.create_dataset("blocks_done", data=np.zeros(nblocks, dtype=np.uint8))
        f.attrs.update({"Nu": spec.nu, "seed": spec.seed, "t_end": spec.t_end, "length": spec.length,
                        "gen_key": spec.key(),
                        "format_version": FORMAT_VERSION, "generator": "usim_core.data",
                        "version": _usim_version()})
    return np.zeros(nblocks, dtype=bool)


def _usim_version() -> str:
    try:
        from importlib.metadata import version
        return version("usim-sweeps")
    except Exception:
        return "unknown"
