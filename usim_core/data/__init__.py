"""Burgers data engine: solver, PDEBench-style generation and loading, splits, normalisation.

Exports resolve lazily, so importing `usim_core.data.commands` (every `usim-core` start) loads neither
numpy nor h5py; torch is only in usim_core.data.windows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from usim_core.data.h5io import DataError
    from usim_core.data.prepare import DataBundle, NormStats, Split, prepare_data, split_rows

_EXPORTS = {"DataError": "h5io", "DataBundle": "prepare", "NormStats": "prepare", "Split": "prepare",
            "prepare_data": "prepare", "split_rows": "prepare"}
__all__ = ["DataBundle", "DataError", "NormStats", "Split", "prepare_data", "split_rows"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"usim_core.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'usim_core.data' has no attribute {name!r}")
