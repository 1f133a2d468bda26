"""The fleet: run a sweep's cells on instances within a budget, headless (no Textual, no torch).

Rooms, each importing only those below it (docs/architecture.md): process/ (the controller process and its
commands) → control/ (the loop) → vast/ → hosts/ (runs over SSH) → providers/ (the contract, local, sim) →
store/ (the ledger and what it knows); clock.py is time, real or virtual.
"""
