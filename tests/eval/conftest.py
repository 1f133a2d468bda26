"""Shared fixtures: a real tiny training run (session-scoped) and its full eval report.

On this shared 2-core machine torch's intra-op threads contend (2 threads ran ~15x slower than 1).
"""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from usim_core.eval.evaluate import evaluate_checkpoint

torch.set_num_threads(1)
os.environ.setdefault("USIM_THREADS", "1")

TINY = {
    "seed": 5,
    "data": {"nu": [0.01], "generate": {"n": 20, "nx": 64, "nt": 9, "t_end": 0.4}, "x_stride": 2,
             "t_stride": 1, "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "model": {
        "codec": {"latent_tokens": 4, "latent_dim": 8, "hidden_dim": 16, "depth": 1},
        "operator": {"hidden_dim": 16, "heads": 2, "depth": 1},
        "diffusion": {"hidden_dim": 16, "heads": 2, "depth": 1, "steps": 3},
    },
    "stages": {s: {"epochs": 1, "batch_size": 16, "lr": 3e-3, "max_steps": 12, "ema_decay": 0.5}
               for s in ("codec", "operator", "diffusion_residual", "consistency_distill")},
    "eval": {"small": {"trajectories": 3, "horizons": [1, 3]}, "full": {"horizons": [1, 4, 99]},
             "ttc": {"enabled": True, "candidates": 3, "max_evaluations": 10, "lookahead": 1}},
}


@pytest.fixture(scope="session")
def tiny_tree() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory) -> Path:
    """TINY with its generated data cached in a session tmp dir."""
    tree = copy.deepcopy(TINY)
    root = tmp_path_factory.mktemp("evalcfg")
    tree["data"]["cache_dir"] = str(root / "data")
    (root / "tiny.yaml").write_text(yaml.safe_dump(tree))
    return root / "tiny.yaml"


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_config_file) -> tuple[Path, SimpleNamespace]:
    """(final checkpoint, data bundle) of a real training run on generated Burgers data, with an FNO beside."""
    from usim_core.config import load_config
    from usim_core.data import prepare_data
    from usim_core.eval.fno import save_fno, train_fno
    from usim_core.events import EventLog
    from usim_core.train.run import train_run

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("evalrun") / "cell" / "0"
    cfg = load_config(tiny_config_file)
    bundle = prepare_data(cfg)
    train_run(cfg, run, bundle=bundle, device="cpu", run_evals=False, quiet=True,
              events=EventLog(run, stream=io.StringIO()))
    fno, info = train_fno(bundle.train.u, bundle.train.nu, 0.0, 1.0, budget_s=30, max_steps=3, batch_size=8,
                          hparams={"n_modes": 4, "hidden_channels": 4, "n_layers": 1})
    save_fno(run / "baselines" / "fno.pt", fno, dt=bundle.dt, manifest_hash=bundle.manifest_hash,
             train_rows=bundle.train.rows, config_hash=cfg.config_hash(), info=info)
    return run / "checkpoints" / "consistency_distill.pt", bundle


@pytest.fixture(scope="session")
def full_report(trained) -> dict:
    ckpt, bundle = trained
    return evaluate_checkpoint(ckpt, "test", bundle=bundle, out=ckpt.parent.parent / "eval" / "full.json")


