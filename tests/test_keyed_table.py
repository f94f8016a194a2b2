"""KeyedTable repaints only what changed, and what it paints is what a fresh table paints.

In-place updates keep DataTable's render caches and drop only the entries of changed
cells (see ``tui/widgets/keyed_table.py``). These tests hold that to the only standard
that matters: after any sequence of updates, scrolls, sorts and filters, every line of the
table is segment for segment what a table built from scratch with the final rows paints.
They also count the rows rendered again, so the saving cannot quietly disappear.
No simulator is involved: the table is fed rows directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate as Coord
from textual.geometry import Region
from textual.widgets import DataTable

from tui.widgets.keyed_table import Cell, KeyedTable

SIZE = (70, 16)


class Table(KeyedTable):
    COLUMNS = (("key", "Key"), ("name", "Name"), ("cpu", "CPU"), ("state", "State"))
    initial_sort = ("key", False)

    order_reverse = False

    def after_sync(self) -> None:
        self.sort_rows(lambda key: int(key), reverse=self.order_reverse)


class TableApp(App[None]):
    def __init__(self, rows: Mapping[str, Sequence[Cell]]) -> None:
        super().__init__()
        self.initial = rows

    def compose(self) -> ComposeResult:
        yield Table()

    def on_mount(self) -> None:
        self.query_one(Table).sync_rows(self.initial)


def rows(count: int, *, cpu_of: Any = lambda n: n % 7, skip: frozenset[int] = frozenset()
         ) -> dict[str, tuple[Cell, ...]]:  # fmt: skip
    return {
        str(n): (str(n), Text(f"guest-{n}", style="italic" if n % 5 == 0 else ""),
                 f"{cpu_of(n):.1f}%", "[green]running[/]" if n % 3 else "stopped")
        for n in range(1, count + 1) if n not in skip
    }  # fmt: skip


def painted(table: Table) -> list[list[tuple[str, Any]]]:
    """What the compositor gets for every visible line: each segment's text and style."""
    width, height = table.size
    strips = table.render_lines(Region(0, 0, width, height))
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


async def fresh_paint(
    final: Mapping[str, Sequence[Cell]], *, scroll_y: int = 0, cursor_row: int = 0,
    reverse: bool = False,
) -> list[list[tuple[str, Any]]]:  # fmt: skip
    app = TableApp({})
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        table.order_reverse = reverse
        table.sync_rows(final)
        await pilot.pause()
        table.move_cursor(row=cursor_row, animate=False)
        table.scroll_to(y=scroll_y, animate=False)
        await pilot.pause()
        return painted(table)


class RenderCount:
    """Counts the rows DataTable renders anew (its row cache grows) on one table."""

    def __init__(self, table: Table) -> None:
        self.rows: list[str] = []
        original = table._render_line_in_row

        def counting(row_key: Any, *args: Any, **kwargs: Any) -> Any:
            before = len(table._row_render_cache)
            result = original(row_key, *args, **kwargs)
            if len(table._row_render_cache) > before and row_key in table._data:
                self.rows.append(row_key.value)
            return result

        table._render_line_in_row = counting  # type: ignore[method-assign]


async def test_updating_cells_in_place_paints_what_a_fresh_table_paints() -> None:
    app = TableApp(rows(40))
    # changes of the same widths (the caches are kept), then wider cells, then back
    states = [rows(40, cpu_of=lambda n: n % 7 + 0.5),
              rows(40, cpu_of=lambda n: n % 7 + 0.3),
              rows(40, cpu_of=lambda n: 100.0 if n == 4 else n % 7),
              rows(40, cpu_of=lambda n: n % 7 + 0.5)]  # fmt: skip
    seen = []
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        await pilot.pause()
        painted(table)  # the caches hold every visible row
        for state in states:
            table.sync_rows(state)
            await pilot.pause()
            seen.append(painted(table))
        assert table.sync_stats["added"] == 40 and table.sync_stats["updated"] > 0
        assert table.cursor_row == 0
    for state, now in zip(states, seen, strict=True):
        assert now == await fresh_paint(state)


@pytest.mark.parametrize("height", ["auto", "1fr"])
async def test_rows_added_or_removed_size_the_table_and_its_scroll_bar_at_once(
    height: str,
) -> None:
    """``sync_rows`` works out the new virtual height itself, so that the frame painting
    the rows lays them out too (``size_now``); a table as high as the layout makes it
    (not as its rows make it) also knows at once whether it scrolls."""
    app = TableApp(rows(40))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        table.styles.height = height
        await pilot.pause()
        for count in (5, 40, 14, 15, 16, 3):
            table.sync_rows(rows(count))
            assert table.virtual_size.height == count + table.header_height, count
            scrolls = count + table.header_height > SIZE[1]
            if height == "1fr":
                assert table.show_vertical_scrollbar is scrolls, count
            await pilot.pause()
            assert table.show_vertical_scrollbar is scrolls, count


async def test_updates_while_scrolled_and_after_removals_and_a_reorder() -> None:
    app = TableApp(rows(60))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        await pilot.pause()
        table.scroll_to(y=25, animate=False)
        await pilot.pause()
        table.sync_rows(rows(60, cpu_of=lambda n: n % 4))  # rows above, in and below the window
        await pilot.pause()
        table.sync_rows(rows(60, cpu_of=lambda n: n % 4, skip=frozenset({2, 30})))
        await pilot.pause()
        table.order_reverse = True
        final = rows(60, cpu_of=lambda n: n % 9, skip=frozenset({2, 30}))
        table.sync_rows(final)
        await pilot.pause()
        table.scroll_to(y=25, animate=False)
        await pilot.pause()
        now, scroll_y = painted(table), int(table.scroll_y)
    assert now == await fresh_paint(final, scroll_y=scroll_y, reverse=True)


async def test_a_change_in_one_row_renders_that_row_again_and_no_other() -> None:
    first = rows(40)
    app = TableApp(first)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        await pilot.pause()
        painted(table)  # the caches hold every visible row
        count = RenderCount(table)
        changed = dict(first)
        changed["5"] = ("5", Text("guest-5", style="italic"), "9.9%", "stopped")
        table.sync_rows(changed)
        await pilot.pause()
        assert count.rows == ["5"]
        table.sync_rows(changed)  # nothing changed: nothing rendered
        await pilot.pause()
        assert count.rows == ["5"]
        below = dict(changed)
        below["39"] = ("39", Text("guest-39"), "1.0%", "stopped")  # outside the window
        table.sync_rows(below)
        await pilot.pause()
        assert count.rows == ["5"]
        table.scroll_end(animate=False)
        await pilot.pause()
        assert "39" in count.rows  # painted fresh once it comes into view
        now, scroll_y = painted(table), int(table.scroll_y)
        table.scroll_home(animate=False)
        await pilot.pause()
        top = painted(table)
    assert now == await fresh_paint(below, scroll_y=scroll_y)
    assert top == await fresh_paint(below)


async def test_a_new_sort_order_or_a_wider_column_repaints_every_row() -> None:
    app = TableApp(rows(12))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(Table)
        await pilot.pause()
        count = RenderCount(table)
        wider = rows(12)
        wider["3"] = ("3", Text("a much longer guest name"), "0.0%", "stopped")
        table.sync_rows(wider)
        await pilot.pause()
        assert sorted(count.rows, key=int) == [str(n) for n in range(1, 13)]
        table.order_reverse = True
        count.rows.clear()
        table.sync_rows(wider)
        await pilot.pause()
        assert sorted(count.rows, key=int) == [str(n) for n in range(1, 13)]
        now = painted(table)
    assert now == await fresh_paint(wider, reverse=True)


# ------------------------------------------------------------------ cells drawn once, placed


class DataTableCells(Table):
    """The same table with DataTable's own cell drawing (one per position) and row lines."""

    _render_cell = DataTable._render_cell  # type: ignore[assignment]
    _render_line_in_row = DataTable._render_line_in_row  # type: ignore[assignment]


class TwoTables(App[None]):
    AUTO_FOCUS = None  # neither has the focus: both draw the same header and cursor

    def compose(self) -> ComposeResult:
        yield Table(id="ours")
        yield DataTableCells(id="theirs")


def varied_rows(count: int) -> dict[str, tuple[Cell, ...]]:
    """Cells of every kind a table here shows, and some it does not: markup, styled Text,
    wide characters, repeated values (drawn once, placed many times), a click action and
    a link (meta of their own: drawn DataTable's way)."""
    names = ["web", "db-主機", "🐧 tux", "[b]bold[/b]", "x" * 12]
    return {
        str(n): (str(n), Text(names[n % 5], style="italic" if n % 4 == 0 else ""),
                 "-" if n % 3 else f"{n % 7}.0%",
                 "[@click=app.bell]ring[/]" if n == 7 else
                 "[link=https://example.org]site[/]" if n == 8 else
                 "[green]running[/]" if n % 2 else "stopped")
        for n in range(1, count + 1)
    }  # fmt: skip


async def test_cells_drawn_once_and_placed_paint_what_datatable_draws() -> None:
    app = TwoTables()
    async with app.run_test(size=(70, 30)) as pilot:
        ours, theirs = app.query_one("#ours", Table), app.query_one("#theirs", Table)
        steps = [
            lambda t: t.sync_rows(varied_rows(40)),
            lambda t: t.move_cursor(row=3, animate=False),
            lambda t: setattr(t, "order_reverse", True) or t.sync_rows(varied_rows(40)),
            lambda t: t.scroll_to(y=9, animate=False),
            lambda t: t.move_cursor(row=12, animate=False),
            lambda t: t.sync_rows(varied_rows(33)),  # rows gone: every row moves
            lambda t: setattr(t, "order_reverse", False) or t.sync_rows(varied_rows(33)),
            # the mouse over a row, then over the header (row -1), as a pointer puts it
            lambda t: t._set_hover_cursor(True) or setattr(t, "hover_coordinate", Coord(14, 2)),
            lambda t: setattr(t, "hover_coordinate", Coord(-1, 1)),
            lambda t: t._set_hover_cursor(False),
            lambda t: setattr(t, "show_cursor", False),
            lambda t: setattr(t, "show_cursor", True) or t.sync_rows(varied_rows(6)),  # narrower
        ]
        for step in steps:
            step(ours)
            step(theirs)
            await pilot.pause()
            assert painted(ours) == painted(theirs)
        assert len(ours._drawn_cells) < 4 * len(ours._cell_render_cache)  # drawn once, placed


# ------------------------------------------------------------------ guest rows, made again


def test_a_guest_row_is_drawn_again_only_where_its_inputs_changed() -> None:
    from core.models import Guest
    from tui.widgets.guest_table import guest_cells

    guest = Guest(vmid=101, name="web-1", node="pve1", kind="qemu", status="running",
                  cpu=0.25, mem=2 << 30, maxmem=4 << 30, maxdisk=0, uptime=3600,
                  tags=["web"], pool="prod", template=False)  # fmt: skip
    first = guest_cells(guest)
    assert guest_cells(guest.model_copy(), first) is first  # nothing moved: the same row
    busier = guest.model_copy(update={"cpu": 0.5, "uptime": 3700})
    inputs, cells = guest_cells(busier, first)
    fresh_inputs, fresh_cells = guest_cells(busier)
    assert (inputs, cells) == (fresh_inputs, fresh_cells)  # as if drawn from scratch
    moved = [i for i, (old, new) in enumerate(zip(first[1], cells, strict=True)) if old is not new]
    assert moved == [4, 6]  # CPU and uptime only; the others are the same objects
    stopped = busier.model_copy(update={"status": "stopped"})
    _, cells = guest_cells(stopped, (inputs, cells))
    assert cells == guest_cells(stopped)[1]
    assert cells[4] == "-" and cells[5] == "-"


def test_a_plain_cell_is_drawn_as_rich_draws_it() -> None:
    """``_plain_cell`` makes directly what Rich's padding-and-styles pipeline makes for a
    one-line, span-less ASCII cell, in every style layering; anything else is left to Rich."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.segment import Segment
    from rich.style import Style
    from textual.renderables.styled import Styled

    from tui.widgets.keyed_table import _plain_cell

    console = Console(width=80, color_system="truecolor")
    texts = [Text("web"), Text("12.0%"), Text("guest-5", style="italic"), Text("a b"),
             Text("x", style=Style(bold=True, color="red")), Text("-", style=Style.null()),
             Text("[not markup]")]  # fmt: skip
    layers = [Style(bgcolor="blue"), Style(color="white", bgcolor="black", bold=True),
              Style.null()]  # fmt: skip
    drawn_directly = 0
    for text in texts:
        for pre in layers:
            for post in [*layers, Style(reverse=True)]:
                for width, padding in [(12, 1), (len(text.plain) + 2, 1), (9, 0), (14, 2)]:
                    options = console.options.update_dimensions(width, 1).update(no_wrap=True)
                    ours = _plain_cell(console, options, text, pre, post, padding)
                    if ours is None:
                        continue
                    drawn_directly += 1
                    rich = console.render_lines(
                        Styled(Padding(text, (0, padding)), pre_style=pre, post_style=post),
                        options,
                    )
                    assert [list(Segment.simplify(line)) for line in ours] == [
                        list(Segment.simplify(line)) for line in rich
                    ], (text, pre, post, width, padding)
    assert drawn_directly > 100
    options = console.options.update_dimensions(12, 1).update(no_wrap=True)
    for other in [Text.from_markup("[b]bold[/b]"), Text("主機"), Text("tab\there"), Text(""),
                  Text("far too long for it"), Text("right", justify="right")]:  # fmt: skip
        assert _plain_cell(console, options, other, Style(), Style(), 1) is None, other
