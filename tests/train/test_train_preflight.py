"""Preflight passes a good config and fails each broken one with a clear message naming the problem."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from train_support import TINY

from usim_core.train.commands import _preflight

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, tree: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _run(path: Path, root: Path) -> int:
    return _preflight(argparse.Namespace(config=str(path), root=str(root)))


def _tiny_tree(**model) -> dict:
    tree = yaml.safe_load(yaml.safe_dump(TINY))
    tree["data"]["generate"] = {"nx": 64, "nt": 8}
    for dotted, value in model.items():
        node = tree
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return tree


def test_good_config_passes_with_one_ok_line(tmp_path, capsys):
    assert _run(_write(tmp_path, _tiny_tree()), tmp_path) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("preflight OK") and "16 grid points" in out[0]  # 64 points, default x_stride 4
    assert "tiny eval OK" in out[0] or "eval module not installed" in out[0]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        # a key nothing reads (the earlier night's stages.operator.warmup_epochs)
        (_tiny_tree(stages__operator__warmup_epochs=2), ["unknown key 'stages.operator.warmup_epochs'",
                                                          "did you mean stages.operator.warmup"]),
        # 48 tokens with 12 heads on width 96: 8 channels per head is fine, 96/32 = 3 is odd -> no rotary pairs
        (_tiny_tree(model__codec__latent_tokens=48, model__operator__hidden_dim=96, model__operator__heads=32),
         ["model.operator", "heads 32", "48 latent tokens", "allowed heads"]),
        # more tokens than grid points after striding (64 / x_stride 4 = 16)
        (_tiny_tree(model__codec__latent_tokens=48, data__x_stride=4), ["latent_tokens 48", "16 grid points"]),
        # a data file that is not there
        (_tiny_tree(data__files=["missing_nu0.01.h5", "missing_nu0.05.h5"]),
         ["data.files[0]", "missing_nu0.01.h5", "not found"]),
    ],
    ids=["unknown-key", "48-tokens-odd-head-width", "tokens-exceed-grid", "missing-data-file"],
)
def test_broken_configs_fail_with_clear_message(tmp_path, capsys, tree, expected):
    path = _write(tmp_path, tree)
    assert _run(path, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("preflight FAILED") and str(path) in err
    for fragment in expected:
        assert fragment in err, (fragment, err)


def test_sweep_cells_pass_the_architecture_check():
    """Every architecture of the overnight sweep (cap64/96/128, 48 tokens) builds on the base grid."""
    from usim_core.models.surrogate import Surrogate, check_architecture
    from usim_core.sweep import expand

    seen = set()
    for cell in expand(REPO / "configs/sweeps/overnight_sota.yaml").cells:
        from usim_core.config import validate

        cfg = validate(cell.config)
        if cfg.architecture_fingerprint() in seen:
            continue
        seen.add(cfg.architecture_fingerprint())
        check_architecture(cfg, 256)
        Surrogate(cfg, 256, {"mean": 0.0, "std": 1.0})
    assert len(seen) >= 3


def test_a_trained_parameter_without_a_gradient_fails_preflight(tmp_path, capsys, monkeypatch):
    """DistributedDataParallel needs a gradient for every parameter a stage trains; preflight finds one that gets
    none on the CPU, before a multi-GPU host is rented (here: the codec stage made to train the operator too)."""
    from usim_core.models.surrogate import STAGE_MODULES

    monkeypatch.setitem(STAGE_MODULES, "codec", ("encoder", "decoder", "operator"))
    path = _write(tmp_path, _tiny_tree())
    assert _run(path, tmp_path) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"preflight FAILED: {path}") and "stage codec" in err
    assert "get no gradient from its loss" in err and "operator." in err


def test_a_data_file_training_would_refuse_is_refused_by_preflight(tmp_path, capsys):
    """Reproduced on main: preflight passed an HDF5 file with a (n, nt, nx) dataset but without PDEBench's
    `tensor` and coordinate datasets, which `train` then refused on the paid host."""
    import h5py
    import numpy as np

    path = tmp_path / "odd_nu0.01.h5"
    with h5py.File(path, "w") as f:
        f["u"] = np.zeros((4, 8, 64), np.float32)
    tree = _tiny_tree(data__files=[str(path)], data__nu=[0.01])
    assert _run(_write(tmp_path, tree), tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("preflight FAILED") and "odd_nu0.01.h5" in err and "missing dataset 'tensor'" in err
