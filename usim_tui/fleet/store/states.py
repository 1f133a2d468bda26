"""The fleet's one state vocabulary: what an attempt, a cell and an ending can be, and the named sets every
module decides with. Import these; never compare against a bare string or define "live" again.

An attempt is one instance of one cell. Its state is the provider's normalised state (the first seven) while
the provider lists it, or one of the ledger's own states around the provider calls (intent before, outcome
after). `StrEnum` members are plain strings too, so they store in SQLite and compare with what it returns.
"""

from __future__ import annotations

from enum import StrEnum


class AttemptState(StrEnum):
    # as the provider reports them (Vast's actual_status maps onto these)
    PENDING = "pending"          # null / created / rebooting: provisioning
    LOADING = "loading"          # image pull / container start (no GPU charge on Vast)
    RUNNING = "running"          # container running, GPU billed
    STOPPED = "stopped"          # halted; storage still billed (outbid spot instances end here)
    EXITED = "exited"            # container process exited (finished or crashed: read the events)
    OFFLINE = "offline"          # host disconnected / unknown: will never run again
    FAILED = "failed"            # could not be created/started (e.g. OCI runtime create failed)
    # the ledger's own, around provider calls
    LAUNCHING = "launching"      # create intent written, outcome not yet recorded
    DESTROYING = "destroying"    # destroy succeeded at the provider, not yet confirmed by a listing
    DESTROYED = "destroyed"      # confirmed gone: billing stopped
    NOT_CREATED = "not_created"  # create failed or never happened: nothing exists
    LEAKED = "leaked"            # destroy failed or did not take: may still bill; retried every poll
    PULLING = "pulling"          # ended (its verdict taken): its run dir is being copied back, then destroyed


class CellState(StrEnum):
    PENDING = "pending"          # wanted: launched whenever limits allow (the views show launching/running)
    LAUNCHING = "launching"      # view only: a pending cell whose live attempt is not running yet
    RUNNING = "running"          # view only: a pending cell whose live attempt runs
    FINISHED = "finished"        # a `done` event was read: its result is kept whatever happens later
    FAILED = "failed"            # limits used up, preflight failed, or stopped by the user
    STOPPED_EARLY = "stopped_early"  # the stopping rule (or a person) ended it at a rung: its results so far kept
    DUPLICATE = "duplicate"      # resolves to the same config as an earlier cell: never run


class EndReason(StrEnum):
    FINISHED = "finished"
    NO_CAPACITY = "no_capacity"
    STARTUP_TIMEOUT = "startup_timeout"
    CONTAINER_ERROR = "container_error"
    EXITED_ERROR = "exited_error"
    OFFLINE = "offline"
    OUTBID = "outbid"
    BUDGET = "budget"
    USER = "user"
    MAX_RUNTIME = "max_runtime"
    PREFLIGHT = "preflight"
    ORPHAN = "orphan"
    SSH_UNREACHABLE = "ssh_unreachable"   # the host ran, but its SSH never answered within provider.ssh_deadline_s
    HOST_SETUP = "host_setup"             # the host answered, but could not be set up (no python with torch, install)
    STOPPED_EARLY = "stopped_early"       # the stopping rule judged it a loser at a rung (or a person stopped it)


A = AttemptState

PROVIDER_STATES = (A.PENDING, A.LOADING, A.RUNNING, A.STOPPED, A.EXITED, A.OFFLINE, A.FAILED)
"""What a provider's listing may report (in this order in the app's legend)."""

GONE = frozenset({A.DESTROYED, A.NOT_CREATED})
"""Nothing exists at the provider and nothing bills: the attempt is history."""

LIVE = frozenset(A) - GONE
"""An instance may exist: it may bill, and it blocks another attempt of its cell (a leaked or unconfirmed
destroy counts; relaunching over it could leave two paid instances of one cell)."""

UNSETTLED = frozenset({A.LAUNCHING, A.DESTROYING, A.LEAKED, A.PULLING})
"""The ledger is waiting on a provider call's outcome: the listing's state does not replace these, and
policies do not judge them."""

CELL_ACTIVE = frozenset({CellState.LAUNCHING, CellState.RUNNING})
"""A cell view with a live attempt (the report's "running")."""

ENDED = frozenset({A.EXITED, A.OFFLINE, A.FAILED, A.STOPPED})
"""The provider says the process will not run again (a stopped spot instance included): its final log is
read once, then it is judged and destroyed."""

NO_LOG_YET = frozenset({A.PENDING, A.LOADING}) | UNSETTLED
"""Nothing to read: the container has not started, or the ledger waits on a provider call."""

NOT_BILLING = GONE | {A.OFFLINE}
"""States that bill nothing: gone, or a host that has dropped off (Vast stops charging it)."""

BILLS_GPU = frozenset({A.RUNNING})
"""The GPU is charged only while the container runs; storage is charged in every other LIVE state."""

CELL_ENDED = frozenset({CellState.FINISHED, CellState.FAILED, CellState.DUPLICATE, CellState.STOPPED_EARLY})
"""A cell in one of these is never launched again by the controller (only by a person's relaunch)."""

CRASH_REASONS = frozenset({EndReason.EXITED_ERROR, EndReason.HOST_SETUP})
"""Failures of the run itself (or of what it needs from the image): they use up max_attempts, and the same
exit at start-up across cells is a crash loop."""

MACHINE_REASONS = frozenset({EndReason.STARTUP_TIMEOUT, EndReason.CONTAINER_ERROR, EndReason.OFFLINE,
                             EndReason.OUTBID, EndReason.SSH_UNREACHABLE})
"""Failures of the machine or the market, not of the cell: the machine is excluded and they use up the cell's
own, larger max_machine_faults allowance instead."""

HOST_REASONS = frozenset({EndReason.SSH_UNREACHABLE, EndReason.HOST_SETUP})
"""Reaching or setting up a host over SSH failed: the same failure on two hosts in a row is not the machines'
fault (usim's key, a proxy, the image): launching pauses with it."""

FREE_REASONS = frozenset({EndReason.NO_CAPACITY, EndReason.BUDGET, EndReason.USER, EndReason.ORPHAN,
                          EndReason.PREFLIGHT, EndReason.STOPPED_EARLY})
"""Endings outside the cell's control: they use up neither limit."""
