"""Checkpoints round-trip, carry what they claim, and a torn write never replaces a good file."""

from __future__ import annotations

import copy

import pytest
import torch
from train_support import tiny_config

from usim_core.models.surrogate import Surrogate
from usim_core.train import checkpoint as ck
from usim_core.train.checkpoint import CheckpointError, load_checkpoint, load_surrogate, save_checkpoint

STATS = {"mean": 0.25, "std": 2.0}


def _save(path, model, ema, cfg, step=3):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_checkpoint(path, stage="operator", step=step, cfg=cfg, model=model, ema=ema, optimizer=opt, stats=STATS,
                    manifest_hash="abc", rng=ck.rng_state(), extra={"manifest": {"files": ["a.h5"]}, "dt": 0.05})


def _model(cfg, seed):
    torch.manual_seed(seed)
    return Surrogate(cfg, 32, STATS)


def test_round_trip_rebuilds_the_same_surrogate_from_its_own_config(tmp_path):
    cfg = tiny_config()
    model, ema = _model(cfg, 0), _model(cfg, 1)
    path = tmp_path / "operator.pt"
    _save(path, model, ema, cfg)
    loaded, got_cfg, meta = load_surrogate(path, use_ema=True)
    assert got_cfg == cfg and meta["stage"] == "operator" and meta["step"] == 3
    assert meta["stats"] == STATS and meta["manifest"] == {"files": ["a.h5"]} and meta["dt"] == 0.05
    assert meta["architecture_fingerprint"] == cfg.architecture_fingerprint()
    u = torch.randn(2, 32)
    nu = torch.full((2,), 0.01)
    with torch.no_grad():
        assert torch.equal(loaded.encode(u, nu), ema.eval().encode(u, nu))
        assert not torch.equal(loaded.encode(u, nu), model.eval().encode(u, nu))
    raw, _, _ = load_surrogate(path, use_ema=False)
    assert torch.equal(raw.state_dict()["decoder.out.weight"], model.state_dict()["decoder.out.weight"])
    assert float(loaded.u_mean) == 0.25 and float(loaded.u_std) == 2.0
    full = load_checkpoint(path)
    assert full["optimizer"] is not None and "torch" in full["rng"]


def test_torn_write_keeps_the_previous_file(tmp_path, monkeypatch):
    cfg = tiny_config()
    model = _model(cfg, 0)
    path = tmp_path / "operator.pt"
    _save(path, model, copy.deepcopy(model), cfg, step=1)
    good = path.read_bytes()

    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)  # half a file on disk, then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", crash_midway)
    with pytest.raises(OSError):
        _save(path, model, copy.deepcopy(model), cfg, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["operator.pt"]  # no temp file left behind


def test_unreadable_or_inconsistent_files_fail_naming_the_file(tmp_path):
    cfg = tiny_config()
    model = _model(cfg, 0)
    path = tmp_path / "codec.pt"
    _save(path, model, model, cfg)
    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="torn.pt"):
        load_checkpoint(torn)
    payload = torch.load(path, weights_only=True)
    payload["config"]["model"]["codec"]["latent_tokens"] = 16  # the earlier night's 32-vs-16 mismatch
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(bad)
    payload["format_version"] = 99
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(bad)
    payload["format_version"] = 1  # a file from before the local patch codec
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="format_version 1, .*retrain"):
        load_checkpoint(bad)
    payload["format_version"] = 3  # before the linear codec path and the viscous step: weights and step differ
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="format_version 3, .*viscous step.*retrain"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
