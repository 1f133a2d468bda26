"""One widget per module; each renders part of a SweepSnapshot."""
