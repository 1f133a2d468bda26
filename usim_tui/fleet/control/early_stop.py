"""Early stopping in the controller: each poll, every running cell that has reached a rung it was not judged at
is judged by the rule (fleet/stopping/rule.py) on the metric its trainer wrote; a cell the rule stops is ended as
a finished one is (results pulled back, then destroyed) with its own state and reason, so the budget it would
have used launches the cells still waiting. Once no cell waits, the best stopped cells are launched again to the
full length (`continue_best`).

Only metric values decide: a stuck host writes none and a crashing run ends before its rung, so neither is ever
judged a slow learner (the policies deal with them), and a slow learner is never called stuck by this module.
"""

from __future__ import annotations

from usim_core.sweep import EarlyStop, Sweep
from usim_tui.fleet.stopping.rule import Judgement, Rule
from usim_tui.fleet.store.journal import Journal
from usim_tui.fleet.store.ledger import Ledger
from usim_tui.fleet.store.rows import AttemptRow, CellRow
from usim_tui.fleet.store.rungs import attempt_rule_positions
from usim_tui.fleet.store.states import CELL_ENDED, UNSETTLED, CellState


class EarlyStopper:
    def __init__(self, ledger: Ledger, sweep: Sweep, journal: Journal, enabled: bool = True) -> None:
        self.ledger, self.name, self.journal = ledger, sweep.name, journal
        self.es: EarlyStop | None = sweep.spec.early_stop if enabled else None
        self.rule = Rule(self.es) if self.es else None
        self.read_at: dict[int, tuple] = {}   # attempt -> its progress (stage, epoch, step) when last read
        if self.rule:   # a restarted controller decides as the first one did
            self.rule.replay([(r.cell, r.rung, r.position, r.value, bool(r.keep)) for r in ledger.rungs(self.name)])

    def reason(self, j: Judgement) -> str:
        assert self.es is not None
        return j.reason(self.es)

    def judge(self, now: float) -> list[tuple[AttemptRow, Judgement]]:
        """Judge every live attempt that has reached a new rung; returns those the rule stops (not yet ended)."""
        if self.rule is None:
            return []
        cells = {c.name: c for c in self.ledger.cells(self.name)}
        stopped = []
        for a in self.ledger.live_attempts(self.name):
            cell = cells.get(a.cell)
            if cell is None or cell.state != CellState.PENDING or cell.continued or a.done_event \
                    or a.error_event or a.state in UNSETTLED:
                continue
            progress = (a.stage, a.epoch, a.step)
            if self.read_at.get(a.id) == progress:
                continue   # nothing new from its trainer since it was last read: the ledger is not asked again
            self.read_at[a.id] = progress
            for j in self._judge_attempt(a, cell, now):
                if j.stop:
                    stopped.append((a, j))
                    break
        return stopped

    def _judge_attempt(self, a: AttemptRow, cell: CellRow, now: float) -> list[Judgement]:
        assert self.rule is not None and self.es is not None
        points, end = self.points(a)
        out: list[Judgement] = []
        if not points:
            return out
        rung = self.rule.judged(a.cell)
        while rung in self.es.rungs_before(end):
            at = self.es.rung_position(rung)
            reached = next(((pos, v) for pos, v in points if pos >= at), None)
            if reached is None:
                break
            j = self.rule.judge(a.cell, rung, reached[0], reached[1], keep=bool(cell.keep))
            self.ledger.add_rung(self.name, a.cell, a.id, j.rung, j.position, j.value, j.compared, j.cutoff,
                                 j.stop, bool(cell.keep), j.why, now)
            self.journal.event(now, "rung", f"{a.cell} #{a.attempt}: rung {j.rung} at {j.position} "
                               f"{self.es.unit}: {self.es.metric} {j.value:.4g}, cut-off {j.cutoff:.4g}: {j.why}", a,
                               data={"rung": j.rung, "value": j.value, "cutoff": j.cutoff, "stop": j.stop})
            out.append(j)
            if j.stop:
                break
            rung += 1
        return out

    def points(self, a: AttemptRow) -> tuple[list[tuple[int, float]], int]:
        """The attempt's (position, metric value) points in the rule's unit, oldest first, and where the stage
        ends in that unit (none and 0 while its stage has not started)."""
        assert self.es is not None
        return attempt_rule_positions(self.ledger, a.id, self.es)

    def to_continue(self) -> list[CellRow]:
        """Once every cell has ended: the best stopped cells not yet continued (up to continue_best in all), ranked
        by the furthest rung they passed, then by how close they came to its cut-off."""
        if self.es is None or not self.es.continue_best:
            return []
        cells = self.ledger.cells(self.name)
        if any(c.state not in CELL_ENDED for c in cells):
            return []
        left = self.es.continue_best - sum(1 for c in cells if c.continued)
        last = {r.cell: r for r in self.ledger.rungs(self.name)}   # each cell's last judgement
        stopped = [c for c in cells if c.state == CellState.STOPPED_EARLY and not c.continued and c.name in last]
        stopped.sort(key=lambda c: (-last[c.name].rung, last[c.name].value / max(last[c.name].cutoff, 1e-12)))
        return stopped[:max(left, 0)]
