"""A keyed table whose cells are drawn from the models when painted, not when data arrives.

``KeyedTable`` formats every cell that changed: on 5,000 guests that is the CPU, memory
and uptime of every running one, thousands of cells a refresh for the few dozen rows on
screen. Here a refresh hands over the row order and the column widths (both computed on
the models: sorting and filtering never need a cell) and cells are made only for rows
that are painted: ``row_cells`` draws a row the first time it is asked for and keeps it;
after a refresh the rows on screen are brought up to date (only their changed cells are
redrawn and repainted) and the rest forgotten, to be drawn again if scrolled to.

DataTable keeps a row's cells in ``_data[row_key]``, a mapping from column key to cell;
here that mapping is a view (``_LazyRow``) onto ``row_cells``, so DataTable's own
readers (``get_cell``, ``get_row``, rendering) see the current cells unchanged. The row
order is written into DataTable's ``_row_locations`` at once (its ``sort`` would read
every cell). These are DataTable's private attributes (Textual 8.2), like the render
caches ``KeyedTable`` already manages; ``tests/test_lazy_table.py`` checks the painted
table against one built from scratch through refreshes, sorting, filtering and scrolling.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets._data_table import _EMPTY_TEXT, RowRenderables, default_cell_formatter
from textual.widgets.data_table import Row, RowKey

from tui.widgets.keyed_table import Cell, KeyedTable

#: a row as drawn: what its cells were made from, and the cells
Made = tuple[Any, tuple[Cell, ...]]


class _LazyRow(Mapping[Any, Cell]):
    """One row's cells as DataTable reads them (column key -> cell), drawn on demand."""

    __slots__ = ("_key", "_table")

    def __init__(self, table: LazyTable, key: str) -> None:
        self._table = table
        self._key = key

    def __getitem__(self, column: Any) -> Cell:
        return self._table.row_cells(self._key)[self._table._column_index[column]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._table._column_keys)

    def __len__(self) -> int:
        return len(self._table._column_keys)


class LazyTable(KeyedTable):
    """Subclasses implement ``make_row``; a refresh calls ``show_rows``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: the rows drawn since the last refresh (or still on screen at it), by key
        self._drawn: dict[str, Made] = {}
        #: row keys in display order, and DataTable's key object of each
        self._order: list[str] = []
        self._row_keys: dict[str, RowKey] = {}
        #: per drawn row, its cells and what DataTable renders of them (see below)
        self._formatted: dict[str, tuple[tuple[Cell, ...], RowRenderables]] = {}

    def make_row(self, key: str, before: Made | None) -> Made:
        """Draw row ``key`` from the current models. ``before``: how it was drawn last;
        return that same object when nothing it was made from changed, and reuse the
        cell objects that did not change (they are compared by identity)."""
        raise NotImplementedError

    def row_cells(self, key: str) -> tuple[Cell, ...]:
        made = self._drawn.get(key)
        if made is None:
            made = self._drawn[key] = self.make_row(key, None)
        return made[1]

    def _compute_row_renderables(self, row_index: int) -> RowRenderables:
        """DataTable's, but a cell that is the same object as when the row was last
        rendered keeps its renderable: a repainted row parses the markup of the cells that
        changed, not of all ten."""
        row_key = self._row_locations.get_key(row_index) if row_index >= 0 else None
        if row_key is None:
            return super()._compute_row_renderables(row_index)
        cells = self.row_cells(row_key.value)
        before = self._formatted.get(row_key.value)
        if before is not None and before[0] is cells:
            return before[1]
        old_cells, old = before if before is not None else ((), RowRenderables(None, []))
        renderables = [
            old.cells[index]
            if index < len(old_cells) and cell is old_cells[index]
            else _EMPTY_TEXT  # as DataTable formats a cell of a one-line row
            if cell is None
            else default_cell_formatter(cell, wrap=False, height=1) or _EMPTY_TEXT
            for index, cell in enumerate(cells)
        ]
        made = RowRenderables(None, renderables)
        self._formatted[row_key.value] = (cells, made)
        return made

    def show_rows(self, order: Sequence[str], widths: Mapping[str, int], keep: str | None) -> None:
        """Show the rows ``order`` names, in that order, with columns ``widths`` wide (the
        widest cell of each; labels are counted here). ``keep``: the row key the cursor
        should stay on, when still shown."""
        structure = self._update_count
        order = list(order)
        with self.prevent(DataTable.RowHighlighted):
            if order != self._order:
                self._reorder(order)
            changed = self._redraw_visible()
            self._fit_to({key: widths.get(key, 0) for key, _ in self.COLUMNS})
            self.after_sync()
            if self._update_count != structure:
                self.refresh()  # every cache entry is stale: repaint it all
            else:
                self._repaint_rows(changed, keep_rows=self._drawn.keys())
            self.size_now()
            self.put_cursor_on(keep)

    def _reorder(self, order: list[str]) -> None:
        """Rows added, removed or moved: DataTable's row data and positions, written once."""
        shown = set(order)
        for key in self._order:
            if key not in shown:
                row_key = self._row_keys.pop(key)
                del self._data[row_key]
                del self.rows[row_key]
                self._drawn.pop(key, None)
                self.sync_stats["removed"] += 1
        for key in order:
            if key not in self._row_keys:
                row_key = self._row_keys[key] = RowKey(key)
                self._data[row_key] = _LazyRow(self, key)  # type: ignore[assignment]
                self.rows[row_key] = Row(row_key, 1)
                self.sync_stats["added"] += 1
        keys = self._row_keys
        self._row_locations = TwoWayDict({keys[key]: index for index, key in enumerate(order)})
        self._order = order
        self._require_update_dimensions = True  # the virtual height (``size_now``)
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate  # clamped to the rows left
        self.check_idle()

    def _redraw_visible(self) -> dict[str, list[str]]:
        """Bring the drawn rows on screen up to date and forget the others; returns the
        columns that changed, by row key."""
        first = int(self.scroll_y)
        on_screen = set(self._order[first : first + self.size.height])
        changed: dict[str, list[str]] = {}
        drawn: dict[str, Made] = {}
        for key, before in self._drawn.items():
            if key not in on_screen:
                continue
            made = drawn[key] = self.make_row(key, before)
            if made is not before:
                columns = [
                    column.value
                    for column, old, new in zip(self._column_keys, before[1], made[1], strict=True)
                    if old is not new and old != new  # new inputs may draw the same
                ]
                self.sync_stats["updated"] += len(columns)
                if columns:
                    changed[key] = columns
        self._drawn = drawn
        self._formatted = {key: made for key, made in self._formatted.items() if key in drawn}
        return changed

    def sync_rows(self, rows: Mapping[str, Sequence[Cell]], keep: str | None = None) -> None:
        raise TypeError("a LazyTable is refreshed with show_rows")
