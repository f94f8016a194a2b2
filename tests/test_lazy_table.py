"""The guest table draws only the rows it paints, and paints what a fresh table paints.

``GuestTable`` (a ``LazyTable``) sorts, filters and sizes its columns on the models and
makes cells only for rows on screen (see ``tui/widgets/lazy_table.py``). These tests hold
it to what a person sees: after any sequence of refreshes, scrolls, sorts and filters,
every painted line is segment for segment what a table built from scratch with the final
guests paints; the column widths are those of the widest cells a full draw would make;
and a refresh of thousands of guests draws a screenful of rows, not thousands.
No simulator is involved: the table is fed models directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.geometry import Region

from core.models import Guest
from tui import formatting
from tui.widgets.guest_table import GuestTable, guest_cells, guest_column_widths
from tui.widgets.keyed_table import cell_width

SIZE = (100, 20)
GiB = 1024**3


def guest(n: int, tick: int = 0, *, running: bool | None = None) -> Guest:
    """Guest ``n`` at refresh ``tick``: running ones' CPU, memory and uptime move."""
    up = (n % 3 != 0) if running is None else running
    return Guest(
        vmid=100 + n, name=f"guest-{n}" + ("-with-a-long-name" if n % 17 == 0 else ""),
        node=f"pve{n % 4 + 1}", kind="lxc" if n % 2 else "qemu",
        status="running" if up else "stopped", template=n % 29 == 0 and not up,
        cpu=((n * 7 + tick * 13) % 1000) / 1000 if up else 0.0,
        mem=(n * 37 + tick * 11) % 8 * GiB // 2 if up else 0, maxmem=4 * GiB,
        uptime=86_000 * (n % 5) + 59 * tick + n if up else 0,
        pool=f"team-{n % 3}" if n % 4 else None, tags=["web"] if n % 6 == 0 else [],
    )  # fmt: skip


def cluster(count: int, tick: int = 0, *, skip: frozenset[int] = frozenset()) -> list[Guest]:
    return [guest(n, tick) for n in range(count) if n not in skip]


class GuestApp(App[None]):
    def __init__(self, theme: str | None = None) -> None:
        super().__init__()
        if theme is not None:
            self.theme = theme

    def compose(self) -> ComposeResult:
        yield GuestTable()


def painted(table: GuestTable) -> list[list[tuple[str, Any]]]:
    """What the compositor gets for every visible line: each segment's text and style."""
    width, height = table.size
    strips = table.render_lines(Region(0, 0, width, height))
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


def shown(table: GuestTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def fresh_paint(
    guests: Sequence[Guest], *, key: str | None, scroll_y: int, sort: tuple[str, bool],
    filter_text: str = "",
) -> tuple[list[list[tuple[str, Any]]], list[str]]:  # fmt: skip
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        await pilot.pause()
        table.sort_by(*sort[:1], reverse=sort[1])
        table.set_filter(filter_text)
        table.show(guests)
        await pilot.pause()
        if key is not None:
            table.put_cursor_on(key)
        table.scroll_to(y=scroll_y, animate=False)
        await pilot.pause()
        return painted(table), shown(table)


async def same_as_fresh(table: GuestTable, pilot: Any, guests: Sequence[Guest]) -> None:
    await pilot.pause()
    now = painted(table), shown(table)
    fresh = await fresh_paint(
        guests, key=table.current_key, scroll_y=int(table.scroll_y),
        sort=(table.sort_column, table.sort_reverse), filter_text=table.filter_text,
    )  # fmt: skip
    assert now == fresh


async def test_refreshes_scrolls_sorts_and_filters_paint_what_a_fresh_table_paints() -> None:
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        table.show(cluster(120))
        await pilot.pause()
        painted(table)  # the render caches hold every visible row
        table.show(cluster(120, tick=1))  # metrics move
        await same_as_fresh(table, pilot, cluster(120, tick=1))
        table.scroll_to(y=60, animate=False)
        await pilot.pause()
        painted(table)
        structure = table._update_count
        table.show(cluster(120, tick=2))  # the rows painted first are off screen now
        assert table._update_count == structure  # same rows, same widths: kept in place
        table.scroll_to(y=0, animate=False)  # back to them, with no refresh between
        await same_as_fresh(table, pilot, cluster(120, tick=2))

        table.scroll_to(y=50, animate=False)
        table.move_cursor(row=55)
        await pilot.pause()
        painted(table)
        final = cluster(125, tick=4, skip=frozenset({3, 56, 57}))  # some go, five come
        table.show(final)
        await same_as_fresh(table, pilot, final)
        assert table.current_key == str(guest(55).vmid)  # the cursor stays on its guest

        table.sort_by("cpu", reverse=True)
        await same_as_fresh(table, pilot, final)
        table.show(cluster(125, tick=5, skip=frozenset({3, 56, 57})))  # the order moves
        await same_as_fresh(table, pilot, cluster(125, tick=5, skip=frozenset({3, 56, 57})))

        table.set_filter("web")
        await same_as_fresh(table, pilot, cluster(125, tick=5, skip=frozenset({3, 56, 57})))
        assert shown(table) and all(int(key) % 6 == 100 % 6 for key in shown(table))
        table.set_filter("")
        table.sort_by("name", reverse=False)
        await same_as_fresh(table, pilot, cluster(125, tick=5, skip=frozenset({3, 56, 57})))
        assert table.row_count == 122


async def test_typing_a_filter_shows_the_guests_it_matches_through_refreshes() -> None:
    """What each keystroke searches is kept from the first one (``shown_guests``); a
    refresh brings guests that changed, which the next keystroke must search anew."""
    queries = ["w", "we", "web", "web pve", "web pve3", " ", "TEAM-1", "team-1 lxc", "", "x"]
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        guests = cluster(90)
        table.show(guests)
        for tick, query in enumerate(queries):
            table.set_filter(query)
            wanted = {str(g.vmid) for g in guests if formatting.guest_matches(g, query)}
            assert set(shown(table)) == wanted, query
            if tick % 3 == 2:  # a refresh while filtered: a guest renamed, some tagged anew
                guests = [g.model_copy(update={"name": "web-x", "tags": ["pve3"]})
                          if g.vmid % 5 == 0 else g for g in cluster(90, tick)]  # fmt: skip
                table.show(guests)
                wanted = {str(g.vmid) for g in guests if formatting.guest_matches(g, query)}
                assert set(shown(table)) == wanted, query


async def test_a_filter_sizes_the_table_and_its_scroll_bar_before_the_frame() -> None:
    """A filter that changes how many rows there are gives the table its new height and
    scroll bar at once, not when the table is next idle (DataTable's way): the frame that
    paints the keystroke then lays them out too, instead of one or two more layout frames
    ~30-60 ms later (``KeyedTable.size_now``)."""
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        table.styles.height = "1fr"  # as the dashboard lays it out (tui/labdeck.tcss)
        table.show(cluster(90))
        await pilot.pause()
        assert table.show_vertical_scrollbar  # 90 rows in a 20-line table
        for query, scrolls in (("web", False), ("", True), ("team-1", True), ("zzz", False)):
            table.set_filter(query)  # no pause: what the next frame lays out
            assert table.virtual_size.height == table.row_count + table.header_height, query
            assert table.show_vertical_scrollbar is scrolls, query
            assert not table._require_update_dimensions, query
            await pilot.pause()
            assert table.show_vertical_scrollbar is scrolls, query


async def test_a_new_theme_repaints_the_stripes_in_its_colours() -> None:
    """The zebra stripes' style is kept between paints (``KeyedTable._style_memo``); a
    theme change must still reach every row."""
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        table.show(cluster(40))
        await pilot.pause()
        dark = painted(table)
        pilot.app.theme = "textual-light"
        await pilot.pause()
        light = painted(table)
    async with GuestApp(theme="textual-light").run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        table.show(cluster(40))
        await pilot.pause()
        assert light == painted(table) != dark


async def test_a_refresh_of_5000_guests_draws_only_the_rows_on_screen() -> None:
    async with GuestApp().run_test(size=SIZE) as pilot:
        table = pilot.app.query_one(GuestTable)
        table.show(cluster(5000))
        await pilot.pause()
        painted(table)
        window = table.size.height
        assert 0 < len(table._drawn) <= window
        before = dict(table.sync_stats)
        table.show(cluster(5000, tick=1))  # every running guest's figures move
        await pilot.pause()
        assert len(table._drawn) <= window
        redrawn = table.sync_stats["updated"] - before["updated"]
        assert 0 < redrawn <= 3 * window  # CPU, memory and uptime of the rows on screen
        assert table.sync_stats["added"] == before["added"] == 5000
        # a row never painted still reads as its current cells
        far = str(guest(4321).vmid)
        assert far not in table._drawn
        assert table.get_row(far) == list(guest_cells(guest(4321, tick=1))[1])
        assert str(table.get_cell(far, "uptime")) == str(guest_cells(guest(4321, 1))[1][6])
        # the widths are those of the widest cells of a full draw
        widest = guest_column_widths(cluster(5000, tick=1))
        for key, column in table.columns.items():
            assert column.content_width == max(widest[str(key.value)], cell_width(column.label))


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1, max_size=12)  # fmt: skip


@st.composite
def any_guest(draw: st.DrawFn, vmid: int) -> Guest:
    # odd statuses and node names: a status is a Text cell, a node a str cell (Rich markup)
    status = draw(st.sampled_from(["running", "stopped", "paused", "[b]up[/b]"]) | names)
    node = draw(st.sampled_from(["pve1", "node-long-7", "[b]n[/b]", "ünï"]))
    return Guest(
        vmid=vmid, name=draw(names), node=node,
        kind=draw(st.sampled_from(["qemu", "lxc"])), status=status,
        template=draw(st.booleans()), cpu=draw(st.floats(0, 1)),
        mem=draw(st.integers(0, 2**42)), maxmem=draw(st.integers(0, 2**42)),
        uptime=draw(st.integers(0, 10**8)), pool=draw(st.none() | st.sampled_from(["a", "ops/x"])),
        tags=draw(st.lists(st.sampled_from(["web", "db", "k8s-node"]), max_size=3)),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(100, 10**9), min_size=1, max_size=12, unique=True).flatmap(
    lambda vmids: st.tuples(*(any_guest(vmid) for vmid in vmids))))  # fmt: skip
def test_column_widths_are_those_of_the_drawn_cells(guests: tuple[Guest, ...]) -> None:
    widths = guest_column_widths(guests)
    drawn = [guest_cells(g)[1] for g in guests]
    for index, key in enumerate(widths):
        assert widths[key] == max(cell_width(cells[index]) for cells in drawn), key


@settings(max_examples=500, deadline=None)
@given(st.integers(-10, 2**64) | st.sampled_from(formatting._BYTES_STARTS).flatmap(
    lambda start: st.integers(start - 3, start + 3)))  # fmt: skip
def test_short_bytes_width_is_the_width_of_short_bytes(value: int) -> None:
    assert formatting.short_bytes_width(value) == len(formatting.short_bytes(value))


@settings(max_examples=500, deadline=None)
@given(st.integers(-10, 10**10) | st.sampled_from([0, 10, 60, 600, 3600, 36000, 86400]).flatmap(
    lambda start: st.integers(start - 2, start + 2)))  # fmt: skip
def test_uptime_width_is_the_width_of_uptime(seconds: int) -> None:
    assert formatting.uptime_width(seconds) == len(formatting.uptime(seconds))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-10, 2**64) | st.sampled_from(formatting._BYTES_STARTS).flatmap(
    lambda start: st.integers(start - 3, start + 3)), max_size=20))  # fmt: skip
def test_widest_short_bytes_is_the_widest_of_the_values(values: list[int]) -> None:
    widest = max((len(formatting.short_bytes(v)) for v in values), default=0)
    assert formatting.widest_short_bytes(values) == widest
