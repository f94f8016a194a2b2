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
        yield Static("", id="header-error")

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
        state = Text("● ", style="bold green")
        state.append(f"connected · {when:%H:%M:%S}")
        self._set_state(state)
        update_static(self.query_one("#header-error", Static), "")
        self.remove_class("-error")

    def show_error(self, when: datetime, kind: str, message: str) -> None:
        state = Text("✖ ", style="bold red")
        state.append(f"{kind} · {when:%H:%M:%S}")
        self._set_state(state)
        self.query_one("#header-error", Static).update(Text(message))
        self.add_class("-error")

    def show_activity(self, activity: str | None) -> None:
        self.activity = activity
        self.query_one("#header-state", Static).set_class(activity is not None, "-busy")
        if activity is not None:
            update_static(self.query_one("#header-state", Static), Text(f"⟳ {activity}"))
        elif self._last_state is not None:
            update_static(self.query_one("#header-state", Static), self._last_state)

    _last_state: Text | None = None

    def _set_state(self, state: Text) -> None:
        self._last_state = state
        if self.activity is None:
            update_static(self.query_one("#header-state", Static), state)
