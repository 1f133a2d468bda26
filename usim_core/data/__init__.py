"""Burgers data engine: solver, PDEBench-style generation and loading, splits, normalisation (no torch here;
the torch datasets live in usim_core.data.windows)."""

from usim_core.data.h5io import DataError
from usim_core.data.prepare import DataBundle, NormStats, Split, prepare_data, split_rows

__all__ = ["DataBundle", "DataError", "NormStats", "Split", "prepare_data", "split_rows"]
