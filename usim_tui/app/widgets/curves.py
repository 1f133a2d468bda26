"""Loss curves of the selected (or marked) attempts: one line per attempt and key, per stage, log-y toggle.
The legend is a row of its own below the plot, each label in its line's colour: inside the plot (plotext's
place for it) it covered the start of the curves.

Never raises: in log scale non-positive points are dropped (and counted in the title), and the data is handed
to plotext again before each build (its build takes the log of the stored values in place); a plotext error
while drawing becomes a one-line notice in the pane."""

from __future__ import annotations

import math

from rich.console import Group
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from usim_tui.fleet.store.resumes import stage_of

MAX_LINES = 8
# One colour per line (RGB: plotext and Rich read the same numbers, so the legend matches the plot).
COLOURS = ((86, 180, 233), (230, 159, 0), (0, 158, 115), (240, 228, 66), (204, 121, 167), (213, 94, 0),
           (0, 114, 178), (200, 200, 200))


def is_loss(key: str) -> bool:
    return "loss" in key.rsplit("/", 1)[-1]


def short_metric(key: str) -> str:
    """A legend's words for a metric key: `train/codec/loss` -> `codec`, `val/operator/loss` -> `operator val`."""
    parts = [p for p in key.split("/") if p not in ("train", "loss")]
    if parts and parts[0] == "val":
        parts = parts[1:] + ["val"]
    return " ".join(parts) or key


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log axis from lo to hi: the powers of ten (with 2 and 5 between when it spans little), as
    numbers a person reads (`0.01`, `1e-5`), never a column of zeros."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1.0,) if b - a >= 3 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0 ** k for k in range(a, b + 1) for m in steps if lo / 1.0001 <= m * 10.0 ** k <= hi * 1.0001]
    if len(ticks) < 2:
        ticks = [lo, hi]
    return ticks, [tick_label(t) for t in ticks]


def tick_label(v: float) -> str:
    return f"{v:g}" if 1e-3 <= v < 1e4 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def positive(xs: list[int], ys: list[float]) -> tuple[list[int], list[float]]:
    """The points a log scale can show (y > 0, finite)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0 and y != float("inf")]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class LossCurves(PlotextPlot):
    can_focus = True
    log_y: reactive[bool] = reactive(False)
    stage: reactive[str] = reactive("")   # "" = every stage

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: dict[str, tuple[list[int], list[float]]] = {}
        self._key: tuple | None = None
        self.notice = ""   # what the plot could not show (dropped points, a drawing error)

    def stages(self, series: dict[int, dict[str, list[tuple[int, float]]]]) -> list[str]:
        found = {stage_of(k) for per in series.values() for k in per if is_loss(k)}
        return [""] + sorted(s for s in found if s)

    def show(self, series: dict[int, dict[str, list[tuple[int, float]]]], names: dict[int, str]) -> None:
        # Metric series only grow, so count and ends tell a new point apart without copying every point each poll.
        key = (self.stage, tuple((aid, names.get(aid), k, len(p), p[0], p[-1]) for aid, per in series.items()
                                 for k, p in per.items() if p))
        if key == self._key:
            return
        self._key = key
        lines: dict[str, tuple[list[int], list[float]]] = {}
        for aid, per in series.items():
            for metric, points in sorted(per.items()):
                if not is_loss(metric) or (self.stage and stage_of(metric) != self.stage) or not points:
                    continue
                if not self.stage and metric.startswith("val/") and len(series) > 1:
                    continue   # every stage of several runs: the training losses (s picks a stage: val too)
                label = f"{names.get(aid, aid)} {short_metric(metric)}" if len(series) > 1 else short_metric(metric)
                lines[label] = ([p[0] for p in points], [p[1] for p in points])
                if len(lines) >= MAX_LINES:
                    break
        if lines != self.lines:
            self.lines = lines
            self.redraw()

    def redraw(self) -> None:
        self._plot_lines()
        self.refresh()

    def _plot_lines(self) -> None:
        """Hand the lines to plotext (no repaint)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        drawn = dropped = 0
        shown: list[float] = []
        for label, (xs, ys) in self.lines.items():
            if self.log_y:
                kept_x, ys = positive(xs, ys)
                dropped += len(xs) - len(kept_x)
                xs = kept_x
            if xs:
                plt.plot(xs, ys, marker="braille", color=self.colour(label))
                shown += ys
                drawn += 1
        self.notice = f"dropped {dropped} non-positive point(s)" if dropped else ""
        if drawn and self.log_y:
            plt.yscale("log")
            plt.yticks(*log_ticks(min(shown), max(shown)))
        title = f"loss · stage {self.stage or 'all'}{' · log y' if self.log_y else ''}"
        plt.title(title + (f" · {self.notice}" if self.notice else ""))
        if not drawn:
            plt.text("nothing to plot in log scale" if self.lines else "no loss points yet for the selection", 0, 0)

    def colour(self, label: str) -> tuple[int, int, int]:
        return COLOURS[list(self.lines).index(label) % len(COLOURS)]

    def legend(self) -> Text:
        """One row: each line's label in its colour (cut with … when the row is too short for them all)."""
        parts = [Text.assemble(("━ ", "rgb({},{},{})".format(*self.colour(label))), label) for label in self.lines]
        legend = Text("   ").join(parts)
        legend.no_wrap, legend.overflow = True, "ellipsis"
        return legend

    def render(self) -> RenderResult:
        try:
            if self.log_y:  # plotext's build() takes the log of its stored y in place: a second build (a
                self._plot_lines()  # resize, any repaint) would take it again, so hand it fresh data each time
            if not self.lines or self.size.height < 4:
                return super().render()
            # PlotextPlot.render, one row shorter: the legend's row below the plot
            width, height = self.size.width, self.size.height - 1
            self.plt.plotsize(width, height)
            self.plt._set_size(width, height)
            self.plt.theme(self._get_plotext_theme_name(self.app.theme))
            return Group(Text.from_ansi(self.plt.build().rstrip("\n")), self.legend())
        except Exception as exc:  # plotext's own errors (math domain, sizes): a notice, never the end of the app
            return Text(f"plot unavailable: {type(exc).__name__}: {exc}", style="bold red")

    def show_error(self, error: str) -> None:
        self.notice = error
        self._key = None
        self.plt.clear_data()
        self.plt.clear_figure()
        self.plt.title(error)
        self.refresh()

    def watch_log_y(self) -> None:
        self.redraw()

    def watch_stage(self) -> None:
        self.redraw()
