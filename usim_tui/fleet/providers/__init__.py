"""Where instances come from: the provider contract (base.py: Provider, HostProvider, LaunchSpec, Observed, errors,
labels) and the built-in providers: local subprocesses (local.py) and a simulated cloud (sim.py). Vast.ai, which
also reaches its hosts over SSH, is its own package: fleet/vast/.

Imports: the store's state vocabulary, the clock."""
