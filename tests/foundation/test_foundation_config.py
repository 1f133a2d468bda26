from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from usim_core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def test_shipped_run_configs_validate():
    base = load_config(REPO / "configs/runs/burgers_base.yaml")
    assert (base.model.codec.latent_tokens, base.model.codec.latent_dim) == (32, 32)
    assert (base.model.operator.hidden_dim, base.model.operator.heads) == (96, 6)
    assert [base.stages.operator.epochs, base.stages.diffusion_residual.epochs,
            base.stages.consistency_distill.epochs] == [25, 8, 8]
    assert base.stages.operator.ema_decay == 0.9995 and base.stages.operator.batch_size == 12
    tiny = load_config(REPO / "configs/runs/burgers_tiny.yaml")
    # the include merged deeply: tiny overrides sizes but keeps the base's optimizer settings
    assert tiny.stages.operator.weight_decay == base.stages.operator.weight_decay
    # ... and its own codec is smaller (a latent of 32 x 8 against the base's 32 x 32, a narrower network)
    tc, bc = tiny.model.codec, base.model.codec
    assert tc.latent_tokens * tc.latent_dim < bc.latent_tokens * bc.latent_dim and tc.hidden_dim < bc.hidden_dim


def test_misspelt_key_names_file_path_and_suggestion(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"stages": {"operator": {"warmpu": 0.05}}})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert "stages.operator.warmpu" in msg
    assert "did you mean stages.operator.warmup?" in msg


def test_misspelt_key_in_included_file_names_that_file(tmp_path):
    inner = write(tmp_path / "inner.yaml", {"model": {"codec": {"latent_token": 16}}})
    outer = write(tmp_path / "outer.yaml", {"include": inner.name, "seed": 3})
    with pytest.raises(ConfigError) as err:
        load_config(outer)
    assert str(inner) in str(err.value)
    assert "model.codec.latent_tokens" in str(err.value)


def test_wrong_type_names_expected_type(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"stages": {"codec": {"epochs": "many"}}})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "stages.codec.epochs" in str(err.value)
    assert "expected an integer" in str(err.value)


def test_bad_choice_lists_allowed_values(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"tracking": {"wandb": {"mode": "onlin"}}})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "'online'" in str(err.value) and "'offline'" in str(err.value)


def test_include_cycle_is_refused(tmp_path):
    write(tmp_path / "a.yaml", {"include": "b.yaml"})
    write(tmp_path / "b.yaml", {"include": "a.yaml"})
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.yaml")
    assert "include cycle" in str(err.value)
    assert "a.yaml -> " in str(err.value) and "b.yaml" in str(err.value)


def test_missing_include_is_named(tmp_path):
    outer = write(tmp_path / "outer.yaml", {"include": "nowhere.yaml"})
    with pytest.raises(ConfigError, match="nowhere.yaml: file not found"):
        load_config(outer)


def test_include_deep_merges_and_later_wins(tmp_path):
    write(tmp_path / "base.yaml", {"stages": {"operator": {"lr": 1e-3, "epochs": 5}}})
    outer = write(tmp_path / "outer.yaml", {"include": ["base.yaml"], "stages": {"operator": {"lr": 3e-4}}})
    cfg = load_config(outer)
    assert cfg.stages.operator.lr == 3e-4 and cfg.stages.operator.epochs == 5


def test_cross_field_checks(tmp_path):
    bad = write(tmp_path / "bad.yaml", {"model": {"operator": {"hidden_dim": 96, "heads": 5}}})
    with pytest.raises(ConfigError, match="not divisible by heads 5"):
        load_config(bad)
    splits = write(tmp_path / "splits.yaml", {"data": {"splits": {"train": 0.9, "val": 0.1, "test": 0.1}}})
    with pytest.raises(ConfigError, match="must be 1.0"):
        load_config(splits)


def test_config_hash_ignores_tracking_but_not_hyperparameters(tmp_path):
    a = load_config(REPO / "configs/runs/burgers_tiny.yaml")
    b = load_config(REPO / "configs/runs/burgers_tiny.yaml", {"tracking.wandb.run_name": "x"})
    c = load_config(REPO / "configs/runs/burgers_tiny.yaml", {"stages.operator.lr": 5e-4})
    assert a.config_hash() == b.config_hash() != c.config_hash()
    assert a.architecture_fingerprint() == c.architecture_fingerprint()
    d = load_config(REPO / "configs/runs/burgers_tiny.yaml", {"model.codec.latent_tokens": 12})
    assert d.architecture_fingerprint() != a.architecture_fingerprint()
