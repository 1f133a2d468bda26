"""The controller as its own process and the commands around it: open_sweep and make_provider (open.py, the one
way to open a sweep), the OS lock and heartbeat (daemon.py), starting, serving and following it (follow.py), and
the headless commands (commands.py: run, controller, stop, status, destroy, relaunch, pause, resume).

Imports everything below it: control, vast, hosts, providers, store, clock."""
