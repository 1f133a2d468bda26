"""The early-stopping rule (`rule.py`): which cells a sweep stops at its rungs. Pure: no ledger, no I/O."""
