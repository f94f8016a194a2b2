"""Metric history on screen: plotext line charts, sparkline data and a text bar.

The guest and node detail screens show the round-robin history Proxmox VE keeps
(``pve_guest_metrics`` / ``pve_node_metrics``, ~70 rows per timeframe). One
``MetricsGraphs`` panel holds the charts of one target and switches between hour, day
and week; how each column reads (percent, bytes, bytes per second) is declared once in
a ``Chart``, so the guest and the node screen differ only in their chart list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Sparkline, Static
from textual_plotext import PlotextPlot

from core.errors import LabdeckError
from core.pve_results import Metrics

TIMEFRAMES = ("hour", "day", "week")
#: what one row of each timeframe covers, said in the panel's status line
ROW_SPANS = {"hour": "1-min rows", "day": "30-min rows", "week": "3-hour rows"}
Unit = Literal["percent", "bytes", "rate", "plain"]
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")
_BAR_CELLS = " ▏▎▍▌▋▊▉█"


def next_timeframe(timeframe: str) -> str:
    """hour -> day -> week -> hour."""
    index = TIMEFRAMES.index(timeframe) if timeframe in TIMEFRAMES else -1
    return TIMEFRAMES[(index + 1) % len(TIMEFRAMES)]


def column(metrics: Metrics, name: str) -> list[float]:
    """One column of the history as numbers (a gap in the RRD reads as 0)."""
    if name not in metrics.columns:
        return []
    index = metrics.columns.index(name)
    return [
        float(row[index]) if isinstance(row[index], int | float) else 0.0 for row in metrics.rows
    ]


def binary_scale(peak: float) -> tuple[float, str]:
    """The divisor and unit that keep ``peak`` below 1024 (bytes -> KiB -> MiB ...)."""
    divisor = 1.0
    for unit in _BINARY:
        if peak < 1024 * divisor or unit == _BINARY[-1]:
            return divisor, unit
        divisor *= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def scale_for(peak: float, unit: Unit) -> tuple[float, str]:
    """The divisor and label for values of ``unit`` up to ``peak`` (fractions -> %)."""
    if unit == "percent":
        return 0.01, "%"
    if unit in ("bytes", "rate"):
        divisor, label = binary_scale(peak)
        return divisor, label + ("/s" if unit == "rate" else "")
    return 1.0, ""


def scaled(values: Sequence[float], unit: Unit) -> tuple[list[float], str]:
    """Values in a unit a person reads at a glance, and that unit's label."""
    divisor, label = scale_for(max(values, default=0.0), unit)
    return [v / divisor for v in values], label


def reading(value: float, unit: Unit) -> str:
    """One value as text: ``12.3%``, ``1.4 GiB``, ``220 KiB/s``, ``0.25``."""
    (shown,), label = scaled([value], unit)
    if unit == "percent":
        return f"{shown:.1f}%"
    if unit == "plain":
        return f"{shown:.2f}"
    return f"{shown:.1f} {label}" if shown < 10 else f"{shown:.0f} {label}"


def load_colour(fraction: float) -> str:
    """Green, yellow from 70 %, red from 90 %: how busy or full a CPU, memory or disk is."""
    return "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"


def bar(fraction: float, width: int = 6) -> Text:
    """A horizontal bar of ``width`` cells for 0..1, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    cells = "█" * full + (_BAR_CELLS[part] if part else "")
    colour = load_colour(fraction)
    return Text(cells.ljust(width), style=f"{colour} on grey30")


_TREND_CELLS = "▁▂▃▄▅▆▇█"


def trend(fractions: Sequence[float], width: int = 8) -> Text:
    """The last ``width`` values of 0..1 as a sparkline, oldest first, right-aligned: one
    cell per value, its height the value itself (not scaled to the peak), coloured by the
    latest."""
    shown = list(fractions)[-width:]
    cells = "".join(
        _TREND_CELLS[min(len(_TREND_CELLS) - 1, int(max(0.0, v) * len(_TREND_CELLS)))]
        for v in shown
    )
    latest = shown[-1] if shown else 0.0
    colour = load_colour(latest)
    return Text(cells.rjust(width), style=colour)


def time_ticks(
    times: Sequence[int], timeframe: str, zone: tzinfo | None, count: int = 5
) -> tuple[list[int], list[str]]:
    """About ``count`` x-axis ticks, labelled by clock time (or weekday for a week)."""
    if not times:
        return [], []
    last = len(times) - 1
    picks = sorted({round(last * i / (count - 1)) for i in range(count)}) if last else [0]
    form = "%a %H:%M" if timeframe == "week" else "%H:%M"
    labels = [datetime.fromtimestamp(times[i], tz=zone).strftime(form) for i in picks]
    return [times[i] for i in picks], labels


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: its title, the columns it draws (column, legend) and their unit."""

    title: str
    lines: tuple[tuple[str, str], ...]
    unit: Unit
    #: a fixed top of the y axis in scaled units (100 for percentages), or None
    ceiling: float | None = None


class MetricChart(PlotextPlot):
    """A line chart of some columns of a ``Metrics`` history."""

    def __init__(self, chart: Chart, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart = chart

    def show(self, metrics: Metrics, zone: tzinfo | None) -> None:
        plt = self.plt
        plt.clear_figure()
        times = [int(row[0]) for row in metrics.rows]
        series = [(legend, column(metrics, name)) for name, legend in self.chart.lines]
        peak = max((max(values, default=0.0) for _, values in series), default=0.0)
        divisor, label = scale_for(peak, self.chart.unit)
        for legend, values in series:
            plt.plot(times, [v / divisor for v in values], label=legend, marker="braille")
        plt.title(f"{self.chart.title} ({label})" if label else self.chart.title)
        ticks, labels = time_ticks(times, metrics.timeframe, zone)
        plt.xticks([float(t) for t in ticks], labels)
        if self.chart.ceiling is not None:
            plt.ylim(0, self.chart.ceiling)
        else:
            plt.ylim(0, None)
        self.refresh()


MetricsFetch = Callable[[str], Awaitable[Metrics]]


class MetricsGraphs(Vertical):
    """A status line and one chart per ``Chart``; ``load(timeframe)`` fetches and draws.

    ``fetch(timeframe)`` is the screen's: it knows whose history to read. Errors end up in
    the status line as text and the charts keep what they showed.
    """

    def __init__(
        self, charts: Sequence[Chart], fetch: MetricsFetch, zone: tzinfo | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.charts = tuple(charts)
        self.fetch = fetch
        self.zone = zone
        self.timeframe = TIMEFRAMES[0]
        self.metrics: Metrics | None = None

    def compose(self) -> ComposeResult:
        yield Static("Loading the history…", classes="graphs-status", markup=False)
        with Grid(classes="graphs-grid"):
            for index, chart in enumerate(self.charts):
                # two charts a row; an odd last one takes the whole row
                last_alone = index == len(self.charts) - 1 and index % 2 == 0
                yield MetricChart(chart, classes="graph -span" if last_alone else "graph")

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one(".graphs-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    async def load(self, timeframe: str | None = None) -> None:
        self.timeframe = timeframe or self.timeframe
        self._status(f"Loading the last {self.timeframe}…")
        try:
            metrics = await self.fetch(self.timeframe)
        except LabdeckError as exc:
            self._status(f"History unavailable: {exc}", error=True)
            return
        self.metrics = metrics
        for chart in self.query(MetricChart):
            chart.show(metrics, self.zone)
        others = ", ".join(t for t in TIMEFRAMES if t != self.timeframe)
        self._status(
            f"Last {self.timeframe} · {ROW_SPANS.get(self.timeframe, '')} · "
            f"{len(metrics.rows)} points · t: {others}"
        )


class MetricRow(Horizontal):
    """``CPU  12.3%  ▂▃▅▂▁▃▇▅  max 31.0%``: one column's latest value and its history."""

    def __init__(self, name: str, label: str, unit: Unit, **kwargs: Any) -> None:
        super().__init__(classes="metric-row", **kwargs)
        self.column_name = name
        self.label = label
        self.unit: Unit = unit

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="metric-label", markup=False)
        yield Static("-", classes="metric-now", markup=False)
        yield Sparkline([], classes="metric-spark")
        yield Static("", classes="metric-peak", markup=False)

    def show(self, metrics: Metrics) -> None:
        values = column(metrics, self.column_name)
        if not values:
            return
        self.query_one(".metric-now", Static).update(reading(values[-1], self.unit))
        self.query_one(Sparkline).data = values
        self.query_one(".metric-peak", Static).update(f"max {reading(max(values), self.unit)}")
