"""The top bar: which cluster and profile, whether we reach it, and when we last did."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from tui.widgets.repaint import update_static


class ClusterHeader(Vertical):
    """Attributes down: the app calls ``show_connected`` / ``show_error`` / ``show_activity``."""

    def __init__(self, *, profile: str, host: str, writes: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.profile = profile
        self.host = host
        self.writes = writes
        self.cluster_name: str | None = None
        self.summary = ""
        self.activity: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="header-bar"):
            yield Static(self._title(), id="header-title")
            yield Static("", id="header-summary")
            yield Static(Text("connecting…", style="italic"), id="header-state")
            yield Static("", id="header-time")
        yield Static("", id="header-error")

    @property
    def text(self) -> str:
        """What the header says, part by part (`` | `` between them; the state and the
        time beside it as one)."""
        parts = [str(self.query_one(f"#header-{part}", Static).content)
                 for part in ("title", "summary", "state", "time", "error")]  # fmt: skip
        return " | ".join([*parts[:2], parts[2] + parts[3], parts[4]])

    def _title(self) -> Text:
        title = Text("labdeck", style="bold")
        title.append("  ")
        if self.cluster_name:
            title.append(self.cluster_name, style="bold")
            title.append("  ")
        title.append(f"{self.profile}@{self.host}", style="dim")
        title.append("  ")
        if self.writes:
            title.append(" read-write ", style="reverse yellow")
        else:
            title.append(" read-only ", style="reverse")
        return title

    def show_connected(self, when: datetime, cluster_name: str | None, summary: str) -> None:
        self.cluster_name = cluster_name or self.cluster_name
        self.summary = summary
        update_static(self.query_one("#header-title", Static), self._title())
        update_static(self.query_one("#header-summary", Static), summary)
        self._set_state(Text.assemble(("● ", "bold green"), "connected"), when)
        update_static(self.query_one("#header-error", Static), "")
        self.remove_class("-error")

    def show_error(self, when: datetime, kind: str, message: str) -> None:
        self._set_state(Text.assemble(("✖ ", "bold red"), kind), when)
        self.query_one("#header-error", Static).update(Text(message))
        self.add_class("-error")

    def show_activity(self, activity: str | None) -> None:
        self.activity = activity
        state = self.query_one("#header-state", Static)
        state.set_class(activity is not None, "-busy")
        self.set_class(activity is not None, "-busy")  # the time of the last refresh is hidden
        if activity is not None:
            update_static(state, Text(f"⟳ {activity}"))
        elif self._last_state is not None:
            update_static(state, self._last_state)

    _last_state: Text | None = None

    def _set_state(self, state: Text, when: datetime) -> None:
        """The state (its width may change: a relayout) and, beside it, the time of the
        refresh in a widget of fixed width: a refresh that only moves the time repaints
        those few cells, not the whole screen (an auto-width widget with new text asks for
        a layout pass of every widget)."""
        self._last_state = state
        update_static(self.query_one("#header-time", Static), f" · {when:%H:%M:%S}")
        self.add_class("-timed")
        if self.activity is None:
            update_static(self.query_one("#header-state", Static), state)
