"""The wheel a host installs: built from the sweep's checkout (the code that passed preflight), hashed.

`pip wheel <repo> --no-deps --no-build-isolation` needs no network (setuptools and wheel come from the
running environment). The sha256 goes into the ledger, so a result can be traced to the exact code.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


class WheelBuildFailed(RuntimeError):
    """pip could not build the wheel (its last error line is in the message)."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_wheel(repo_root: Path, out_dir: Path, *, timeout_s: float = 300.0) -> tuple[Path, str]:
    """(path of the built wheel in out_dir, its sha256). The build runs in a temp dir, so a stale wheel in
    out_dir is never mistaken for this one."""
    repo_root, out_dir = Path(repo_root).resolve(), Path(out_dir).resolve()
    if not (repo_root / "pyproject.toml").is_file():
        raise WheelBuildFailed(f"{repo_root} has no pyproject.toml: not a usim checkout")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="usim-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "wheel", str(repo_root), "--no-deps", "--no-build-isolation",
               "--no-index", "-q", "-w", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  cwd=tmp, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise WheelBuildFailed(f"pip wheel {repo_root} did not finish in {timeout_s:g} s") from None
        built = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(built) != 1:
            lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
            why = next((ln for ln in lines if ln.lower().startswith("error")), lines[-1] if lines else "no wheel built")
            raise WheelBuildFailed(f"pip wheel {repo_root} failed ({proc.returncode}): {why} "
                                   "(the laptop needs setuptools>=70.1: pip install -e '.[tui]' brings it)")
        dest = out_dir / built[0].name
        shutil.move(str(built[0]), dest)
    return dest, sha256_of(dest)
