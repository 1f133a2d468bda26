from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from burgers_files import smooth_fields, write_pdebench

from usim_core.data.burgers import solve
from usim_core.data.generate import GenSpec, generate
from usim_core.data.h5io import DataError, fingerprint, open_pdebench, read_rows
from usim_core.data.initial import sample_initial


def test_generated_file_round_trips_in_pdebench_layout(tmp_path: Path) -> None:
    spec = GenSpec(nu=0.05, n=5, nx=64, nt=6, t_end=0.5, seed=3)
    path = generate(spec, tmp_path / "b.h5", workers=1)
    with h5py.File(path, "r") as f:
        assert f["tensor"].shape == (5, 6, 64) and f["tensor"].dtype == np.float32
        assert f["x-coordinate"].shape == (64,) and f["t-coordinate"].shape == (6,)
        assert f.attrs["Nu"] == 0.05 and f.attrs["seed"] == 3 and f.attrs["solver"] == "spectral"
        assert "version" in f.attrs
        stored = f["tensor"][()]
    expected = solve(sample_initial(5, 64, 3), 0.05, np.linspace(0, 0.5, 6)).u
    np.testing.assert_allclose(stored, expected.astype(np.float32), rtol=0, atol=1e-6)
    info = open_pdebench(path, 0.05)
    assert (info.n, info.nt, info.nx) == (5, 6, 64)
    np.testing.assert_allclose(read_rows(path, np.array([3, 1]), x_stride=2, t_stride=5),
                               stored[[3, 1]][:, ::5, ::2])
    assert not list(tmp_path.glob("*.partial"))


def test_generation_resumes_a_partial_file_and_is_reproducible(tmp_path: Path) -> None:
    spec = GenSpec(nu=0.05, n=40, nx=32, nt=3, t_end=0.1, seed=0)
    whole = generate(spec, tmp_path / "whole.h5", workers=1)
    seen: list[int] = []

    def stop_after_first_block(done: int, total: int) -> None:
        seen.append(done)
        if done >= 16:
            raise KeyboardInterrupt
    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(spec, out, workers=1, progress=stop_after_first_block)
    assert not out.exists() and out.with_name(out.name + ".partial").exists()   # never half-written under the name
    resumed_from: list[int] = []
    generate(spec, out, workers=1, progress=lambda d, t: resumed_from.append(d))
    assert resumed_from[0] == 16   # the finished block was kept
    with h5py.File(whole) as a, h5py.File(out) as b:
        np.testing.assert_array_equal(a["tensor"][()], b["tensor"][()])
    assert fingerprint(whole) == fingerprint(out)


def test_published_pdebench_quirks_load(pdebench_file) -> None:
    path = pdebench_file("1D_Burgers_Sols_Nu0.001.hdf5", n=4, nt=11, nx=16, published_quirks=True)
    info = open_pdebench(path, 0.001)
    assert info.nu == 0.001   # from the file name: published files carry no Nu attribute
    assert info.t.size == 11   # the 12th t entry is dropped
    assert info.x.min() > 0 and info.x.max() < 1
    np.testing.assert_allclose(info.x, (np.arange(16) + 0.5) / 16, atol=1e-6)


def test_fingerprint_changes_with_content_but_not_with_the_path(tmp_path: Path) -> None:
    a = write_pdebench(tmp_path / "a.h5", smooth_fields(6, 5, 16, seed=0))
    b = write_pdebench(tmp_path / "b.h5", smooth_fields(6, 5, 16, seed=0))
    c = write_pdebench(tmp_path / "c.h5", smooth_fields(6, 5, 16, seed=1))
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_bad_files_fail_naming_the_file_and_problem(tmp_path: Path, pdebench_file) -> None:
    with pytest.raises(DataError, match=r"missing\.h5: data file not found"):
        open_pdebench(tmp_path / "missing.h5")
    nokey = tmp_path / "nokey.h5"
    with h5py.File(nokey, "w") as f:
        f["data"] = np.zeros((2, 3, 4))
    with pytest.raises(DataError, match=r"nokey\.h5: missing dataset 'tensor'.*found: data"):
        open_pdebench(nokey)
    flat = tmp_path / "flat.h5"
    with h5py.File(flat, "w") as f:
        f["tensor"] = np.zeros((5, 16), np.float32)
        f["x-coordinate"] = np.zeros(16)
        f["t-coordinate"] = np.zeros(5)
    with pytest.raises(DataError, match=r"flat\.h5: 'tensor' must be \(samples, time, x\), got shape \(5, 16\)"):
        open_pdebench(flat)
    with pytest.raises(DataError, match=r"Nu0\.01\.hdf5: the file holds nu = 0\.01, but the config asks for nu = 0\.001"):
        open_pdebench(pdebench_file(), 0.001)
    u = smooth_fields(4, 5, 16)
    u[2, 3, 7] = np.nan
    nan = write_pdebench(tmp_path / "nan.h5", u)
    open_pdebench(nan)   # layout is fine; values are checked when read
    with pytest.raises(DataError, match=r"nan\.h5: NaN/Inf in row\(s\) \[2\]"):
        read_rows(nan, np.arange(4))
    badt = tmp_path / "badt.h5"
    write_pdebench(badt, smooth_fields(2, 5, 16))
    with h5py.File(badt, "a") as f:
        del f["t-coordinate"]
        f["t-coordinate"] = np.arange(9.0)
    with pytest.raises(DataError, match=r"badt\.h5: t-coordinate has 9 entries but tensor has 5 frames"):
        open_pdebench(badt)


def test_rows_are_read_in_chunks_in_any_order_dense_or_sparse(tmp_path: Path, monkeypatch) -> None:
    import usim_core.data.h5io as h5io
    u = smooth_fields(30, 7, 16)
    path = write_pdebench(tmp_path / "rows.h5", u)
    monkeypatch.setattr(h5io, "READ_ROWS", 4)
    for rows in (np.array([5, 3, 4, 6, 2, 7]), np.array([29, 0, 14, 3, 22])):   # dense, then sparse
        np.testing.assert_array_equal(read_rows(path, rows, x_stride=3, t_stride=2), u[rows][:, ::2, ::3])
    with pytest.raises(DataError, match=r"rows\.h5: row index out of range 0\.\.29"):
        read_rows(path, np.array([1, 30]))


def test_pdebench_initial_conditions_draw_their_mean_from_unpicked_modes_and_window_at_absolute_x() -> None:
    """PDEBench's init_multi on (-1, 1): no offset draw (a row's mean is its unpicked modes' constant terms), and
    the tanh window's edges lie in (0.1, 0.9) of x itself, so a windowed row is zero on the negative half."""
    n, nx = 400, 256
    u = sample_initial(n, nx, seed=7, family="pdebench", length=2.0)
    x = 2.0 * (np.arange(nx) + 0.5) / nx - 1.0
    windowed = np.abs(u[:, x < 0]).max(axis=1) < 1e-6
    assert 0.4 < windowed.mean() < 0.6, windowed.mean()
    plain = u[~windowed]
    assert np.median(np.abs(plain.mean(axis=1))) > 0.2, "unpicked modes leave a random mean"
    same = sample_initial(n, nx, seed=7)
    assert not np.isclose(same, u).all() and not (np.abs(same[:, x < 0]).max(axis=1) < 1e-6).any(), \
        "usim's own family windows on the unit coordinate, never the whole negative half"
    with pytest.raises(ValueError, match="allowed offset, pdebench"):
        sample_initial(1, nx, seed=0, family="pdebnech")


def test_a_family_other_than_offset_names_its_file_and_key_and_the_config_allows_only_the_two(tmp_path: Path) -> None:
    from usim_core.config import ConfigError, load_config

    base = GenSpec(nu=0.01, n=4, nx=32, nt=3, t_end=0.1, seed=1)
    other = GenSpec(nu=0.01, n=4, nx=32, nt=3, t_end=0.1, seed=1, length=2.0, family="pdebench")
    assert "pdebench" not in base.filename() and other.filename().endswith(f"_L2_pdebench_{other.key()}.h5")
    assert base.key() != other.key()
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml",
                      {"data.generate.family": "pdebench", "data.generate.length": 2.0})
    assert (cfg.data.generate.family, cfg.data.generate.length) == ("pdebench", 2.0)
    with pytest.raises(ConfigError, match=r"data\.generate\.family.*'offset' or 'pdebench'"):
        load_config(Path(__file__).resolve().parents[2] / "configs/runs/burgers_tiny.yaml",
                    {"data.generate.family": "pdebnech"})
