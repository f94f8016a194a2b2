"""TrueNAS operations of the catalogue (``truenas_*``): system, pools, datasets, snapshots.

Shares, iSCSI and accounts are in :mod:`core.truenas_ops_sharing`; apps and VMs in
:mod:`core.truenas_ops_compute`. Method names that changed between releases come from
``client.methods`` (probed at login), never from a release test in the handlers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import NotFound, ServerError
from core.models import Table
from core.ops import operation
from core.service import OpContext
from core.truenas import TrueNasClient
from core.truenas_models import MethodNames, ProgressFn
from core.truenas_results import (
    PoolScan,
    PoolVdev,
    TrueNasChange,
    TrueNasPool,
    TrueNasPoolList,
    TrueNasSystem,
)

# ------------------------------------------------------------------ shared building blocks

_COMPONENT = r"[A-Za-z0-9_.:-]([A-Za-z0-9_.: -]*[A-Za-z0-9_.:-])?"
_POOL = r"[A-Za-z][A-Za-z0-9_.:-]{0,49}"
DATASET_RE = re.compile(rf"^{_POOL}(/{_COMPONENT})*$")
SNAPNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def dataset_name(value: str, *, child: bool) -> str:
    """A ZFS dataset name (``pool/a/b``); ``child`` refuses a pool's root dataset."""
    if not DATASET_RE.fullmatch(value):
        raise ValueError(
            "not a dataset name: expected pool/name/... of letters, digits and _ . : - "
            "(e.g. tank/media)"
        )
    parts = value.split("/")
    if any(part in (".", "..") for part in parts):
        raise ValueError("'.' and '..' are not dataset names")
    if child and len(parts) < 2:
        raise ValueError("give a dataset inside a pool (e.g. tank/media), not the pool itself")
    return value


def snapshot_id(value: str) -> str:
    dataset, sep, name = value.partition("@")
    if not sep:
        raise ValueError("expected dataset@snapshot, e.g. tank/home@auto-2025-11-01_00-00")
    dataset_name(dataset, child=False)
    if not SNAPNAME_RE.fullmatch(name):
        raise ValueError("the snapshot name takes letters, digits and _ . : - (1-200 characters)")
    return value


def mnt_path(value: str) -> str:
    """A path under /mnt/ (a pool's mountpoint), without '..', '//' or a trailing '/'."""
    if not value.startswith("/mnt/") or len(value) <= len("/mnt/"):
        raise ValueError("must be a path under /mnt/ (e.g. /mnt/tank/media)")
    if value.endswith("/") or "//" in value:
        raise ValueError("no trailing '/' and no '//'")
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError("'.' and '..' are not allowed in the path")
    if any(ord(ch) < 32 or ch in '"\\' for ch in value):
        raise ValueError("control characters, quotes and backslashes are not allowed")
    return value


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(_Params):
    pass


class PageParams(_Params):
    limit: int | None = Field(None, ge=1, le=10_000, description="Page size (default: all).")
    cursor: str | None = Field(None, description="next_cursor of the previous page.")

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and (not value.isdigit() or len(value) > 9):
            raise ValueError("not a cursor from a previous page (pass next_cursor unchanged)")
        return value


PoolName = Annotated[
    str, Field(pattern=rf"^{_POOL}$", max_length=50, description="Pool name, e.g. 'tank'.")
]
WaitSeconds = Annotated[
    float, Field(ge=1, le=3600, description="How long to wait for the job, seconds.")
]


async def nas(ctx: OpContext) -> TrueNasClient:
    """The profile's TrueNAS client, connected (so ``methods`` is known)."""
    client = ctx.service.truenas
    await client.connect()
    return client


def names(client: TrueNasClient) -> MethodNames:
    if client.methods is None:
        raise ServerError("the TrueNAS release is not known yet (no login happened).")
    return client.methods


def plain(value: Any) -> Any:
    """Datetimes as ISO 8601 text; everything else unchanged."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def prop(item: dict[str, Any], key: str, part: str = "parsed") -> Any:
    """A ZFS property of a query item (``{"parsed", "value", ...}``) or a plain field."""
    value = item.get(key)
    if isinstance(value, dict):
        return value.get(part, value.get("value"))
    return value


def page(
    items: Sequence[Any], columns: list[str], cell: Callable[[Any, str], Any], p: PageParams
) -> Table:
    offset = int(p.cursor) if p.cursor else 0
    chunk = items[offset:] if p.limit is None else items[offset : offset + p.limit]
    end = offset + len(chunk)
    return Table(
        columns=columns,
        rows=[[plain(cell(item, c)) for c in columns] for item in chunk],
        total=len(items),
        next_cursor=str(end) if end < len(items) else None,
    )


def job_progress(ctx: OpContext, label: str) -> ProgressFn:
    """Job progress (percent, text) -> ``ctx.report(elapsed_s, message)``."""
    started = time.monotonic()

    async def report(percent: float, description: str) -> None:
        await ctx.report(time.monotonic() - started, f"{label}: {description} ({percent:.0f}%)")

    return report


# ------------------------------------------------------------------ system and pools


@operation(
    "truenas_system_info",
    summary="TrueNAS at a glance: host, version, hardware, uptime, pool health, alerts.",
    params=NoParams,
    result=TrueNasSystem,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def system_info(ctx: OpContext, p: NoParams) -> TrueNasSystem:
    """Summarise the TrueNAS system: hostname, version and API release, CPU model and
    cores, memory bytes, uptime, load, which pools are not healthy and how many alerts
    (and critical ones) are active. Start here for TrueNAS."""
    client = await nas(ctx)
    info = await client.call("system.info")
    pools = await client.query("pool.query", select=["name", "healthy"])
    alerts = [a for a in await client.call("alert.list") if not a.get("dismissed")]
    return TrueNasSystem(
        hostname=str(info.get("hostname") or ""),
        version=str(info.get("version") or client.version or ""),
        release=client.release or "",
        model=info.get("model"),
        cores=info.get("cores"),
        physical_cores=info.get("physical_cores"),
        physmem=info.get("physmem"),
        ecc_memory=info.get("ecc_memory"),
        uptime_seconds=info.get("uptime_seconds"),
        boottime=plain(info.get("boottime")),
        loadavg=[float(x) for x in info.get("loadavg") or []],
        timezone=info.get("timezone"),
        system_product=info.get("system_product"),
        system_manufacturer=info.get("system_manufacturer"),
        pools_total=len(pools),
        pools_unhealthy=sorted(str(x["name"]) for x in pools if not x.get("healthy")),
        alerts_total=len(alerts),
        alerts_critical=sum(1 for a in alerts if a.get("level") in _SEVERE),
    )


_SEVERE = frozenset({"CRITICAL", "ALERT", "EMERGENCY"})
_VDEV_ROLES = ("data", "log", "cache", "spare", "special", "dedup")


def _leaves(vdev: dict[str, Any]) -> list[dict[str, Any]]:
    children = vdev.get("children") or []
    if not children:
        return [vdev]
    return [leaf for child in children for leaf in _leaves(child)]


def _vdev(role: str, vdev: dict[str, Any]) -> PoolVdev:
    leaves = _leaves(vdev)
    errors = 0
    for node in leaves:
        stats = node.get("stats") or {}
        errors += sum(
            int(stats.get(k) or 0) for k in ("read_errors", "write_errors", "checksum_errors")
        )
    disk = [str(leaf.get("disk") or leaf.get("name") or "?") for leaf in leaves]
    return PoolVdev(
        role=role,
        type=str(vdev.get("type") or "?"),
        status=str(vdev.get("status") or "?"),
        disks=disk,
        unhealthy_disks=[
            d for d, leaf in zip(disk, leaves, strict=True) if leaf.get("status") != "ONLINE"
        ],
        errors=errors,
    )


def _pool(item: dict[str, Any]) -> TrueNasPool:
    size, allocated = item.get("size"), item.get("allocated")
    scan = item.get("scan") or None
    frag = str(item.get("fragmentation") or "")
    topology = item.get("topology") or {}
    return TrueNasPool(
        id=int(item["id"]),
        name=str(item["name"]),
        status=str(item.get("status") or "UNKNOWN"),
        healthy=bool(item.get("healthy")),
        status_detail=item.get("status_detail"),
        path=item.get("path"),
        size=size,
        allocated=allocated,
        free=item.get("free"),
        used_fraction=round(allocated / size, 4) if size and allocated is not None else None,
        fragmentation_percent=int(frag) if frag.isdigit() else None,
        scan=PoolScan(
            function=scan.get("function"),
            state=scan.get("state"),
            start_time=plain(scan.get("start_time")),
            end_time=plain(scan.get("end_time")),
            percentage=scan.get("percentage"),
            errors=scan.get("errors"),
        )
        if isinstance(scan, dict)
        else None,
        vdevs=[_vdev(role, v) for role in _VDEV_ROLES for v in topology.get(role) or []],
    )


@operation(
    "truenas_list_pools",
    summary="Storage pools: health, status, usage, last scrub and vdev topology.",
    params=NoParams,
    result=TrueNasPoolList,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_pools(ctx: OpContext, p: NoParams) -> TrueNasPoolList:
    """List the ZFS pools: status (ONLINE/DEGRADED/...), healthy flag and detail, size,
    allocated and free bytes, used fraction, fragmentation, the last or running scrub
    (state, times, errors) and each vdev with its disks, unhealthy disks and error count."""
    client = await nas(ctx)
    items = await client.query("pool.query", order_by=["name"])
    return TrueNasPoolList(pools=[_pool(item) for item in items])


class ScrubParams(_Params):
    pool: PoolName
    wait: bool = Field(
        False, description="Wait until the scrub ends (it can take hours on large pools)."
    )
    timeout_s: WaitSeconds = 600.0


@operation(
    "truenas_scrub_pool",
    summary="Start a scrub of a pool (verify every block; heavy disk I/O while it runs).",
    params=ScrubParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def scrub_pool(ctx: OpContext, p: ScrubParams) -> TrueNasChange:
    """Start a scrub of one pool: ZFS reads and verifies every block and repairs what it
    can from redundancy. Disks are busy while it runs. A scrub already running is left
    alone (changed=false). wait=false (default) returns once it started, with its job id;
    follow it with truenas_list_pools or truenas_list_jobs."""
    client = await nas(ctx)
    found = await client.query("pool.query", [["name", "=", p.pool]])
    if not found:
        raise NotFound(f"no pool named {p.pool!r}.", hint="List pools with truenas_list_pools.")
    scan = found[0].get("scan") or {}
    if scan.get("function") == "SCRUB" and scan.get("state") == "SCANNING":
        return TrueNasChange(
            action="scrub",
            target=p.pool,
            changed=False,
            status_after="SCANNING",
            message=f"a scrub of {p.pool} is already running; nothing to do.",
        )
    method = names(client).scrub
    args: list[Any] = (
        [{"pool_name": p.pool, "action": "START"}]
        if method == "zpool.scrub.run"
        else [p.pool, "START"]
    )
    if not p.wait:
        job_id = await client.call(method, *args)
        return TrueNasChange(
            action="scrub",
            target=p.pool,
            changed=True,
            status_after="SCANNING",
            job_id=job_id if isinstance(job_id, int) else None,
            message=f"scrub of {p.pool} started.",
        )
    await client.run_job(
        method, *args, progress=job_progress(ctx, f"scrub {p.pool}"), timeout_s=p.timeout_s
    )
    after = await client.query("pool.query", [["name", "=", p.pool]])
    state = str(((after[0] if after else {}).get("scan") or {}).get("state") or "")
    return TrueNasChange(
        action="scrub",
        target=p.pool,
        changed=True,
        status_after=state,
        message=f"scrub of {p.pool} ended: {state}.",
    )


# ------------------------------------------------------------------ alerts and jobs

LEVELS = ("INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
Level = Literal["INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]


class AlertParams(_Params):
    min_level: Level = Field("INFO", description="Only alerts of this level or worse.")
    include_dismissed: bool = Field(False, description="Also list dismissed alerts.")


def _rank(level: Any) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


@operation(
    "truenas_list_alerts",
    summary="Active TrueNAS alerts (level, class, text, time), worst first.",
    params=AlertParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_alerts(ctx: OpContext, p: AlertParams) -> Table:
    """List TrueNAS alerts as a table (level, klass, text, datetime, dismissed, id), worst
    level first, newest first within a level. Dismissed alerts are left out unless
    include_dismissed=true; min_level keeps only e.g. WARNING and worse."""
    client = await nas(ctx)
    items = [
        a
        for a in await client.call("alert.list")
        if _rank(a.get("level")) >= _rank(p.min_level)
        and (p.include_dismissed or not a.get("dismissed"))
    ]
    items.sort(key=lambda a: plain(a.get("datetime")) or "", reverse=True)
    items.sort(key=lambda a: _rank(a.get("level")), reverse=True)
    columns = ["level", "klass", "text", "datetime", "dismissed", "id"]

    def cell(a: dict[str, Any], c: str) -> Any:
        return a.get("formatted") or a.get("text") if c == "text" else a.get(c)

    return page(items, columns, cell, PageParams())


JOB_STATES = ("WAITING", "RUNNING", "SUCCESS", "FAILED", "ABORTED")


class JobsParams(_Params):
    state: Literal["WAITING", "RUNNING", "SUCCESS", "FAILED", "ABORTED"] | None = Field(
        None, description="Only jobs in this state."
    )
    method: str | None = Field(
        None,
        pattern=r"^[a-z0-9_.]{1,100}$",
        description="Only jobs of methods starting with this, e.g. 'app.' or 'pool.scrub'.",
    )
    limit: int = Field(20, ge=1, le=500, description="Most recent jobs to return.")


@operation(
    "truenas_list_jobs",
    summary="Recent TrueNAS jobs (long operations): state, progress, errors.",
    params=JobsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_jobs(ctx: OpContext, p: JobsParams) -> Table:
    """List recent middleware jobs, newest first: id, method, state (WAITING, RUNNING,
    SUCCESS, FAILED, ABORTED), percent, progress text, start and end times and the error of
    failed ones. Filter by state or method prefix; `total` counts all matches."""
    client = await nas(ctx)
    filters: list[Any] = []
    if p.state:
        filters.append(["state", "=", p.state])
    if p.method:
        filters.append(["method", "^", p.method])
    items = await client.query("core.get_jobs", filters, order_by=["-id"])
    columns = [
        "id",
        "method",
        "state",
        "percent",
        "progress",
        "time_started",
        "time_finished",
        "error",
    ]

    def cell(job: dict[str, Any], c: str) -> Any:
        bar = job.get("progress") or {}
        if c == "percent":
            return bar.get("percent")
        if c == "progress":
            return bar.get("description") or job.get("description")
        return job.get(c)

    return page(items, columns, cell, PageParams(limit=p.limit))
