"""Every guest's live metrics and /cluster/resources entry, reused while nothing changed.

At 5,000 guests, computing each guest's metrics and building and encoding its resource
dict was most of a ``GET /cluster/resources``. Here each entry is rendered as JSON text
from a ``%`` template made once per guest (only the metrics are filled in per request,
from the guest's ``GuestCurve``, also made once),
and the rows of one metric second (``ClusterState.metric_time``) are kept for the
requests that follow within it: a dashboard, several clients or an agent asking again.

A row is reused only while its guest's ``edit_stamp`` is the one it was made from (any
assignment to a field of the guest changes it): a guest that starts, moves or is renamed
shows at once.

While a client is reading the sheet (a request in the last ``WATCHED_S`` seconds), the
simulator brings it up to date when each metric second begins (``refresh_if_watched``,
called by ``Simulator``), as each node's pvestatd updates the status that
``/cluster/resources`` reads: a request then finds the rows made instead of computing
thousands of guests' metrics itself (~70 ms at 5,000 guests).
"""

from __future__ import annotations

import time
import weakref
from json.encoder import encode_basestring
from typing import NamedTuple

from simulator.metrics import STOPPED, GuestCurve, GuestMetrics, guest_curve, metrics_at
from simulator.model import Guest
from simulator.state import ClusterState


class SheetRow(NamedTuple):
    """One guest's metrics and resource entry, and the guest's ``edit_stamp`` then (its
    template and metric curve are the guest's as long as the stamp is). All plain data,
    so the garbage collector stops tracking the 5,000 rows a request may make."""

    edit_stamp: int
    template: str
    curve: GuestCurve | None
    metrics: GuestMetrics
    text: str


_new_row = tuple.__new__  # SheetRow(...) without NamedTuple's Python-level __new__


def guest_template(guest: Guest) -> str:
    """The guest's /cluster/resources entry as compact JSON with ``%`` slots
    for the ``GuestMetrics`` fields, in their order. Same keys, order and bytes as
    ``json.dumps(views.guest_resource(...), separators=(",", ":"), ensure_ascii=False)``
    once filled in
    (tests/test_simulator_speed.py holds the two together)."""

    def text(value: str) -> str:
        return encode_basestring(value).replace("%", "%%")

    out = (
        f'{{"id":{text(guest.resource_id)},"type":{text(guest.kind)},"vmid":{guest.vmid},'
        f'"name":{text(guest.name)},"node":{text(guest.node)},"status":{text(guest.status)},'
        f'"cpu":%r,"maxcpu":{guest.cores},"mem":%d,"maxmem":{guest.maxmem},"disk":%d,'
        f'"maxdisk":{guest.maxdisk},"diskread":%d,"diskwrite":%d,"netin":%d,"netout":%d,'
        f'"uptime":%d,"template":{int(guest.template)}'
    )
    if guest.tags:
        out += f',"tags":{text(guest.tags)}'
    if guest.pool is not None:
        out += f',"pool":{text(guest.pool)}'
    if guest.lock is not None:
        out += f',"lock":{text(guest.lock)}'
    return out + "}"


class GuestSheet:
    """The rows of one cluster and per-node sums over them, kept from one request to the
    next; ``refresh`` brings them up to date."""

    def __init__(self) -> None:
        self._metric_time: float | None = None
        #: when a request last read the sheet (``time.monotonic()``)
        self.asked_at = float("-inf")
        self.rows: dict[int, SheetRow] = {}
        self._usage: tuple[dict[str, float], dict[str, int]] | None = None
        self._allocations: dict[str, int] | None = None

    def refresh(self, state: ClusterState) -> None:
        metric_time, now = state.metric_time(), state.now()
        same_second = metric_time == self._metric_time
        kept = self.rows
        edited = len(kept) != len(state.guests)  # a guest changed, came or went
        moved = not same_second  # running guests' numbers changed
        rows: dict[int, SheetRow] = {}
        for vmid, guest in state.guests.items():
            row = kept.get(vmid)
            if row is None or row.edit_stamp != guest.edit_stamp:
                curve, template = guest_curve(guest), guest_template(guest)
                m = STOPPED if curve is None else metrics_at(curve, metric_time, now)
                row = SheetRow(guest.edit_stamp, template, curve, m, template % m)
                edited = True
            elif guest.status == "running" and (moved or guest.boot_time > metric_time):
                # Unchanged but live: new numbers in the template it has. (A guest booted
                # after the metric time counts uptime from ``now``; a stopped one is all 0.)
                curve, template = row.curve, row.template
                assert curve is not None  # made while running: the stamp is the same
                m = metrics_at(curve, metric_time, now)
                row = _new_row(SheetRow, (row.edit_stamp, template, curve, m, template % m))
                moved = True
            rows[vmid] = row
        self._metric_time, self.rows = metric_time, rows
        if edited or moved:
            self._usage = None
        if edited:
            self._allocations = None

    def node_usage(self, state: ClusterState) -> tuple[dict[str, float], dict[str, int]]:
        """Per node: the sum of its running guests' cpu x cores, and of their memory."""
        if self._usage is None:
            load = dict.fromkeys(state.nodes, 0.0)
            mem = dict.fromkeys(state.nodes, 0)
            for vmid, guest in state.guests.items():
                if guest.running:
                    m = self.rows[vmid].metrics
                    load[guest.node] += m.cpu * guest.cores
                    mem[guest.node] += m.mem
            self._usage = load, mem
        return self._usage

    def disk_allocations(self, state: ClusterState) -> dict[str, int]:
        """``state.disk_allocations()``, kept while no guest changed, came or went."""
        if self._allocations is None:
            self._allocations = state.disk_allocations()
        return self._allocations


_SHEETS: weakref.WeakKeyDictionary[ClusterState, GuestSheet] = weakref.WeakKeyDictionary()

#: real seconds after the last request during which the sheet is kept up to date unasked
WATCHED_S = 10.0


def guest_sheet(state: ClusterState) -> GuestSheet:
    """The cluster's ``GuestSheet``, up to date (its rows in ``state.guests`` order), for
    a request."""
    sheet = _SHEETS.get(state)
    if sheet is None:
        sheet = _SHEETS[state] = GuestSheet()
    sheet.refresh(state)
    sheet.asked_at = time.monotonic()
    return sheet


def refresh_if_watched(state: ClusterState) -> bool:
    """Bring the cluster's sheet up to date if a request read it in the last
    ``WATCHED_S`` seconds; whether it did."""
    sheet = _SHEETS.get(state)
    if sheet is None or time.monotonic() - sheet.asked_at > WATCHED_S:
        return False
    sheet.refresh(state)
    return True
