"""Reading the trainers' events from the provider's logs, within an API budget.

Every attempt that has ended is read once more (its final events decide finished or failed). Running ones:
all of them when the provider's logs are cheap (local files); otherwise at most `reads_per_poll` per poll
(each read is an API call), most urgent first: a start-up deadline waiting on evidence, a state change since
the last read, not yet started, then the longest unread. A tail repeats what the last read returned, so only
lines not seen before are parsed (the ledger de-duplicates events as well).
"""

from __future__ import annotations

from usim_core.events import Event, parse_lines
from usim_tui.fleet.control.host_runs import HostRuns
from usim_tui.fleet.providers.base import Provider, ProviderError
from usim_tui.fleet.store.rows import AttemptRow
from usim_tui.fleet.store.states import ENDED, NO_LOG_YET, AttemptState

A = AttemptState
FINAL_TRIES = 3          # polls an exited attempt's verdict waits for its final log read


class LogReader:
    def __init__(self, provider: Provider, tail: int, reads_per_poll: int,
                 host_runs: HostRuns | None = None) -> None:
        self.provider, self.tail, self.reads_per_poll = provider, tail, reads_per_poll
        self.host_runs = host_runs               # events of runs on SSH hosts come from there
        self.tails: dict[int, str] = {}          # attempt -> the last tail read (for failure messages)
        self.read_at: dict[int, float] = {}      # attempt -> when its log was last fetched (or tried)
        self.urgent: set[int] = set()            # a start-up deadline waits on a fresh read of these
        self._read_state: dict[int, str] = {}    # attempt -> its state at that fetch
        self._seen_lines: dict[int, set[int]] = {}
        self._final_read: set[int] = set()       # ended attempts whose last events have been read
        self._final_tries: dict[int, int] = {}   # failed final reads

    def due(self, live: list[AttemptRow]) -> tuple[list[AttemptRow], list[AttemptRow]]:
        """(ended attempts still owed their final read, running attempts to read this poll)."""
        for gone in set(self._seen_lines) - {a.id for a in live}:   # forget what ended attempts printed
            self._seen_lines.pop(gone, None)
            self.tails.pop(gone, None)
        final, running = [], []
        for a in live:
            if not a.provider_id or a.state in NO_LOG_YET:
                continue
            if a.state in ENDED:
                if a.id not in self._final_read:
                    final.append(a)
            else:
                running.append(a)
        if not getattr(self.provider, "logs_are_cheap", False):
            running.sort(key=lambda a: (a.id not in self.urgent, self._read_state.get(a.id) == a.state,
                                        bool(a.started_event), self.read_at.get(a.id, float("-inf"))))
            running = running[:self.reads_per_poll]
        return final, running

    async def read(self, a: AttemptRow, now: float, final: bool = False) -> list[Event] | None:
        """The events in lines not seen before; None when the provider call failed."""
        self.read_at[a.id], self._read_state[a.id] = now, a.state
        self.urgent.discard(a.id)
        if self.host_runs is not None and self.host_runs.on_host(a):
            events = await self.host_runs.events(a)
            if final:
                if events is None:
                    self._final_tries[a.id] = self._final_tries.get(a.id, 0) + 1
                else:
                    self._final_read.add(a.id)
            return events
        try:
            text = await self.provider.logs(a.provider_id or "", tail=self.tail)
        except ProviderError:
            if final:
                self._final_tries[a.id] = self._final_tries.get(a.id, 0) + 1
            return None
        if final:
            self._final_read.add(a.id)
        self.tails[a.id] = text
        seen = self._seen_lines.setdefault(a.id, set())
        new = [ln for ln in text.splitlines() if hash(ln) not in seen]
        seen.update(hash(ln) for ln in new)
        return parse_lines("\n".join(new))  # type: ignore[return-value]

    def final_pending(self, a: AttemptRow) -> bool:
        """Its last events (perhaps `done`) are not read yet and it may still be: never call it failed now."""
        return a.id not in self._final_read and self._final_tries.get(a.id, 0) < FINAL_TRIES
