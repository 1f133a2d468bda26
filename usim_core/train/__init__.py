"""Staged training of the surrogate: schedules, checkpoints, the stage loop, the run driver and preflight."""
