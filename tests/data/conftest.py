from __future__ import annotations

from pathlib import Path

import pytest
from burgers_files import smooth_fields, write_pdebench


@pytest.fixture
def pdebench_file(tmp_path: Path):
    def make(name: str = "1D_Burgers_Sols_Nu0.01.hdf5", n: int = 20, nt: int = 11, nx: int = 32, **kw) -> Path:
        return write_pdebench(tmp_path / name, smooth_fields(n, nt, nx), **kw)
    return make
