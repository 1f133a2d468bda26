"""A stage keeps the EMA weights of its best validation epoch, not the last ones (the EMA is updated in place, so
the kept weights must be a copy)."""

from __future__ import annotations

import copy
import io

import torch
from train_support import tiny_config

from usim_core.events import EventLog
from usim_core.train import loop
from usim_core.train.checkpoint import load_checkpoint
from usim_core.train.run import train_run


def test_the_stage_ends_with_its_best_epoch_weights_when_a_later_epoch_is_worse(bundle, tmp_path, monkeypatch):
    real, seen, kept = loop.validate, [], {}
    scores = [3.0, 1.0, 2.0, 2.5]   # the untrained check, then epochs 0, 1, 2: epoch 0 is the best

    def scripted(ctx, stage, ema, val):
        real(ctx, stage, ema, val)
        i = len(seen)
        seen.append(i)
        if i == 1:
            kept.update({f"{n}.{k}": v for n in ("encoder", "decoder")
                         for k, v in copy.deepcopy(getattr(ema, n).state_dict()).items()})
        return scores[i]

    monkeypatch.setattr(loop, "validate", scripted)
    run_dir = tmp_path / "run"
    train_run(tiny_config(), run_dir, stage="codec", bundle=bundle, events=EventLog(run_dir, stream=io.StringIO()),
              device="cpu", quiet=True)
    assert len(seen) == 4
    final = load_checkpoint(run_dir / "checkpoints" / "codec.pt")
    for name, value in kept.items():
        for weights in ("ema", "model"):
            assert torch.equal(final[weights][name], value), (weights, name)
