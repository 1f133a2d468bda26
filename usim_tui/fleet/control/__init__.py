"""The control loop: Controller.tick and its parts. Reconcile a listing with the ledger (reconcile), judge
attempts (policies, pure), start them (launching, preflight), destroy them (teardown), read their events (logs),
drive runs on SSH hosts (host_runs), read the provider's credit (credit) and carry out a person's commands
(actions).

Imports: store, providers (the contract), hosts, the clock. Never a concrete provider: those are chosen by
fleet/process/open.py."""
