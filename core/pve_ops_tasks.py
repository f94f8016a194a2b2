"""Cluster task list, task logs, and RRD metrics of nodes and guests."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from core.models import Table
from core.ops import operation
from core.pve import parse_upid
from core.pve_ops import NodeName, Upid, Vmid, _Params
from core.pve_results import Metrics, MetricStat, TaskLog
from core.service import OpContext

TASK_FIELDS = ("upid", "node", "type", "id", "user", "status", "starttime", "endtime")
DEFAULT_TASK_FIELDS = ("upid", "type", "id", "status", "starttime")


def _fields(value: list[str] | None, known: tuple[str, ...]) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("give at least one field, or omit fields for the default columns")
    unknown = [f for f in value if f not in known]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; available: {', '.join(known)}")
    return list(dict.fromkeys(value))


class ListTasksParams(_Params):
    node: NodeName | None = Field(None, description="Only tasks of this node.")
    running: bool = Field(False, description="Only tasks still running.")
    type: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_\-]*$", max_length=40,
        description="Only this task type, e.g. qmstart, vzdump, qmsnapshot.",
    )  # fmt: skip
    vmid: Vmid | None = Field(None, description="Only tasks about this guest.")
    errors: bool = Field(False, description="Only tasks that ended with an error.")
    fields: list[str] | None = Field(
        None,
        description="Columns. Default: upid, type, id, status, starttime. Available: "
        + ", ".join(TASK_FIELDS) + ".",
    )  # fmt: skip
    limit: int = Field(50, ge=1, le=5000, description="Newest tasks to return (default 50).")

    @field_validator("fields")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return _fields(value, TASK_FIELDS)


def _status(task: dict[str, Any]) -> str:
    status = task.get("status")
    return "running" if status is None or task.get("endtime") is None else str(status)


@operation(
    "pve_list_tasks",
    summary="Recent and running tasks of the cluster (compact table; filters).",
    params=ListTasksParams,
    result=Table,
    read_only=True,
    idempotent=True,
)
async def list_tasks(ctx: OpContext, p: ListTasksParams) -> Table:
    """List the cluster's tasks, newest first, as a compact table: upid, type (qmstart,
    vzdump, ...), id (usually the vmid), status ("running", "OK" or the error) and starttime
    (Unix time). Filter by node, type, vmid, running=true or errors=true; read a task's log
    with pve_task_log. One request, whatever the filters."""
    raw = await ctx.pve.get("/cluster/tasks")
    tasks: list[dict[str, Any]] = []
    for task in raw or []:
        status = _status(task)
        if (
            (p.node is None or task.get("node") == p.node)
            and (not p.running or status == "running")
            and (p.type is None or task.get("type") == p.type)
            and (p.vmid is None or str(task.get("id")) == str(p.vmid))
            and (not p.errors or (status not in ("running", "OK") and
                 not status.startswith("WARNINGS")))
        ):  # fmt: skip
            tasks.append({**task, "status": status})
    tasks.sort(key=lambda t: int(t.get("starttime") or 0), reverse=True)
    columns = list(p.fields or DEFAULT_TASK_FIELDS)
    rows = [[t.get(c) for c in columns] for t in tasks[: p.limit]]
    return Table(columns=columns, rows=rows, total=len(tasks))


class TaskLogParams(_Params):
    upid: Upid
    start: int = Field(0, ge=0, le=10_000_000, description="First line (0-based).")
    limit: int = Field(50, ge=1, le=5000, description="Lines to return.")


@operation(
    "pve_task_log",
    summary="Lines of a task's log (start/limit paging).",
    params=TaskLogParams,
    result=TaskLog,
    read_only=True,
    idempotent=True,
)
async def task_log(ctx: OpContext, p: TaskLogParams) -> TaskLog:
    """Read the log of a task by upid: `limit` lines from line `start` (0-based), with the
    total so far; pass next_start to read on. The last line of a finished task is "TASK OK"
    or "TASK ERROR: ..."."""
    info = parse_upid(p.upid)
    body = await ctx.pve.request(
        "GET", f"/nodes/{info.node}/tasks/{quote(p.upid, safe='')}/log",
        {"start": p.start, "limit": p.limit}, envelope=True,
    )  # fmt: skip
    data = body.get("data") or []
    total = int(body.get("total") or 0)
    lines = [str(line.get("t", "")) for line in data]
    if total == 1 and lines == ["no content"]:
        lines, total = [], 0
    end = p.start + len(lines)
    return TaskLog(upid=p.upid, start=p.start, lines=lines, total=total,
                   next_start=end if end < total else None)  # fmt: skip


# ------------------------------------------------------------------ metrics

Timeframe = Literal["hour", "day", "week", "month", "year"]
Consolidation = Literal["AVERAGE", "MAX"]
NODE_METRICS = ("cpu", "loadavg", "iowait", "memused", "memtotal", "swapused", "rootused",
                "netin", "netout")  # fmt: skip
DEFAULT_NODE_METRICS = ("cpu", "loadavg", "memused", "netin", "netout")
GUEST_METRICS = ("cpu", "mem", "maxmem", "disk", "netin", "netout", "diskread", "diskwrite")
DEFAULT_GUEST_METRICS = ("cpu", "mem", "netin", "netout", "diskread", "diskwrite")


class NodeMetricsParams(_Params):
    node: NodeName = Field(description="Node name, e.g. 'pve1'.")
    timeframe: Timeframe = Field("hour", description="hour (1-min rows), day, week, month, year.")
    cf: Consolidation = Field("AVERAGE", description="AVERAGE or MAX per row.")
    fields: list[str] | None = Field(
        None, description="Columns besides time. Default: " + ", ".join(DEFAULT_NODE_METRICS)
        + ". Available: " + ", ".join(NODE_METRICS) + ".",
    )  # fmt: skip

    @field_validator("fields")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return _fields(value, NODE_METRICS)


class GuestMetricsParams(_Params):
    vmid: Vmid
    node: NodeName | None = Field(None, description="Node of the guest; optional.")
    timeframe: Timeframe = Field("hour", description="hour (1-min rows), day, week, month, year.")
    cf: Consolidation = Field("AVERAGE", description="AVERAGE or MAX per row.")
    fields: list[str] | None = Field(
        None, description="Columns besides time. Default: " + ", ".join(DEFAULT_GUEST_METRICS)
        + ". Available: " + ", ".join(GUEST_METRICS) + ".",
    )  # fmt: skip

    @field_validator("fields")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return _fields(value, GUEST_METRICS)


def _metrics(target: str, timeframe: str, cf: str, columns: list[str],
             raw: list[dict[str, Any]]) -> Metrics:  # fmt: skip
    points = sorted((r for r in raw or [] if "time" in r), key=lambda r: int(r["time"]))
    rows: list[list[Any]] = []
    for point in points:
        rows.append([int(point["time"])] + [point.get(c) for c in columns])
    summary: dict[str, MetricStat] = {}
    for index, column in enumerate(columns, start=1):
        values = [float(row[index]) for row in rows if isinstance(row[index], int | float)]
        if values:
            summary[column] = MetricStat(min=min(values), max=max(values),
                                         avg=round(sum(values) / len(values), 6))  # fmt: skip
    step = int(points[1]["time"]) - int(points[0]["time"]) if len(points) > 1 else None
    return Metrics(target=target, timeframe=timeframe, cf=cf, step_s=step,
                   columns=["time", *columns], rows=rows, summary=summary)  # fmt: skip


@operation(
    "pve_node_metrics",
    summary="CPU, load, memory and network history of a node (RRD, ~70 rows).",
    params=NodeMetricsParams,
    result=Metrics,
    read_only=True,
    idempotent=True,
)
async def node_metrics(ctx: OpContext, p: NodeMetricsParams) -> Metrics:
    """History of a node's metrics from its round-robin database: about 70 rows over the
    timeframe (hour: one a minute; day: every 30 min; week: every 3 h), each the AVERAGE or
    MAX of its interval, with min/avg/max per column. cpu is a fraction (0..1) of all cores,
    memory in bytes, net* in bytes per second."""
    raw = await ctx.pve.get(f"/nodes/{p.node}/rrddata", {"timeframe": p.timeframe, "cf": p.cf})
    return _metrics(f"node/{p.node}", p.timeframe, p.cf,
                    list(p.fields or DEFAULT_NODE_METRICS), raw)  # fmt: skip


@operation(
    "pve_guest_metrics",
    summary="CPU, memory, network and disk I/O history of a guest (RRD, ~70 rows).",
    params=GuestMetricsParams,
    result=Metrics,
    read_only=True,
    idempotent=True,
)
async def guest_metrics(ctx: OpContext, p: GuestMetricsParams) -> Metrics:
    """History of a VM's or container's metrics: about 70 rows over the timeframe (hour:
    one a minute; day: every 30 min; week: every 3 h), each the AVERAGE or MAX of its
    interval, with min/avg/max per column. cpu is a fraction (0..1) of the guest's vCPUs,
    mem in bytes, net*/disk* in bytes per second; a stopped guest shows zeros."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    raw = await ctx.pve.get(f"{guest.ref.api_path}/rrddata",
                            {"timeframe": p.timeframe, "cf": p.cf})  # fmt: skip
    return _metrics(f"{guest.kind}/{guest.vmid}", p.timeframe, p.cf,
                    list(p.fields or DEFAULT_GUEST_METRICS), raw)  # fmt: skip
