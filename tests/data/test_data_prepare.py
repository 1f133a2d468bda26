from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from burgers_files import smooth_fields, write_pdebench

from usim_core.config import RunConfig
from usim_core.data import DataError, NormStats, Split, prepare_data
from usim_core.data.windows import rollout_windows


def config(tmp_path: Path, **data) -> RunConfig:
    return RunConfig.model_validate({"data": {"cache_dir": str(tmp_path / "cache"), **data}})


@pytest.fixture
def two_nu_files(tmp_path: Path) -> list[str]:
    # both in the published layout (x on (-1, 1)): files of different domain lengths are never mixed
    a = write_pdebench(tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5", smooth_fields(20, 11, 32, seed=0),
                       published_quirks=True)
    b = write_pdebench(tmp_path / "1D_Burgers_Sols_Nu0.001.hdf5", smooth_fields(20, 11, 32, seed=1) + 100,
                       published_quirks=True)
    return [str(a), str(b)]


def test_several_nu_files_make_one_dataset_with_disjoint_recorded_splits(tmp_path: Path, two_nu_files) -> None:
    cfg = config(tmp_path, nu=[0.01, 0.001], files=two_nu_files, x_stride=4, t_stride=5,
                 splits={"train": 0.6, "val": 0.2, "test": 0.2, "seed": 1})
    b = prepare_data(cfg)
    assert b.train.u.shape == (24, 3, 8) and b.val.u.shape == (8, 3, 8) and b.test.u.shape == (8, 3, 8)
    assert sorted(set(b.train.nu.tolist())) == pytest.approx([0.001, 0.01])
    rows = {name: set(b.split(name).rows) for name in ("train", "val", "test")}
    assert not (rows["train"] & rows["val"] or rows["train"] & rows["test"] or rows["val"] & rows["test"])
    assert sum(len(r) for r in rows.values()) == 40
    # each loaded trajectory is the recorded row of the recorded file (row i of a file is offset by i)
    hashes = {f["hash"]: f for f in b.manifest["files"]}
    for split in (b.train, b.val, b.test):
        for u, nu, (h, row) in zip(split.u, split.nu, split.rows, strict=True):
            src = hashes[h]
            assert src["nu"] == pytest.approx(float(nu))
            with h5py.File(src["path"]) as f:
                np.testing.assert_array_equal(u, f["tensor"][row, ::5, ::4])
    assert b.manifest["splits"]["test"] == [list(r) for r in b.test.rows]
    np.testing.assert_allclose(b.x, ((np.arange(32) + 0.5) / 32)[::4], atol=1e-6)
    assert b.dt == pytest.approx(1.0, rel=1e-5)   # 11 frames on [0, 2], every 5th


def test_normalisation_is_fitted_on_train_only(tmp_path: Path, two_nu_files) -> None:
    b = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files))
    assert b.stats.mean == pytest.approx(float(b.train.u.astype(np.float64).mean()))
    assert b.stats.std == pytest.approx(float(b.train.u.astype(np.float64).std()))
    everything = np.concatenate([b.train.u, b.val.u, b.test.u])
    assert b.stats.mean != pytest.approx(float(everything.mean()), rel=1e-4)
    assert NormStats.from_dict(b.stats.to_dict()) == b.stats


def test_manifest_hash_is_stable_and_tracks_what_was_seen(tmp_path: Path, two_nu_files) -> None:
    one = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files))
    again = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files))
    other_split = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files,
                                      splits={"train": 0.8, "val": 0.1, "test": 0.1, "seed": 5}))
    capped = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files, max_trajectories=10))
    assert one.manifest_hash == again.manifest_hash
    assert len({one.manifest_hash, other_split.manifest_hash, capped.manifest_hash}) == 3
    assert len(capped.train.rows) + len(capped.val.rows) + len(capped.test.rows) == 20


def test_a_nu_the_file_does_not_hold_is_refused(tmp_path: Path, two_nu_files) -> None:
    with pytest.raises(DataError, match=r"Nu0\.001\.hdf5: the file holds nu = 0\.001, but the config asks for nu = 0\.1"):
        prepare_data(config(tmp_path, nu=[0.01, 0.1], files=two_nu_files))
    with pytest.raises(DataError, match=r"nowhere\.h5: data file not found"):
        prepare_data(config(tmp_path, nu=[0.01], files=[str(tmp_path / "nowhere.h5")]))


def test_missing_files_are_generated_once_into_the_cache(tmp_path: Path) -> None:
    cfg = config(tmp_path, nu=[0.05], generate={"n": 6, "nx": 32, "nt": 5, "t_end": 0.2, "seed": 2},
                 x_stride=1, t_stride=1)
    first = prepare_data(cfg, workers=1)
    made = list((tmp_path / "cache").glob("*.h5"))
    assert len(made) == 1
    stamp = made[0].stat().st_mtime_ns
    second = prepare_data(cfg, workers=1)
    assert made[0].stat().st_mtime_ns == stamp
    assert first.manifest_hash == second.manifest_hash
    np.testing.assert_array_equal(first.test.u, second.test.u)


def test_concurrent_generators_of_one_file_leave_one_valid_file(tmp_path: Path) -> None:
    code = ("import sys; from usim_core.data.generate import GenSpec, generate; "
            "generate(GenSpec(nu=0.05, n=20, nx=32, nt=4, t_end=0.2, seed=0), sys.argv[1], workers=1)")
    out = tmp_path / "shared.h5"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with h5py.File(out) as f:
        assert f["tensor"].shape == (20, 4, 32) and np.isfinite(f["tensor"][()]).all()
        assert "blocks_done" not in f
    assert not list(tmp_path.glob("*.partial"))


def test_rollout_windows_are_normalised_slices_with_nu_and_dt(tmp_path: Path, two_nu_files) -> None:
    b = prepare_data(config(tmp_path, nu=[0.01, 0.001], files=two_nu_files, x_stride=2, t_stride=1))
    w = rollout_windows(b.train, 3, b.stats, b.dt)
    n, nt, nx = b.train.u.shape
    assert len(w) == n * (nt - 3)
    u, nu, dt = w[nt - 3 + 2]   # trajectory 1, start 2
    assert u.shape == (4, nx) and u.dtype == torch.float32
    np.testing.assert_allclose(u.numpy() * b.stats.std + b.stats.mean, b.train.u[1, 2:6], rtol=1e-5, atol=1e-4)
    assert float(nu) == pytest.approx(float(b.train.nu[1])) and float(dt) == pytest.approx(b.dt)
    picks = torch.tensor([0, nt - 3 + 2, len(w) - 1, 5])
    ub, nub, dtb = w.batch(picks)
    assert torch.equal(ub[1], u) and nub.shape == dtb.shape == (4,)
    for k, i in enumerate(picks.tolist()):
        assert torch.equal(ub[k], w[i][0]) and float(nub[k]) == float(w[i][1])
    pairs = rollout_windows(b.val, 1, b.stats)   # dt comes with the split
    assert pairs[0][0].shape == (2, nx) and float(pairs[0][2]) == pytest.approx(b.dt)
    with pytest.raises(ValueError, match="needs the frame spacing"):
        rollout_windows(Split(b.val.u, b.val.nu), 1, b.stats)
    with pytest.raises(ValueError, match="horizon 11 needs more than the 11 stored frames"):
        rollout_windows(b.val, 11, b.stats)
