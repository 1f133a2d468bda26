"""Emulator tests never touch the user's ~/.config/usim/ssh: usim's SSH key lives in a per-session temp dir."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _usim_ssh_key(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("USIM_SSH_KEY", str(tmp_path_factory.getbasetemp() / "usim-ssh" / "id_ed25519"))

