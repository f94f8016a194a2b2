"""A DataTable that is kept in step with the cluster row by row, never rebuilt.

``sync_rows`` adds rows that appeared (``add_row(key=...)``), updates only the cells
that changed (written into the table's data, then one refresh) and removes rows that
vanished (``remove_row``); the cursor stays on the same row key. A 5,000-guest table
refreshes without flicker.

Column widths are kept here, not by DataTable: it measures cells with a Rich console
(~0.1 ms each: seconds for the 50,000 cells of 5,000 guests) and, when a cell shrinks,
re-measures its whole column (quadratic under a refresh that changes thousands of cells).
Here each changed cell's width is counted per column, and a column's width is the largest
count still in use.

Painting is kept to what changed. DataTable keys its render caches (cells, row lines,
screen lines) on one update counter that every ``update_cell`` bumps, so a refresh that
changes one CPU figure re-renders every visible cell: about 4 ms a row, most of a
refresh's paint. Here an in-place update leaves that counter alone, drops only the cache
entries of the cells and rows that changed and repaints only those rows. Structural
changes (rows added or removed, a new order, a column width) still bump the counter, as
DataTable does. The cache attributes are DataTable's private ones (Textual 8.2);
``test_keyed_table`` checks the painted table against one built from scratch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Hashable, Iterable, Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.color import Color
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

Cell = str | Text
#: the key marking ``_style_memo`` as current in DataTable's style cache
_MEMO_MARK = ("labdeck:style-memo",)
#: rows removed in one sync above which the table is rebuilt instead (see ``sync_rows``)
REBUILD_ABOVE = 32
#: placed styles kept (see ``_render_cell``) before starting afresh: a few screens' worth
PLACED_STYLES = 20_000
#: cells kept drawn without their position (see ``KeyedTable._render_cell``): a few
#: screens of rows, in the cursor's and the stripes' styles
DRAWN_CELLS = 4096
#: in place of a drawing whose segments carry meta of their own: drawn DataTable's way
_OWN_META: list[list[Segment]] = []


def cell_width(cell: Cell) -> int:
    """Terminal cells ``cell`` takes in one line (str cells may hold Rich markup)."""
    text = cell.plain if isinstance(cell, Text) else cell
    if isinstance(cell, str) and "[" in cell:
        text = Text.from_markup(cell).plain
    return len(text) if text.isascii() else cell_len(text)


class KeyedTable(DataTable[Cell]):
    """Rows keyed by a stable id; columns declared once as ``(key, label)``."""

    COLUMNS: Sequence[tuple[str, str]] = ()
    #: the column (and direction) whose header shows the sort arrow at first
    initial_sort: tuple[str, bool] = ("", False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._cells: dict[str, tuple[Cell, ...]] = {}
        #: per column: how many cells have each width
        self._widths: dict[str, Counter[int]] = {}
        #: counts of in-place changes, shown in debug output and checked by tests
        self.sync_stats = {"added": 0, "updated": 0, "removed": 0}
        self._memo: dict[Any, Any] = {}
        #: DataTable's keys of the columns, made once (a refresh writes thousands of cells)
        self._column_keys = tuple(ColumnKey(key) for key, _ in self.COLUMNS)
        self._column_index = {key: index for index, key in enumerate(self._column_keys)}
        #: (a cell's content, width, styles) -> its lines, drawn without a position
        self._drawn_cells: LRUCache[tuple[Any, ...], list[list[Segment]]]
        self._drawn_cells = LRUCache(DRAWN_CELLS)
        #: (a drawn segment's style, row, column) -> that style placed there: positions
        #: on screen repeat from one sort or filter to the next, and Rich's own cache of
        #: style sums (1,024) is too small for a screenful of cells
        self._placed_styles: dict[tuple[Style | None, int, int], Style] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            # a trailing space is kept for the sort arrow, so labels never change width
            self.add_column(Text(f"{label} "), key=key)
        self.set_sort_arrow(*self.initial_sort)

    @property
    def column_keys(self) -> list[str]:
        return [key for key, _ in self.COLUMNS]

    @property
    def current_key(self) -> str | None:
        """The row key under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    def sync_rows(self, rows: Mapping[str, Sequence[Cell]], keep: str | None = None) -> None:
        """Make the table show exactly ``rows`` (in their order for new ones).

        ``keep``: the row key the cursor should stay on, when still present. Cursor moves
        made here post no ``RowHighlighted``: only a person moving the cursor does.
        """
        changed: dict[str, list[str]] = {}  # row key -> keys of the columns that changed
        gone = [key for key in self._cells if key not in rows]
        known: set[str] = set()
        structure = self._update_count  # DataTable bumps it on add, remove, clear and sort
        with self.prevent(DataTable.RowHighlighted):
            if len(gone) > REBUILD_ABOVE:
                # DataTable.remove_row re-indexes every row: removing thousands one by one
                # (a filter typed over 5,000 guests) is quadratic; adding the rest back is not.
                known = set(self._cells)
                self.clear()
                self._cells.clear()
                self._widths.clear()
                self.sync_stats["removed"] += len(gone)
            for key in gone if not known else ():
                self.remove_row(key)
                self._count_widths(self._cells.pop(key), -1)
                self.sync_stats["removed"] += 1
            for key, cells in rows.items():
                new = tuple(cells)
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*new, key=key)
                    self._count_widths(new, +1)
                    self.sync_stats["added"] += int(key not in known)
                elif columns := self._update_row(key, old, new):
                    changed[key] = columns
                self._cells[key] = new
            self._fit_columns()
            self.after_sync()
            if self._update_count != structure:
                self.refresh()  # every cache entry is stale: repaint it all
            elif changed:
                self._repaint_rows(changed)
            self.size_now()
            self.put_cursor_on(keep)

    def _update_row(self, key: str, old: tuple[Cell, ...], new: tuple[Cell, ...]) -> list[str]:
        """Write the changed cells of one row into DataTable's data; returns their columns.

        A cell object handed in again (see ``guest_table.guest_cells``) is unchanged
        without comparing it.
        """
        if old is new:
            return []
        row = self._data[RowKey(key)]
        changed = []
        for column_key, before, after in zip(self._column_keys, old, new, strict=True):
            if before is not after and before != after:
                row[column_key] = after
                widths = self._widths[column_key.value]
                widths[cell_width(before)] -= 1
                widths[cell_width(after)] += 1
                changed.append(column_key.value)
        self.sync_stats["updated"] += len(changed)
        return changed

    def _repaint_rows(
        self, changed: Mapping[str, Sequence[str]], keep_rows: Container[str] | None = None
    ) -> None:
        """Drop the cached renders of the changed cells and rows; repaint those rows only.

        ``keep_rows``: when given, the cached renders of every other row go too (their
        data may have changed unseen: see ``LazyTable``).

        Rows here are one line high, so a row's index is its line below the header (and
        DataTable's ``refresh_row``, which adds up the heights of the rows above, is not
        needed). The work is bounded by the caches (what was painted) and the window, not
        by the rows that changed: thousands may, a few dozen are on screen.
        """
        top = self.header_height if self.show_header else 0
        key_at = self._row_locations.get_key

        def stale(row: Any) -> bool:  # a row's cached renders are stale as a whole
            value = getattr(row, "value", None)
            if value is None:  # the header
                return False
            return value in changed or (keep_rows is not None and value not in keep_rows)

        def changed_at(index: int) -> bool:
            return stale(key_at(index))

        def cell_changed(key: Any) -> bool:  # (row key, column key, ...); no column: a label
            row = key[0].value
            if keep_rows is not None and row is not None and row not in keep_rows:
                return True
            return getattr(key[1], "value", None) in changed.get(row, ())

        _discard(self._cell_render_cache, cell_changed)
        _discard(self._row_render_cache, lambda key: stale(key[0]))
        _discard(self._row_renderable_cache, lambda key: changed_at(key[1]))
        _discard(self._line_cache, lambda key: changed_at(key[0] - top))
        width = max(self.size.width, self.virtual_size.width)
        first = int(self.scroll_y)
        for index in range(first, min(first + self.size.height, self.row_count)):
            row = key_at(index)
            if row is not None and row.value in changed:
                self.refresh(Region(0, top + index - first, width, 1))

    # DataTable works out the zebra stripe's style, the table's own style and the background
    # colours for every row it draws, each by walking the styles of all its ancestors (about
    # a third of drawing a row). They change only with the styles, so they are kept here
    # until Textual clears the widget's own style cache (on a style change or any repaint).

    def _style_memo(self) -> dict[Any, Any]:
        if _MEMO_MARK not in self._rich_style_cache:
            self._rich_style_cache[_MEMO_MARK] = (Style(), Style())
            self._memo.clear()
        return self._memo

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        if row_index < max(self.fixed_rows, 0) or not self.zebra_stripes:
            return super()._get_row_style(row_index, base_style)
        memo = self._style_memo()
        name = "datatable--odd-row" if row_index % 2 else "datatable--even-row"
        if name not in memo:
            memo[name] = self.get_component_styles(name).rich_style
        return memo[name]  # type: ignore[no-any-return]

    @property
    def rich_style(self) -> Style:
        """The table's own style, which ``render_line`` asks for on every line drawn."""
        memo = self._style_memo()
        if "rich_style" not in memo:
            memo["rich_style"] = super().rich_style
        return memo["rich_style"]  # type: ignore[no-any-return]

    @property
    def background_colors(self) -> tuple[Color, Color]:
        if self.cursor_type != "row":  # then DataTable uses them: always walk
            return super().background_colors
        memo = self._style_memo()
        if "background_colors" not in memo:
            memo["background_colors"] = super().background_colors
        return memo["background_colors"]  # type: ignore[no-any-return]

    # DataTable lays out a row's line (~0.25 ms besides its cells) working out, for each of
    # its cells, the header's style (walking the styles of the table's ancestors, ~0.1 ms
    # a row, used only for row labels and fixed columns), the cursor and hover of the
    # cell, and its column's width. Our tables have no row labels or fixed columns and a
    # row cursor, for which all of that is one answer per row: worked out once here, with
    # the same cells in the same order and the same filler after them. Anything else is
    # laid out DataTable's way; ``tests/test_keyed_table.py`` compares the two.

    def _render_line_in_row(
        self, row_key: RowKey, line_no: int, base_style: Style, cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:  # fmt: skip
        if (
            self.cursor_type != "row"
            or self.fixed_columns
            or (self._labelled_row_exists and self.show_row_labels)
        ):
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        show_cursor, show_hover = self.show_cursor, self._show_hover_cursor
        cache_key = (row_key, line_no, base_style, cursor_location, hover_location, "row",
                     show_cursor, show_hover, self._update_count,
                     self._pseudo_class_state)  # fmt: skip
        cached = self._row_render_cache.get(cache_key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        located = self._row_locations.get(row_key)
        row_index = -1 if located is None else located  # the header: -1
        row_style = self._get_row_style(row_index, base_style)
        cursor = cursor_location.row == row_index  # DataTable's _should_highlight, for rows
        hover = hover_location.row == row_index
        cells, row_width = self._row_cells(row_key, row_index, line_no, row_style, cursor, hover)
        table_width = self._row_label_column_width + row_width
        filler = self._filler_style(row_style, row_index, hover, cursor, show_cursor, show_hover)
        cells.append([Segment(" " * max(0, self.size.width - table_width), filler)])
        row_pair: tuple[list[list[Segment]], list[list[Segment]]] = ([], cells)
        self._row_render_cache[cache_key] = row_pair
        return row_pair

    def _filler_style(
        self, row_style: Style, row_index: int, hover: bool, cursor: bool, show_cursor: bool,
        show_hover: bool,
    ) -> Style:  # fmt: skip
        """The style of the blank that extends a row to the table's width (row cursor)."""
        memo = self._style_memo()
        key = ("filler", row_style, row_index, hover, cursor, show_cursor, show_hover)
        style = memo.get(key)
        if style is None:
            if len(memo) > PLACED_STYLES:
                memo.clear()
            extend, _ = self._get_styles_to_render_cell(
                row_index == -1, False, False, hover, cursor, show_cursor, show_hover, False,
                False,
            )  # fmt: skip
            meta = Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            style = memo[key] = row_style + extend + meta
        return style  # type: ignore[no-any-return]

    # DataTable draws a cell (Rich: padding, style, crop; ~0.4 ms) for each place it is
    # painted at: its cache is keyed on the row's position, which every sort, filter or
    # scroll moves, and the position is in the drawing (each segment's style carries it
    # as meta, for mouse clicks). A keystroke in the filter drew every visible cell again:
    # 100-200 ms. Here a cell is drawn once per content, width and styles (the same "-",
    # node or status in many rows is drawn once), and placed by adding its position to its
    # segments' styles: what DataTable's meta-bearing base style makes of them. None of
    # these cells carries meta of its own; one that did would be drawn DataTable's way.
    # ``tests/test_keyed_table.py`` compares the two.

    def _render_cell(
        self, row_index: int, column_index: int, base_style: Style, width: int,
        cursor: bool = False, hover: bool = False,
    ) -> list[list[Segment]]:  # fmt: skip
        if row_index < max(self.fixed_rows, 0) or column_index < max(self.fixed_columns, 0):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        cache_key = (row_key, self._column_locations.get_key(column_index), base_style,
                     cursor, hover, self._show_hover_cursor, self._update_count,
                     self._pseudo_class_state)  # fmt: skip
        lines = self._cell_render_cache.get(cache_key)
        if lines is not None:
            return lines  # type: ignore[no-any-return]
        if row_key is None or self.rows[row_key].height != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        renderable = self._get_row_renderables(row_index).cells[column_index]
        pre, post = self._cell_styles(base_style, cursor, hover)
        lines = self._placed_cell(row_index, column_index, renderable, width, pre, post)
        if lines is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cell_render_cache[cache_key] = lines
        return lines

    def _cell_styles(self, base_style: Style, cursor: bool, hover: bool) -> tuple[Style, Style]:
        """The styles a body cell is drawn in, under (``pre``) and over (``post``) its own:
        the same for every cell of a row."""
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css",
        )  # fmt: skip
        return base_style + component, post

    def _placed_cell(
        self, row_index: int, column_index: int, renderable: Any, width: int, pre: Style,
        post: Style,
    ) -> list[list[Segment]] | None:  # fmt: skip
        """A one-line body cell drawn (once per content, width and styles) and placed at
        (``row_index``, ``column_index``); None for a cell to draw DataTable's way."""
        if not isinstance(renderable, Text):
            return None
        drawn_key = (_content_key(renderable), width, pre, post, self.cell_padding)
        drawn = self._drawn_cells.get(drawn_key)
        if drawn is None:
            options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
            drawn = _plain_cell(self.app.console, options, renderable, pre, post,
                                self.cell_padding)  # fmt: skip
            if drawn is None:
                cell = Styled(Padding(renderable, (0, self.cell_padding)), pre_style=pre,
                              post_style=post)  # fmt: skip
                drawn = self.app.console.render_lines(cell, options)
                if any(style is not None and style._meta for line in drawn for _, style, _ in line):
                    drawn = _OWN_META  # decided once, not at each placing
            self._drawn_cells.set(drawn_key, drawn)
        if drawn is _OWN_META:
            return None
        placed = self._placed_styles
        if len(placed) > PLACED_STYLES:
            placed.clear()
        lines = []
        for line in drawn:
            out = []
            for text, style, control in line:
                if control:
                    out.append(Segment(text, None, control))
                    continue
                key = (style, row_index, column_index)
                at = placed.get(key)
                if at is None:
                    meta = Style.from_meta({"row": row_index, "column": column_index})
                    at = placed[key] = style + meta if style else meta
                out.append(Segment(text, at, control))
            lines.append(out)
        return lines

    def _row_cells(
        self, row_key: RowKey, row_index: int, line_no: int, row_style: Style, cursor: bool,
        hover: bool,
    ) -> tuple[list[list[Segment]], int]:  # fmt: skip
        """Line ``line_no`` of each cell of a row (``_render_cell``'s, from the same cache),
        and the row's width. What is the same for every cell of the row (its key, styles,
        renderables, the table's settings) is looked up once, not per cell: a screenful of
        rows drawn anew (a filter, a sort, a page down) is ~500 cells."""
        padding = self.cell_padding
        columns = self.ordered_columns
        widths = [2 * padding + (column.content_width if column.auto_width else column.width)
                  for column in columns]  # fmt: skip
        if row_index < max(self.fixed_rows, 0) or self.rows[row_key].height != 1:
            render_cell = self._render_cell
            cells = [render_cell(row_index, index, row_style, width, cursor, hover)[line_no]
                     for index, width in enumerate(widths)]  # fmt: skip
            return cells, sum(widths)
        cache = self._cell_render_cache
        same = (row_style, cursor, hover, self._show_hover_cursor, self._update_count,
                self._pseudo_class_state)  # fmt: skip
        renderables: list[Any] | None = None
        pre = post = row_style
        cells = []
        for column_index, (column, width) in enumerate(zip(columns, widths, strict=True)):
            cache_key = (row_key, column.key, *same)
            lines = cache.get(cache_key)
            if lines is None:
                if renderables is None:
                    renderables = self._get_row_renderables(row_index).cells
                    pre, post = self._cell_styles(row_style, cursor, hover)
                lines = self._placed_cell(
                    row_index, column_index, renderables[column_index], width, pre, post
                )
                if lines is None:  # DataTable's way (it caches the cell under the same key)
                    lines = super()._render_cell(
                        row_index, column_index, row_style, width, cursor, hover
                    )
                else:
                    cache[cache_key] = lines
            cells.append(lines[line_no])
        return cells, sum(widths)

    def _count_widths(self, cells: Sequence[Cell], step: int) -> None:
        for column, cell in zip(self.column_keys, cells, strict=True):
            self._widths.setdefault(column, Counter())[cell_width(cell)] += step

    def _fit_columns(self) -> None:
        """Give each column the width of its widest cell still counted."""
        self._fit_to({key: max((w for w, count in widths.items() if count > 0), default=0)
                      for key, widths in self._widths.items()})  # fmt: skip

    def _fit_to(self, widths: Mapping[str, int]) -> None:
        """Give each column of ``widths`` that width (or its label's, if wider), if that
        changed."""
        changed = False
        for key, widest in widths.items():
            column = self.columns[self._column_keys[self._column_index[key]]]
            width = max(widest, cell_width(column.label))
            if column.content_width != width:
                column.content_width = width
                changed = True
        if changed:
            self._require_update_dimensions = True  # DataTable's flag: recompute size on idle
            self._update_count += 1  # every row's cells are laid out anew

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable's, minus measuring each cell of the new rows: ``sync_rows`` did that.

        Rows here are one line high and unlabelled, so what is left (the virtual size from
        the column widths) is all that is needed.
        """
        super()._update_dimensions(())

    def size_now(self) -> None:
        """Work out the virtual size now if rows or widths changed, not when the table is
        next idle (DataTable's way), and for a table whose height is set by the layout
        (not by its rows), whether it shows scroll bars. The frame that paints the change
        then lays it out too, instead of one or two more layout frames ~30-60 ms later (a
        filter keystroke painted three). Cheap here: no cell is measured
        (``_update_dimensions``)."""
        if not self._require_update_dimensions:
            return
        self._require_update_dimensions = False
        self._new_rows.clear()
        self._update_dimensions(())
        height = self.styles.height
        if height is not None and not height.is_auto and self._container_size:
            self._refresh_scrollbars()

    def after_sync(self) -> None:
        """Hook: reorder rows once they are in step (e.g. sort)."""

    def put_cursor_on(self, key: str | None) -> None:
        if key is not None and key in self.rows:
            with self.prevent(DataTable.RowHighlighted):
                self.move_cursor(row=self.get_row_index(key))

    def set_sort_arrow(self, column: str, reverse: bool) -> None:
        for key, label in self.COLUMNS:
            arrow = ("▼" if reverse else "▲") if key == column else " "
            self.columns[self.column_key_for(key)].label = Text(f"{label}{arrow}")
        self._update_count += 1  # the header's cached render is stale
        self.refresh()

    def column_key_for(self, key: str) -> Any:
        for column_key in self.columns:
            if column_key.value == key:
                return column_key
        raise KeyError(key)

    def sort_rows(self, key: Callable[[str], Any], reverse: bool = False) -> None:
        """Order rows by ``key(row_key)``; DataTable.sort only moves row positions.

        By convention the first column shows the row key itself (vmid, node name). Rows
        already in that order are left alone: DataTable's sort invalidates every render.
        """
        current = [self._row_locations.get_key(index) for index in range(self.row_count)]
        wanted = sorted(self._data, key=lambda row: key(str(row.value)), reverse=reverse)
        if current != wanted:
            self.sort(self.column_keys[0], key=lambda cell: key(str(cell)), reverse=reverse)


def _plain_cell(
    console: Console, options: ConsoleOptions, text: Text, pre: Style, post: Style, padding: int
) -> list[list[Segment]] | None:
    """What Rich draws for ``Styled(Padding(text, (0, padding)), pre, post)`` on one line,
    made directly (Rich's pipeline takes ~0.3 ms a cell), for the usual cell: one span-less
    run of printable ASCII that fits, placed by the default justification. None for any
    other (Rich draws it). ``test_keyed_table`` compares the two on every kind of cell.

    Rich's pieces, in order: the left padding and the fill after the text in the padding's
    null style, the text in its own style (none without one), the right padding; the
    ``Styled`` layer then adds ``pre`` under and ``post`` over each.
    """
    plain = text.plain
    inner = options.max_width - 2 * padding
    justify = text.justify or options.justify or "default"
    if text._spans or not plain or len(plain) > inner or justify != "default":
        return None
    if not (plain.isascii() and plain.isprintable()):  # one cell per character
        return None

    def styled(style: Style | None) -> Style | None:  # as Segment.apply_style(pre, post)
        under = pre + style if pre else style
        if post:
            return under + post if under else post
        return under

    edge = styled(Style.null())  # the padding's style
    line = [Segment(" " * padding, edge)] if padding else []
    line.append(Segment(plain, styled(console.get_style(text.style) if text.style else None)))
    if len(plain) < inner:
        line.append(Segment(" " * (inner - len(plain)), edge))
    if padding:
        line.append(Segment(" " * padding, edge))
    return [line]


def _content_key(text: Text) -> Hashable:
    """What drawing a cell's ``Text`` (DataTable makes one of each str cell) depends on:
    its text, styles and layout settings."""
    return (text.plain, tuple(text.spans), text.style, text.justify, text.overflow,
            text.no_wrap, text.end, text.tab_size)  # fmt: skip


def _discard(cache: Any, stale: Callable[[Any], bool]) -> None:
    """Drop the entries of one of DataTable's LRU caches whose key ``stale`` picks."""
    for key in [key for key in cache.keys() if stale(key)]:
        cache.discard(key)
