"""Reconciling the provider's listing with the ledger: adopt instances found by label, record and destroy
labelled ones the ledger does not know, destroy a second instance carrying one attempt's label, confirm a
disappearance before acting on it, follow state changes (each a `state` event with {"from", "to"}), bill the
interval since the last listing, and repair destroy intents a killed controller left without an outcome.

A provider whose listing lags its creates (`listing_lags`: Vast) gets `settle_s` (provider.create_settle_s):
an unanswered create, or a new instance the listing does not show yet, is not given up before then."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from usim_tui.fleet.control.teardown import Teardown
from usim_tui.fleet.providers.base import Observed, Provider, ProviderError, parse_label
from usim_tui.fleet.store import budget
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import GONE, UNSETTLED, AttemptState, EndReason

A, R = AttemptState, EndReason
LEAK_AFTER_POLLS = 3    # a destroyed instance still listed after this many polls is leaked
MASS_DROP = 3           # more live instances than this missing from one listing: a provider fault


class Reconciler:
    def __init__(self, ledger: Ledger, provider: Provider, journal: Journal, teardown: Teardown, sweep: str,
                 after_failure: Callable[[AttemptRow, float], None], settle_s: float = 0.0) -> None:
        self.ledger, self.provider, self.journal, self.teardown = ledger, provider, journal, teardown
        self.sweep, self.after_failure = sweep, after_failure
        self.settle_s = settle_s if getattr(provider, "listing_lags", False) else 0.0
        self.observed: dict[str, Observed] = {}   # label -> this poll's listing of it
        self._misses: dict[int, int] = {}         # attempt -> listings in a row that did not show it
        self._duplicates: dict[str, tuple[float, int]] = {}   # provider id -> (billed until, polls since destroy)
        self._listed: set[int] = set()            # attempts a listing has shown (no longer waited for)
        self._waited: set[int] = set()            # attempts a listing did not show at first (said when it does)

    async def apply(self, observed: list[Observed], now: float) -> None:
        """Bring the ledger in line with one listing, then repair destroys a killed controller left open."""
        await self._reconcile(observed, now)
        await self._repair_destroys(observed, now)

    def _young(self, a: AttemptRow, now: float) -> bool:
        """Created so recently, and not listed since, that the listing may not show it yet."""
        return a.id not in self._listed and a.state in (A.LAUNCHING, A.PENDING) \
            and now - (a.created_at if a.created_at is not None else now) < self.settle_s

    async def _reconcile(self, observed: list[Observed], now: float) -> None:
        attempts = self.ledger.attempts(self.sweep)
        mine, duplicates = _by_label([o for o in observed if (p := parse_label(o.label)) and p[0] == self.sweep],
                                     {a.label: a for a in attempts})
        unconfirmed = await self._unconfirmed([a for a in attempts if a.label not in mine], mine, attempts, now)
        self.observed = dict(mine)
        never_listed = []
        for a in attempts:
            o = mine.pop(a.label, None)
            if o is not None:
                self._present(a, o, now)
            elif a.id not in unconfirmed and self._absent(a, now):
                never_listed.append(a)
        if never_listed:   # its id is known: destroyed by it, in case it exists unlisted (billing all night)
            await self.teardown.destroy(never_listed, R.OFFLINE, f"never listed within {self.settle_s:g} s of its "
                                        "create (provider.create_settle_s): destroyed by its id", now)
            for a in never_listed:
                self.after_failure(self._attempt(a.id), now)
        for label, o in mine.items():  # labelled as ours, unknown to the ledger: record it, then destroy it
            _, cell, attempt = parse_label(label)  # type: ignore[misc]
            aid = self.ledger.new_attempt(self.sweep, cell, attempt, label, "", now)
            self.ledger.close_create_intent(aid, "adopted", now, f"found by label as {o.provider_id}")
            self.ledger.set_attempt(aid, reason=R.ORPHAN, message="labelled instance with no ledger intent")
            self._present(self._attempt(aid), o, now)
            self.journal.event(now, "orphan", f"{label}: instance {o.provider_id} not in the ledger; destroying it",
                               self._attempt(aid))
            await self.teardown.destroy([self._attempt(aid)], R.ORPHAN, "labelled instance with no ledger intent", now)
        await self._destroy_duplicates(duplicates, now)

    async def _destroy_duplicates(self, duplicates: list[Observed], now: float) -> None:
        """A second instance under one attempt's label (a create that answered late, or twice): destroyed at
        once, its bill added to the attempt's spend; destroyed again if still listed a few polls later."""
        by_label = {a.label: a for a in self.ledger.attempts(self.sweep)}
        listed = {o.provider_id for o in duplicates}
        for pid in set(self._duplicates) - listed:
            del self._duplicates[pid]
        for o in duplicates:
            a = by_label.get(o.label)
            since, polls = self._duplicates.get(o.provider_id, (o.created_at or now, -1))
            if a is not None:   # it bills as the attempt's: the budget counts it
                rate = budget.worst_rate(o.price_per_hour, o.storage_per_hour)
                self.ledger.set_attempt(a.id, spent=a.spent + rate * max(0.0, now - since) / 3600)
            if polls == -1 or polls + 1 >= LEAK_AFTER_POLLS:
                await self._destroy_duplicate(o, a, now)
                polls = -1
            self._duplicates[o.provider_id] = (now, polls + 1)

    async def _destroy_duplicate(self, o: Observed, a: AttemptRow | None, now: float) -> None:
        keep = a.provider_id if a is not None else None
        self.journal.event(now, "duplicate", f"ALERT {o.label}: a second instance {o.provider_id} carries this "
                           f"label (a create that answered late?); destroying it, keeping {keep}", a,
                           data={"provider_id": o.provider_id, "kept": keep})
        intent = self.ledger.intent(self.sweep, "destroy", now, a.id if a else None, o.label, o.provider_id)
        try:
            await self.provider.destroy(o.provider_id)
        except ProviderError as exc:
            self.ledger.outcome(intent, "error", now, str(exc))
            return
        self.ledger.outcome(intent, "ok", self.teardown.clock.now(), "duplicate")

    async def _repair_destroys(self, observed: list[Observed], now: float) -> None:
        """Destroy calls a killed controller never saw answered (the intent without an outcome): closed now,
        and the destroy made again where the instance is still listed."""
        listed = {o.label for o in observed}
        for intent in self.ledger.open_destroy_intents(self.sweep):
            a = self.ledger.attempt(intent.attempt_id) if intent.attempt_id is not None else None
            still = a is not None and a.label in listed and a.state not in GONE
            self.ledger.outcome(intent.id, "interrupted", now, "the controller stopped during the call; "
                                + ("destroying again" if still else "the instance is not listed"))
            if still and a is not None:
                await self.teardown.destroy([a._replace(state=A.RUNNING)], a.reason or R.USER, "", now)

    async def _unconfirmed(self, missing: list[AttemptRow], mine: dict[str, Observed], attempts: list[AttemptRow],
                           now: float) -> set[int]:
        """Ids of attempts missing from this listing whose disappearance is not confirmed, so nothing acts on
        them yet. One listing is not enough: it is confirmed by the provider's show-one where it has one (an
        instance it still shows is put back into `mine`), else by a second listing in a row. A listing that
        drops more than a few live instances at once is a provider fault: surfaced, never acted on."""
        young = {a.id for a in missing if a.provider_id and self._young(a, now)}   # not listed yet, perhaps
        self._waited |= young
        vanished = [a for a in missing if a.provider_id and a.state not in GONE | UNSETTLED and a.id not in young]
        for a in attempts:
            if a.label in mine:
                self._misses.pop(a.id, None)
        listed = sum(1 for a in attempts if a.provider_id and a.state not in GONE)
        if len(vanished) > MASS_DROP and len(vanished) > 0.25 * listed:
            self.journal.status(f"listing dropped {len(vanished)} of {listed} live instances at once: "
                                "treated as a provider fault, nothing acted on", now)
            return {a.id for a in vanished}
        show = getattr(self.provider, "show", None)
        unconfirmed = set(young)
        for a in vanished:
            self._misses[a.id] = self._misses.get(a.id, 0) + 1
            if show is None:
                if self._misses[a.id] < 2:
                    unconfirmed.add(a.id)
                continue
            try:
                o = await show(a.provider_id)
            except ProviderError:
                unconfirmed.add(a.id)
                continue
            if o is not None:
                mine[a.label] = o
        return unconfirmed

    def _absent(self, a: AttemptRow, now: float) -> bool:
        """Act on an attempt this listing does not show; True for one whose create was answered (its id is known)
        but that was never listed within the settle time: the caller destroys it by that id."""
        if a.state in GONE:
            return False
        if a.provider_id and a.state == A.PENDING and self.settle_s and a.id not in self._listed:
            self.journal.event(now, "not_listed", f"{a.cell} #{a.attempt}: instance {a.provider_id} not listed "
                               f"{now - (a.created_at or now):.0f} s after its create; destroying it by id", a)
            return True
        if a.state == A.LAUNCHING:
            if self._young(a, now):
                return False   # a create that did not answer: the instance may yet be listed (never buy again meanwhile)
            self.ledger.set_attempt(a.id, at=now, state=A.NOT_CREATED, ended_at=now, billed_until=now,
                                    message=a.message or "create not confirmed: no instance with this label")
            self.ledger.close_create_intent(a.id, "absent", now, "no instance with this label in the listing")
        elif a.state in (A.DESTROYING, A.LEAKED):
            self.ledger.set_attempt(a.id, at=now, state=A.DESTROYED, ended_at=a.ended_at or now)
            self._transition(a, A.DESTROYED, now, "destroy confirmed", kind="destroyed")
        else:  # vanished without our destroy (destroyed outside usim, or the host is gone)
            self.ledger.set_attempt(a.id, spent=budget.billed(a, a.state, now), billed_until=now)
            if a.machine_id and not a.reason:
                self.ledger.exclude_machine(self.sweep, a.machine_id, R.OFFLINE, now)
            self.ledger.set_attempt(a.id, at=now, state=A.DESTROYED, ended_at=now, reason=a.reason or R.OFFLINE,
                                    message=a.message or "instance disappeared from the provider's listing")
            self._transition(a, A.DESTROYED, now, "instance disappeared", kind="vanished")
            self.after_failure(self._attempt(a.id), now)
        return False

    def _present(self, a: AttemptRow, o: Observed, now: float) -> None:
        if a.id not in self._listed and a.id in self._waited:
            self.journal.event(now, "listed", f"{a.cell} #{a.attempt}: instance {o.provider_id} listed "
                               f"{now - (a.created_at or now):.0f} s after its create (the listing lags creates)", a)
        self._listed.add(a.id)
        fields: dict[str, Any] = dict(provider_id=o.provider_id, machine_id=o.machine_id, gpu=o.gpu,
                                      price_per_hour=o.price_per_hour, storage_per_hour=o.storage_per_hour,
                                      status_msg=o.status_msg, exit_code=o.exit_code)
        if a.state in (A.LAUNCHING, A.NOT_CREATED):
            self.ledger.close_create_intent(a.id, "adopted", now, f"found by label as {o.provider_id}")
            self.journal.event(now, "adopted", f"{a.cell} #{a.attempt}: instance {o.provider_id} found by label", a)
            fields.update(state=o.state, ended_at=None, **o.bid_fields())   # created at a bid: billed, shown at it
        elif a.state == A.DESTROYED:
            fields.update(state=A.LEAKED)   # we believed it gone: it is not
            self.journal.event(now, "leaked", f"ALERT {a.label}: destroyed instance {o.provider_id} is still listed", a,
                               data={"from": a.state, "to": A.LEAKED})
        elif a.state == A.DESTROYING:
            fields.update(destroy_failures=a.destroy_failures + 1)
            if a.destroy_failures + 1 >= LEAK_AFTER_POLLS:
                fields.update(state=A.LEAKED)
                self.journal.event(now, "leaked", f"ALERT {a.label}: still listed {LEAK_AFTER_POLLS} polls after destroy",
                                   a, data={"from": A.DESTROYING, "to": A.LEAKED})
        elif a.state not in (A.LEAKED, A.PULLING):   # ours until the call settles
            fields.update(state=o.state)
        if o.state == A.RUNNING and not a.started_at:
            fields["started_at"] = o.started_at or now
        if o.cost is not None:
            fields["provider_cost"] = o.cost
        self.ledger.set_attempt(a.id, at=now, **fields)
        if a.state not in GONE:
            b = self._attempt(a.id)
            self.ledger.set_attempt(a.id, spent=budget.billed(b, o.state, now, o.started_at, prev=a.state),
                                    billed_until=now)
        if o.state != a.state and a.state not in UNSETTLED | GONE:
            self._transition(a, A(o.state), now)

    def _transition(self, a: AttemptRow, to: AttemptState, now: float, note: str = "", kind: str = "state") -> None:
        self.journal.event(now, kind, f"{a.cell} #{a.attempt}: {note or f'{a.state} -> {to}'}", a,
                           data={"from": a.state, "to": to})

    def _attempt(self, aid: int) -> AttemptRow:
        a = self.ledger.attempt(aid)
        assert a is not None, f"attempt {aid} vanished from the ledger"
        return a


def _by_label(observed: list[Observed], known: dict[str, AttemptRow]) -> tuple[dict[str, Observed], list[Observed]]:
    """(label -> the instance that is the attempt's, the other instances under a label already taken). The one
    the ledger recorded is kept; else the earliest created (the first create that went through)."""
    groups: dict[str, list[Observed]] = {}
    for o in observed:
        groups.setdefault(o.label, []).append(o)
    mine, extra = {}, []
    for label, group in groups.items():
        recorded = known[label].provider_id if label in known else None
        group.sort(key=lambda o: (o.provider_id != recorded, o.created_at or 0.0, _as_int(o.provider_id)))
        mine[label] = group[0]
        extra.extend(group[1:])
    return mine, extra


def _as_int(provider_id: str) -> int:
    return int(provider_id) if provider_id.isdigit() else 0
