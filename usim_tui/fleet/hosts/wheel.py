"""The wheel a host installs, hashed: the code this usim runs, which is the code that passed preflight.

From a checkout (an editable install): `pip wheel <repo> --no-deps --no-build-isolation` (no network: setuptools
comes from the running environment). From an installed wheel (no checkout): the installed distribution's own
files, packed again. The sha256 goes into the ledger, so a result can be traced to the exact code.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DIST = "usim-sweeps"
PACKAGES = ("usim_core/", "usim_tui/")


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
    # setuptools builds in <repo>/build and keeps what is there: a module deleted from the checkout would still
    # be in the wheel (and the recorded sha256 would not be the checkout's code)
    shutil.rmtree(repo_root / "build", ignore_errors=True)
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


def this_usim(out_dir: Path) -> tuple[Path, str]:
    """(wheel, sha256) of the usim this process runs: built from its checkout when it runs from one, else
    packed from the installed distribution."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "usim_core").is_dir():
        return build_wheel(root, out_dir)
    return repack_installed(out_dir)


def repack_installed(out_dir: Path, dist_name: str = DIST) -> tuple[Path, str]:
    """The installed distribution as a wheel again: its package files and metadata as RECORD lists them
    (compiled files and the installer's own notes left out), with a new RECORD."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise WheelBuildFailed(f"{dist_name} is neither a checkout nor installed: cannot make the hosts' wheel") from None
    info = next(f for f in (dist.files or []) if f.name == "METADATA").parent.as_posix()
    skip = {f"{info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    files = [f for f in dist.files or [] if "__pycache__" not in f.parts and not f.name.endswith(".pyc")
             and f.as_posix() not in skip and (f.as_posix().startswith(PACKAGES) or f.as_posix().startswith(info))]
    if not any(f.as_posix().startswith("usim_core/") for f in files):
        raise WheelBuildFailed(f"{dist_name} {dist.version} is installed without its files (an editable install "
                               "outside its checkout?): cannot make the hosts' wheel")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{dist_name.replace('-', '_')}-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as whl:
        for f in sorted(files, key=lambda f: f.as_posix()):
            data = Path(f.locate()).read_bytes()
            whl.writestr(f.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{f.as_posix()},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return dest, sha256_of(dest)
