"""Vast.ai: the REST provider (provider.py), its instances reached over SSH (host.py) and the onstart script
(onstart.py + onstart.sh). The emulator (usim_tui/emulator) is its loopback twin.

Imports: providers (the contract), hosts, the clock."""
