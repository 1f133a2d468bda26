"""The control side and the pure-Python core never import torch (a laptop may not have it)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["usim_tui", "usim_tui.cli", "usim_core.config", "usim_core.sweep",
                                    "usim_core.events", "usim_core.cli"])
def test_module_does_not_import_torch(module):
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    assert "torch" not in imported, f"{module} pulls in torch"
    assert module.split(".")[0] in {m.split(".")[0] for m in imported}  # the probe did see the import


def test_usim_tui_cli_builds_without_torch_or_textual():
    code = ("import sys; from usim_tui.cli import build_parser; build_parser(); "
            "bad = [m for m in ('torch', 'textual') if m in sys.modules]; print(','.join(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
