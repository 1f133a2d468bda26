"""Runs on SSH hosts: the SSH session (ssh.py), usim's own key (keys.py), the wheel built from this checkout
(wheel.py), the script started on the host (run_script.py + run_script.sh) and bring_up (wait for SSH, push,
install, start detached).

Imports: the provider contract (providers/base.py) only."""

import warnings

with warnings.catch_warnings():
    # asyncssh registers DSA at import, which newer cryptography releases deprecate: usim uses ed25519 keys
    # only, so that warning would be noise in every command (the first import of asyncssh is here)
    warnings.filterwarnings("ignore", module=r"asyncssh(\..*)?$")
    import asyncssh  # noqa: F401
