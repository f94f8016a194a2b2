"""Task list, task log and RRD metrics against the simulator."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, NotFound
from core.models import Table
from core.pve_results import Metrics, TaskLog


def pick(handle, kind: str, running: bool = True):
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and not guest.template:
            return guest
    raise AssertionError(f"no {kind} guest running={running}")


async def test_list_tasks_is_a_compact_filtered_table(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        everything = await lab.call("pve_list_tasks")
        assert isinstance(everything, Table)
        assert everything.columns == ["upid", "type", "id", "status", "starttime"]
        assert everything.total >= 3 and {r[1] for r in everything.rows} >= {"vzdump"}
        started = await lab.call(
            "pve_create_snapshot",
            {"vmid": vm.vmid, "snapname": "t1", "vmstate": True, "wait": False},
        )
        running = await lab.call("pve_list_tasks", {"running": True})
        assert [r[0] for r in running.rows] == [started.upid]
        assert running.rows[0][3] == "running"
        await lab.pve.wait_task(str(started.upid))
        mine = await lab.call(
            "pve_list_tasks",
            {"vmid": vm.vmid, "type": "qmsnapshot", "fields": ["upid", "node", "status", "user"]},
        )
        assert mine.rows == [[started.upid, vm.node, "OK", "root@pam"]]
        newest = (await lab.call("pve_list_tasks", {"limit": 1})).rows
        assert newest[0][0] == started.upid
        on_node = await lab.call("pve_list_tasks", {"node": "pve2"})
        assert all(":pve2:" in r[0] for r in on_node.rows) and on_node.rows
        assert (await lab.call("pve_list_tasks", {"errors": True})).rows == []
    with pytest.raises(InvalidInput) as info:
        async with make_service(fresh_sim) as lab:
            await lab.call("pve_list_tasks", {"fields": ["upid", "nope"]})
    assert "fields" in info.value.fields


async def test_task_log_pages_through_lines(sim, make_service):
    task = next(t for t in sim.state.tasks.everything() if t.kind == "vzdump")
    async with make_service(sim) as lab:
        first = await lab.call("pve_task_log", {"upid": task.upid, "limit": 3})
        assert isinstance(first, TaskLog)
        assert first.total == len(task.log) and len(first.lines) == 3
        assert first.lines[0].startswith("INFO: starting new backup job")
        assert first.next_start == 3
        rest = await lab.call("pve_task_log", {"upid": task.upid, "start": 3, "limit": 500})
        assert rest.next_start is None and rest.lines[-1] == "TASK OK"
        assert first.lines + rest.lines == [line for _, line in task.log]
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_task_log", {"upid": "UPID:nope"})
        assert "upid" in info.value.fields
        unknown = task.upid.replace(":vzdump:", ":qmstart:")
        with pytest.raises(NotFound, match="no such task"):
            await lab.call("pve_task_log", {"upid": unknown})


async def test_node_metrics_have_seventy_rows_consistent_with_now(sim, make_service):
    async with make_service(sim) as lab:
        hour = await lab.call("pve_node_metrics", {"node": "pve1"})
        assert isinstance(hour, Metrics)
        assert hour.step_s == 60 and len(hour.rows) == 70
        assert hour.columns == ["time", "cpu", "loadavg", "memused", "netin", "netout"]
        assert all(0 < row[1] <= 1 for row in hour.rows)
        node = next(n for n in (await lab.call("pve_list_nodes")).nodes if n.node == "pve1")
        # the newest rows average the minutes before now: close to the live value
        assert abs(hour.rows[-1][3] - node.mem) / node.maxmem < 0.05
        week = await lab.call(
            "pve_node_metrics",
            {"node": "pve1", "timeframe": "week", "cf": "MAX", "fields": ["cpu", "memtotal"]},
        )
        assert week.step_s == 3 * 3600 and len(week.rows) == 70
        assert week.summary["memtotal"].min == week.summary["memtotal"].max == node.maxmem
        average = await lab.call("pve_node_metrics", {"node": "pve1", "timeframe": "week"})
        assert week.summary["cpu"].avg >= average.summary["cpu"].avg
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_node_metrics", {"node": "pve1", "timeframe": "decade"})
        assert "timeframe" in info.value.fields


async def test_guest_metrics_for_running_and_stopped_guests(sim, make_service):
    vm, off = pick(sim, "qemu"), pick(sim, "lxc", running=False)
    async with make_service(sim) as lab:
        day = await lab.call("pve_guest_metrics", {"vmid": vm.vmid, "timeframe": "day"})
        assert day.target == f"qemu/{vm.vmid}" and day.step_s == 1800 and len(day.rows) == 70
        assert day.summary["cpu"].max <= 1 and day.summary["mem"].max <= vm.maxmem
        status = await lab.call("pve_guest_status", {"vmid": vm.vmid})
        hour = await lab.call("pve_guest_metrics", {"vmid": vm.vmid, "fields": ["cpu", "mem"]})
        assert abs(hour.rows[-1][1] - status.cpu) < 0.1
        stopped = await lab.call("pve_guest_metrics", {"vmid": off.vmid})
        assert stopped.summary["cpu"].max == 0 and stopped.summary["netin"].max == 0
