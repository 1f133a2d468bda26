"""`report --out` where nothing can be written: one clear line naming the path, exit 2, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from usim_tui.cli import main


def ledger_path(demo_ledger) -> Path:
    path, _ = demo_ledger(finished=1)
    return Path(path)


def test_out_under_a_file_is_one_line_naming_the_path(demo_ledger, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = blocker / "reports"
    assert main(["report", "--ledger", str(ledger_path(demo_ledger)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "Traceback" not in err


def test_out_refused_by_the_file_system(demo_ledger, tmp_path, capsys, monkeypatch):
    """What a read-only directory does to a user who is not root (the tests may run as root)."""
    led, out = ledger_path(demo_ledger), tmp_path / "ro" / "reports"

    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if str(self).startswith(str(out.parent)):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["report", "--ledger", str(led), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_a_read_only_directory(demo_ledger, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        out = ro / "reports"
        assert main(["report", "--ledger", str(ledger_path(demo_ledger)), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err
    finally:
        ro.chmod(0o700)
