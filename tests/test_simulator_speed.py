"""The fast /cluster/resources (``simulator.guest_sheet``) answers exactly what the plain one
did: the same bytes as encoding the dict views of every object at the same simulated time,
for dynamic metrics, within one metric second and after changes. No timing here; speed is
measured in ``bench/`` (``sim_cluster_resources``).

The simulator's clock is replaced by one driven by the test (``_ManualClock``) so the test
can compute the expected answer for the very time the simulator answered at.
"""

from __future__ import annotations

import dataclasses
import json
import math
import ssl
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest

from simulator import SimulatorHandle, views
from simulator.auth import AUDITOR_PRIVILEGES, Principal
from simulator.clock import SimClock
from simulator.guest_sheet import refresh_if_watched
from simulator.metrics import GuestMetrics, guest_curve, guest_metrics, metrics_at, node_metrics
from simulator.model import Guest
from simulator.state import ClusterState
from tests.support.faults import eventually

StartSim = Callable[..., Any]


class _ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def _take_over_clock(handle: SimulatorHandle, start: float = 0.25) -> _ManualClock:
    """Swap the simulator's clock for one at ``start`` s past the base epoch that only
    ``_ManualClock.seconds`` moves."""
    manual = _ManualClock()  # at 0 while the new clock notes where it started

    def swap() -> None:
        state = handle.state
        state.clock = SimClock(state.clock.base_epoch, 1.0, monotonic=manual)
        manual.seconds = start

    handle.call(swap)
    return manual


def _client(handle: SimulatorHandle) -> httpx.Client:
    return httpx.Client(
        base_url=f"{handle.pve_url}/api2/json",
        verify=ssl.create_default_context(cafile=handle.ca_path),
        headers={"Authorization": handle.token.header},
        timeout=60,
    )


def _expected(state: ClusterState, kind: str | None = None) -> bytes:
    """The answer built the plain way, independently of the guest sheet: a dict per object
    from ``simulator.views``, metrics from ``simulator.metrics`` per guest, one
    ``json.dumps`` of the envelope (everything visible, as for the root token)."""
    metric_time, now = state.metric_time(), state.now()
    metrics = {vmid: guest_metrics(g, metric_time, now) for vmid, g in state.guests.items()}
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        out += [views.guest_resource(g, metrics[vmid]) for vmid, g in state.guests.items()]
    if kind in (None, "node"):
        for name, node in state.nodes.items():
            running = [g for g in state.guests.values() if g.node == name and g.running]
            load = sum(metrics[g.vmid].cpu * g.cores for g in running)
            mem = sum(metrics[g.vmid].mem for g in running)
            out.append(views.node_resource(node, node_metrics(node, load, mem, metric_time)))
    if kind in (None, "storage"):
        used = state.storage_used(state.disk_allocations())
        out += [views.storage_resource(s, node, used(s, node))
                for s in state.storages for node in s.nodes]  # fmt: skip
    if kind in (None, "sdn"):
        out += [views.sdn_resource(node) for node in state.nodes]
    if kind is None:
        out += [views.pool_resource(pool) for pool in state.pools.values()]
    return json.dumps({"data": out}, separators=(",", ":"), ensure_ascii=False).encode()


def _resources(client: httpx.Client, kind: str | None = None) -> bytes:
    response = client.get("/cluster/resources", params={"type": kind} if kind else None)
    response.raise_for_status()
    return response.content


def test_resources_at_five_thousand_guests_are_the_bytes_of_the_plain_encoding(
    make_sim: StartSim,
) -> None:
    handle = make_sim(nodes=32, guests=5000, pools=200, dynamic=True)
    _take_over_clock(handle)
    bodies: dict[str | None, bytes] = {}
    with _client(handle) as client:
        for kind in (None, "vm", "node", "storage", "sdn"):
            bodies[kind] = _resources(client, kind)
            assert bodies[kind] == handle.call(lambda kind=kind: _expected(handle.state, kind))
    listed = json.loads(bodies[None])["data"]
    assert len([r for r in listed if r["type"] in ("qemu", "lxc")]) == 5000
    assert len([r for r in listed if r["type"] == "pool"]) == 200


def test_metrics_move_each_simulated_second_and_stay_within_one(make_sim: StartSim) -> None:
    handle = make_sim(guests=60, dynamic=True)
    clock = _take_over_clock(handle, start=0.1)
    with _client(handle) as client:
        first = _resources(client, "vm")
        clock.seconds = 0.9  # the same simulated second: the same numbers
        assert _resources(client, "vm") == first
        assert handle.call(lambda: _expected(handle.state, "vm")) == first
        clock.seconds = 1.2  # the next one: running guests moved on
        second = _resources(client, "vm")
        assert second == handle.call(lambda: _expected(handle.state, "vm"))
    before = {r["vmid"]: r for r in json.loads(first)["data"]}
    after = {r["vmid"]: r for r in json.loads(second)["data"]}
    running = [vmid for vmid, r in before.items() if r["status"] == "running"]
    assert running
    assert all(after[v]["uptime"] == before[v]["uptime"] + 1 for v in running)
    assert any(after[v]["cpu"] != before[v]["cpu"] for v in running)
    stopped = [vmid for vmid, r in before.items() if r["status"] == "stopped"]
    assert all(after[v] == before[v] for v in stopped)


def test_metric_time_is_whole_seconds_and_agrees_across_endpoints(make_sim: StartSim) -> None:
    handle = make_sim(guests=20, dynamic=True)
    clock = _take_over_clock(handle, start=3.75)
    base = handle.call(lambda: handle.state.clock.base_epoch)
    assert handle.call(handle.state.metric_time) == base + 3.0
    clock.seconds = 4.0
    assert handle.call(handle.state.metric_time) == base + 4.0
    with _client(handle) as client:
        listed = json.loads(_resources(client, "vm"))["data"]
        vm = next(r for r in listed if r["status"] == "running" and r["type"] == "qemu")
        current = client.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/status/current").json()
    for key in ("cpu", "mem", "uptime", "netin", "netout", "diskread", "diskwrite"):
        assert current["data"][key] == vm[key], key


def test_a_change_shows_at_once_within_the_same_second(make_sim: StartSim) -> None:
    handle = make_sim(guests=40, pools=3, dynamic=True)
    _take_over_clock(handle)
    pools = handle.call(lambda: list(handle.state.pools))
    with _client(handle) as client:
        before = json.loads(_resources(client, "vm"))["data"]
        vmid = next(r["vmid"] for r in before if "pool" not in r)
        response = client.put("/pools", data={"poolid": pools[0], "vms": str(vmid)})
        response.raise_for_status()
        body = _resources(client)
    assert body == handle.call(lambda: _expected(handle.state))
    entry = next(r for r in json.loads(body)["data"] if r.get("vmid") == vmid)
    assert entry["pool"] == pools[0]


def test_node_and_storage_figures_follow_a_guest_moved_within_the_second(
    make_sim: StartSim,
) -> None:
    handle = make_sim(nodes=3, guests=30, dynamic=True)
    _take_over_clock(handle)
    with _client(handle) as client:
        first = _resources(client)

        def move_and_grow() -> None:  # what a migration and a disk resize leave behind
            state = handle.state
            guest = next(g for g in state.guests.values() if g.running)
            guest.node = next(name for name in state.nodes if name != guest.node)
            guest.disk_gib += 500

        handle.call(move_and_grow)
        second = _resources(client)
    assert second != first
    assert second == handle.call(lambda: _expected(handle.state))


def test_guests_started_and_stopped_by_tasks_show_their_new_state(make_sim: StartSim) -> None:
    handle = make_sim(guests=30, dynamic=True)
    clock = _take_over_clock(handle)
    with _client(handle) as client:
        listed = json.loads(_resources(client, "vm"))["data"]
        vm = next(r for r in listed if r["status"] == "running" and r["type"] == "qemu")
        path = f"/nodes/{vm['node']}/qemu/{vm['vmid']}/status"
        client.post(f"{path}/stop").raise_for_status()
        clock.seconds += 5  # the stop task (1 simulated second) is over
        body = _resources(client)
        assert body == handle.call(lambda: _expected(handle.state))
        stopped = next(r for r in json.loads(body)["data"] if r.get("vmid") == vm["vmid"])
        assert (stopped["status"], stopped["uptime"], stopped["cpu"]) == ("stopped", 0, 0.0)
        client.post(f"{path}/start").raise_for_status()
        clock.seconds += 2.5  # started half a second into this simulated second
        body = _resources(client)
        assert body == handle.call(lambda: _expected(handle.state))
        started = next(r for r in json.loads(body)["data"] if r.get("vmid") == vm["vmid"])
        assert started["status"] == "running" and started["uptime"] == 0


def test_same_seed_and_time_give_the_same_bytes(make_sim: StartSim) -> None:
    one, two = make_sim(guests=80, dynamic=True), make_sim(guests=80, dynamic=True)
    for handle in (one, two):
        _take_over_clock(handle, start=42.5)
    with _client(one) as first, _client(two) as second:
        assert _resources(first) == _resources(second)


def test_resources_stay_valid_against_the_pve_schema(
    make_sim: StartSim, pve_schema: ModuleType
) -> None:
    handle = make_sim(guests=150, pools=6, dynamic=True)
    _take_over_clock(handle)
    with _client(handle) as client:
        for kind in (None, "vm"):
            data = json.loads(_resources(client, kind))["data"]
            errors = pve_schema.validate_returns("GET", "/cluster/resources", data, strict=True)
            assert errors == [], errors[:5]


def test_names_with_quotes_percent_signs_and_non_ascii_are_encoded_like_json(
    make_sim: StartSim,
) -> None:
    handle = make_sim(guests=10, dynamic=True)
    _take_over_clock(handle)

    def rename() -> None:
        guests = list(handle.state.guests.values())
        guests[0].name = 'we"ird\\name %d %s'
        guests[1].name = "ünïcode-✓"
        guests[2].tags = "a%b;c"

    handle.call(rename)
    with _client(handle) as client:
        body = _resources(client)
    assert body == handle.call(lambda: _expected(handle.state))
    assert "ünïcode-✓".encode() in body  # UTF-8 as pveproxy sends it, not \u escapes


def _plain_metrics(guest: Guest, metric_time: float, now: float) -> GuestMetrics:
    """The metrics formula written plainly, the way ``simulator.metrics`` first had it
    (``wobble`` per call, ``min``/``max`` clamps): what the per-guest curves must give, to
    the last bit."""
    if guest.status != "running":
        return GuestMetrics(0.0, 0, 0, 0, 0, 0, 0, 0)
    d = guest.drift
    clock = metric_time if guest.boot_time <= metric_time else now
    uptime = max(0, int(clock - guest.boot_time))
    (p1, p2, p3), (f1, f2, f3) = d.periods, d.phases
    level = (
        0.6 * math.sin(math.tau * clock / p1 + f1)
        + 0.3 * math.sin(math.tau * clock / p2 + f2)
        + 0.1 * math.sin(math.tau * clock / p3 + f3)
    )
    cpu = min(1.0, max(0.001, d.cpu_base + d.cpu_swing * level))
    warmup = min(1.0, 0.35 + uptime / 600)
    share = min(0.98, max(0.05, d.mem_fraction * warmup * (1 + 0.08 * level)))
    disk = int(guest.maxdisk * guest.disk_fraction) if guest.kind == "lxc" else 0
    return GuestMetrics(
        round(cpu, 6), int(guest.maxmem * share), disk, int(d.disk_read_rate * uptime),
        int(d.disk_write_rate * uptime), int(d.net_in_rate * uptime),
        int(d.net_out_rate * uptime), uptime,
    )  # fmt: skip


def test_metric_curves_give_the_plain_formulas_numbers_to_the_bit() -> None:
    state = ClusterState(cluster_name="x", node_count=32, guest_count=5000, seed=7)
    sample = list(state.guests.values())[::37]
    running = [g for g in sample if g.running]
    assert running and len(running) < len(sample)  # stopped guests are in the sample too
    # drifts that hit every clamp: cpu below 0.001 and above 1, memory below 5% and over 98%
    extremes = [
        dataclasses.replace(running[0], drift=dataclasses.replace(
            running[0].drift, cpu_base=base, cpu_swing=0.5, mem_fraction=fraction))
        for base, fraction in ((-0.6, 0.01), (1.4, 1.5), (0.0, 0.06))
    ]  # fmt: skip
    boot = max(g.boot_time for g in running)
    # before the latest boot (uptime from now, or 0), a second after it (warming up), later
    times = [boot - 3600.0, boot - 0.5, boot + 1.0, boot + 299.0, boot + 86_400.0, 2.0e9]
    for guest in sample + extremes:
        curve = guest_curve(guest)
        for metric_time in times:
            for now in (metric_time, metric_time + 0.75, boot + 10.0):
                plain = _plain_metrics(guest, metric_time, now)
                for fast in (guest_metrics(guest, metric_time, now),
                             metrics_at(curve, metric_time, now) if curve else plain):  # fmt: skip
                    assert fast == plain, (guest.vmid, metric_time, now)
                    assert [type(v) for v in fast] == [type(v) for v in plain]
    clamped = [guest_metrics(g, boot + 299.0, boot + 299.0) for g in extremes]
    assert {m.cpu for m in clamped[:2]} == {0.001, 1.0}
    maxmem = extremes[0].maxmem
    assert [m.mem for m in clamped[:2]] == [int(maxmem * 0.05), int(maxmem * 0.98)]


def test_rows_kept_over_many_seconds_follow_every_change(make_sim: StartSim) -> None:
    """Each guest's curve is made once and used second after second: the answer must stay
    the plain one as seconds pass, guests start and stop, move and change size."""
    handle = make_sim(nodes=3, guests=120, dynamic=True)
    clock = _take_over_clock(handle, start=0.5)

    def change(step: int) -> None:
        guests = list(handle.state.guests.values())
        guest = guests[step * 7 % len(guests)]
        if step % 3 == 0:
            guest.status = "stopped" if guest.running else "running"
            guest.boot_time = handle.state.now()  # as a start task leaves it
        elif step % 3 == 1:
            guest.memory_mib *= 2
        else:
            guest.node = next(n for n in handle.state.nodes if n != guest.node)

    with _client(handle) as client:
        for step in range(8):
            clock.seconds += 1.0 if step % 2 else 1.25  # a new second, at varying offsets
            assert _resources(client) == handle.call(lambda: _expected(handle.state))
            handle.call(lambda step=step: change(step))
            assert _resources(client) == handle.call(lambda: _expected(handle.state))


def test_has_everywhere_below_sees_more_specific_entries() -> None:
    audit = AUDITOR_PRIVILEGES
    everyone = Principal("a@pve", None, {"/": audit})
    assert everyone.has_everywhere_below("/vms", "VM.Audit")
    hidden_one = Principal("b@pve", None, {"/": audit, "/vms/105": frozenset()})
    assert not hidden_one.has_everywhere_below("/vms", "VM.Audit")
    assert hidden_one.has_everywhere_below("/pool", "Pool.Audit")
    only_some = Principal("c@pve", None, {"/vms/100": audit})
    assert not only_some.has_everywhere_below("/vms", "VM.Audit")
    assert only_some.has("/vms/100", "VM.Audit")
    granted_below = Principal("d@pve", None, {"/vms": audit, "/vms/7": audit})
    assert granted_below.has_everywhere_below("/vms", "VM.Audit")


def _sheet_second(handle: SimulatorHandle) -> tuple[float | None, float]:
    """The metric second the guest sheet was last brought to, and the simulator's now."""
    from simulator.guest_sheet import _SHEETS

    def read() -> tuple[float | None, float]:
        sheet = _SHEETS.get(handle.state)
        return (None if sheet is None else sheet._metric_time), handle.state.metric_time()

    return handle.call(read)


def test_while_a_client_reads_them_the_metrics_are_made_as_each_second_begins(
    make_sim: StartSim,
) -> None:
    """As pvestatd updates the status /cluster/resources reads: a request then finds the
    second's rows made. Without a reader the simulator does nothing."""
    handle = make_sim(guests=60, dynamic=True, speed=1.0)
    clock = _take_over_clock(handle, start=0.25)
    base = handle.state.clock.base_epoch
    time.sleep(1.2)  # the status daemon had a second begin: nobody reads, nothing made
    assert _sheet_second(handle) == (None, base)
    with _client(handle) as client:
        _resources(client)
        assert _sheet_second(handle) == (base, base)
        clock.seconds = 1.5  # the next second begins; no request follows
        assert eventually(lambda: _sheet_second(handle) == (base + 1, base + 1))
        # made as a request would have made it
        assert _resources(client) == handle.call(lambda: _expected(handle.state))

        # ten seconds after the last reader (WATCHED_S), it stops
        def forget() -> None:
            from simulator.guest_sheet import _SHEETS

            _SHEETS[handle.state].asked_at = float("-inf")

        handle.call(forget)
        clock.seconds = 2.5
        time.sleep(2.5)  # the daemon wakes at least twice meanwhile (its sleep is <= 1 s)
        assert _sheet_second(handle) == (base + 1, base + 2)


def test_the_status_daemon_runs_only_when_metrics_move_at_most_a_second_a_second(
    make_sim: StartSim,
) -> None:
    """Frozen metrics never change; at ``speed`` 50 a second lasts 20 ms, less than the
    work at 5,000 guests: a request makes its rows itself then."""
    for settings, runs in (({"dynamic": True, "speed": 1.0}, True),
                           ({"dynamic": True, "speed": 50.0}, False),
                           ({"dynamic": False, "speed": 1.0}, False)):  # fmt: skip
        handle = make_sim(guests=10, **settings)
        assert (handle.simulator._status_daemon is not None) is runs, settings


def test_a_failed_status_update_is_logged_and_the_next_second_tried_again(
    make_sim: StartSim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the update must not end it. Mocked: the simulator has no update that fails,
    so the first one is made to raise."""
    import simulator.server as server

    calls: list[int] = []

    def failing_once(state: ClusterState) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected by the test")
        return refresh_if_watched(state)

    monkeypatch.setattr(server, "refresh_if_watched", failing_once)
    handle = make_sim(guests=20, dynamic=True, speed=1.0)
    clock = _take_over_clock(handle, start=0.25)
    base = handle.state.clock.base_epoch
    with _client(handle) as client:
        _resources(client)
    clock.seconds = 1.5
    assert eventually(lambda: len(calls) >= 2 and _sheet_second(handle) == (base + 1, base + 1))
    assert "updating the guests' metrics failed" in caplog.text
