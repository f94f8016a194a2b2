"""Updates that cost a repaint only when something changed, and a relayout only when a size can.

A dashboard refresh rewrites the header, the tab labels and the guest panel every few
seconds, mostly with what they already show. ``Static.update`` and ``Tab.label`` always ask
for a layout pass of the whole screen (a few tens of milliseconds with the dashboard's
widgets), so they are skipped here when the content is the same, and done without layout
when the widget's size cannot change: it is fixed in both directions.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static, TabbedContent


def _as_text(content: Any) -> Text | None:
    if isinstance(content, Text):
        return content
    if isinstance(content, str):
        try:
            return Text.from_markup(content)
        except Exception:  # not markup after all (a Static made with markup=False)
            return Text(content)
    return None  # a renderable (a table, a group): not compared


def same_content(old: Any, new: Any) -> bool:
    """True when ``old`` and ``new`` certainly render the same (text of the same style)."""
    before, after = _as_text(old), _as_text(new)
    if before is None or after is None:
        return False
    return (before.plain, before.spans, before.style) == (after.plain, after.spans, after.style)


def _fixed_size(widget: Static) -> bool:
    """No width or height from the content: set in cells or fractions, or unset (fills)."""
    return all(
        size is None or not size.is_auto for size in (widget.styles.width, widget.styles.height)
    )


def update_static(widget: Static, content: Any) -> None:
    """``widget.update(content)``, skipped if unchanged, without a relayout if its size is
    fixed. A widget sized by its content is laid out again even for text of the same
    width: a snapshot once caught such a widget at its old width (not understood; kept
    safe)."""
    old = widget.content
    if same_content(old, content):
        return
    widget.update(content, layout=not _fixed_size(widget))


def set_tab_label(tabs: TabbedContent, pane_id: str, label: str) -> None:
    """Set a tab's label if it differs (each set re-lays out the tab bar)."""
    tab = tabs.get_tab(pane_id)
    if tab.label.plain != label:
        tab.label = label
