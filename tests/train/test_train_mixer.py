"""The operator's token mixing (`model.operator.mixer`): spectral mixing is a global convolution over the periodic
token axis, so it commutes with a shift of the tokens; a spectral operator round-trips through a checkpoint and
ignores the attention-only head rule; an unknown mixer names the allowed ones."""

from __future__ import annotations

import pytest
import torch
from train_support import tiny_config

from usim_core.config import ConfigError
from usim_core.models.blocks import Block, SpectralMix
from usim_core.models.surrogate import Surrogate
from usim_core.train import checkpoint as ck
from usim_core.train.checkpoint import load_surrogate, save_checkpoint

STATS = {"mean": 0.25, "std": 2.0}


def test_spectral_mixing_commutes_with_a_shift_of_the_tokens():
    torch.manual_seed(0)
    mix = SpectralMix(dim=8, tokens=16)
    x = torch.randn(3, 16, 8)
    for shift in (1, 5):
        assert torch.allclose(mix(torch.roll(x, shift, dims=1)), torch.roll(mix(x), shift, dims=1), atol=1e-5)
    # and it mixes globally: one token's change reaches every token
    y = x.clone()
    y[:, 0] += 1.0
    assert bool(((mix(y) - mix(x)).abs().amax(-1) > 1e-6).all())


def test_attention_mixing_is_not_what_spectral_builds():
    assert isinstance(Block(8, 2, 2.0, "spectral", 16).attn, SpectralMix)
    assert not isinstance(Block(8, 2, 2.0, "attention", 16).attn, SpectralMix)
    with pytest.raises(ValueError, match="attention, spectral"):
        Block(8, 2, 2.0, "conv", 16)


def test_spectral_operator_round_trips_and_skips_the_head_rule(tmp_path):
    # 2 heads on width 30: a 15-wide head is fine for spectral mixing (no rotary pairs), refused for attention
    cfg = tiny_config(**{"model.operator.mixer": "spectral", "model.operator.hidden_dim": 30,
                         "model.operator.heads": 2})
    torch.manual_seed(0)
    model = Surrogate(cfg, 32, STATS)
    with pytest.raises(ConfigError, match="heads 2"):
        Surrogate(tiny_config(**{"model.operator.hidden_dim": 30, "model.operator.heads": 2}), 32, STATS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = tmp_path / "operator.pt"
    save_checkpoint(path, stage="operator", step=1, cfg=cfg, model=model, ema=model, optimizer=opt, stats=STATS,
                    manifest_hash="abc", rng=ck.rng_state(), extra={"dt": 0.05})
    loaded, got, _ = load_surrogate(path)
    assert got.model.operator.mixer == "spectral"
    z = torch.randn(2, cfg.model.codec.latent_tokens, cfg.model.codec.latent_dim)
    nu, dt = torch.full((2,), 0.01), torch.full((2,), 0.05)
    with torch.no_grad():
        assert torch.equal(loaded.operator(z, nu, dt), model.eval().operator(z, nu, dt))


def test_unknown_mixer_names_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        tiny_config(**{"model.operator.mixer": "conv"})
    assert "model.operator.mixer" in str(err.value) and "spectral" in str(err.value)
