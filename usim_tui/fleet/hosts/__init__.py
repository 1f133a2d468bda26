"""Runs on SSH hosts: the SSH session (ssh.py), usim's own key (keys.py), the wheel built from this checkout
(wheel.py), the script started on the host (run_script.py + run_script.sh) and bring_up (wait for SSH, push,
install, start detached).

Imports: the provider contract (providers/base.py) only."""
