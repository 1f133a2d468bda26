"""The domain (length, dx, dt) travels from the file into every physical computation (issue 16).

PDEBench's published files hold x on (-1, 1): domain length 2. A file in that layout, solved with the same
nu as generated data (length 1), must score a true-frame PDE residual of the same order as the generated
data's, not one that treats it as a length-1 problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from burgers_files import write_pdebench

from usim_core.config import RunConfig
from usim_core.data import DataError, prepare_data
from usim_core.data.burgers import solve
from usim_core.data.initial import sample_initial
from usim_core.eval import metrics as M

NU, DT, NT, NX = 0.1, 0.05, 41, 128


def _file(tmp_path: Path, name: str, length: float) -> Path:
    """Trajectories of u_t + (u^2/2)_x = (nu/pi) u_xx on a periodic domain of this length, t in [0, 2]."""
    u0 = sample_initial(6, NX, seed=3)
    u = solve(u0, NU, np.linspace(0, DT * (NT - 1), NT), length=length).u
    return write_pdebench(tmp_path / name, u, nu=NU, published_quirks=length == 2.0)


def _bundle(tmp_path: Path, path: Path):
    cfg = RunConfig.model_validate({"data": {"nu": [NU], "files": [str(path)], "x_stride": 1, "t_stride": 1,
                                             "cache_dir": str(tmp_path / "cache"),
                                             "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}})
    return prepare_data(cfg)


def _true_residual(b) -> float:
    u = torch.as_tensor(b.train.u, dtype=torch.float64)
    nu = torch.as_tensor(b.train.nu, dtype=torch.float64)
    return float(M.pde_residual(u[:, 1:], u[:, 0], b.dt, nu, length=b.domain.length).mean())


def test_pdebench_layout_file_carries_length_two_and_its_true_residual_matches_generated_data(tmp_path: Path
                                                                                              ) -> None:
    pde = _bundle(tmp_path, _file(tmp_path, "1D_Burgers_Sols_Nu0.1.hdf5", 2.0))
    gen = _bundle(tmp_path, _file(tmp_path, "gen_Nu0.1.hdf5", 1.0))
    assert pde.domain.length == 2.0 and gen.domain.length == 1.0
    assert pde.domain.dx == pytest.approx(2.0 / NX) and pde.domain.dt == pytest.approx(DT, rel=1e-5)
    r_pde, r_gen = _true_residual(pde), _true_residual(gen)
    # a perfect prediction must score near zero in both layouts (length 1 on the PDEBench file gave ~3.9)
    assert r_pde < 0.5 and r_gen < 0.5
    assert 0.33 < r_pde / r_gen < 3.0
    # ... and the length matters: the same frames judged as a length-1 problem are far off
    u = torch.as_tensor(pde.train.u, dtype=torch.float64)
    wrong = float(M.pde_residual(u[:, 1:], u[:, 0], pde.dt, torch.as_tensor(pde.train.nu).double()).mean())
    assert wrong > 5 * r_pde


def test_files_of_different_domains_are_never_mixed(tmp_path: Path) -> None:
    a = _file(tmp_path, "a_Nu0.1.hdf5", 2.0)
    b = write_pdebench(tmp_path / "b_Nu0.2.hdf5", sample_initial(6, NX, seed=4)[:, None].repeat(NT, 1), nu=0.2)
    cfg = RunConfig.model_validate({"data": {"nu": [NU, 0.2], "files": [str(a), str(b)],
                                             "cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(DataError, match="domain length"):
        prepare_data(cfg)


def test_datagen_writes_a_length_two_file_in_pdebenchs_layout(tmp_path: Path) -> None:
    # issue 16 cold try: there was no command that writes a length-2 file; `datagen --length 2` writes x on
    # (-1, 1) as PDEBench's published files do, solved on that domain, and the loader reads length 2 back
    import subprocess
    import sys

    out = tmp_path / "1D_Burgers_Sols_Nu0.1.hdf5"
    r = subprocess.run([sys.executable, "-m", "usim_core", "datagen", "--nu", str(NU), "--n", "6", "--nx", str(NX),
                        "--nt", str(NT), "--t-end", str(DT * (NT - 1)), "--seed", "3", "--length", "2",
                        "--workers", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "length 2" in r.stdout
    b = _bundle(tmp_path, out)
    assert b.domain.length == 2.0 and b.domain.dx == pytest.approx(2.0 / NX)
    assert _true_residual(b) < 0.5  # the frames solve the length-2 problem
    # the same initial states solved on length 2 by hand: datagen's frames are those
    ref = solve(sample_initial(6, NX, seed=3), NU, np.linspace(0, DT * (NT - 1), NT), length=2.0).u
    import h5py

    with h5py.File(out) as f:
        assert np.allclose(f["tensor"][()], ref, atol=1e-5)
        assert f["x-coordinate"][0] == pytest.approx(-1 + 1 / NX) and f.attrs["length"] == 2.0
    bad = subprocess.run([sys.executable, "-m", "usim_core", "datagen", "--nu", "0.1", "--length", "3",
                          "--out", str(tmp_path / "x.h5")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--length" in bad.stderr and "1, 2" in bad.stderr
