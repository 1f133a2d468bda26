"""The fleet: run a sweep's cells on instances within a budget, headless (no Textual, no torch).

Rooms (docs/architecture.md): process/ (the controller process and its commands) uses control/ (the loop) and
vast/ (Vast.ai); both use hosts/ (runs over SSH), providers/ (the contract, local, sim) and store/ (the ledger
and what it knows); clock.py is time, real or virtual. Imports run that way only.
"""
