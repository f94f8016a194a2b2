"""F1: every key of the dashboard, read from the live bindings (so a keymap shows)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "labdeck shows one Proxmox VE cluster. Guests, nodes and pools refresh on their own; "
    "actions on the selected guest ask before anything disruptive. ctrl+p opens the "
    "command palette (actions, views, and jumping to a guest by name)."
)


def bindings_table(sections: Iterable[tuple[str, list[tuple[str, Binding]]]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, rows in sections:
        table.add_row(Text(title, style="bold underline"), "")
        for keys, binding in rows:
            table.add_row(keys, binding.tooltip or binding.description)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "close", "Close", id="help.close", tooltip="Close the help."),
    ]

    def __init__(self, sections: list[tuple[str, list[tuple[str, Binding]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(Text(INTRO), id="help-intro")
            yield Static(bindings_table(self.sections), id="help-keys")

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "labdeck · keys"
        self.query_one("#help-dialog").border_subtitle = "escape to close"

    def action_close(self) -> None:
        self.dismiss(None)
