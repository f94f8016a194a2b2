"""Typed results of the TrueNAS operations (``truenas_*``). Sizes are bytes, times ISO 8601."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import Table


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TrueNasSystem(_Model):
    hostname: str
    version: str = Field(description="full version, e.g. TrueNAS-25.10.6")
    release: str = Field(description="API release labdeck speaks to it: 25.04, 25.10 or 26")
    model: str | None = Field(None, description="CPU model")
    cores: int | None = None
    physical_cores: int | None = None
    physmem: int | None = Field(None, description="memory, bytes")
    ecc_memory: bool | None = None
    uptime_seconds: float | None = None
    boottime: str | None = None
    loadavg: list[float] = Field(default_factory=list)
    timezone: str | None = None
    system_product: str | None = None
    system_manufacturer: str | None = None
    pools_total: int = 0
    pools_unhealthy: list[str] = Field(default_factory=list, description="pools not healthy")
    alerts_total: int = Field(0, description="alerts not dismissed")
    alerts_critical: int = Field(0, description="of them CRITICAL or worse")


class PoolScan(_Model):
    function: str | None = Field(None, description="SCRUB or RESILVER")
    state: str | None = Field(None, description="SCANNING, FINISHED or CANCELED")
    start_time: str | None = None
    end_time: str | None = None
    percentage: float | None = None
    errors: int | None = None


class PoolVdev(_Model):
    role: str = Field(description="data, log, cache, spare, special or dedup")
    type: str = Field(description="RAIDZ1/2/3, MIRROR, STRIPE, DISK…")
    status: str
    disks: list[str] = Field(default_factory=list)
    unhealthy_disks: list[str] = Field(default_factory=list, description="disks not ONLINE")
    errors: int = Field(0, description="read + write + checksum errors of its devices")


class TrueNasPool(_Model):
    id: int
    name: str
    status: str = Field(description="ONLINE, DEGRADED, FAULTED, OFFLINE…")
    healthy: bool
    status_detail: str | None = None
    path: str | None = None
    size: int | None = None
    allocated: int | None = None
    free: int | None = None
    used_fraction: float | None = Field(None, description="allocated / size (0..1)")
    fragmentation_percent: int | None = None
    scan: PoolScan | None = Field(None, description="last or running scrub / resilver")
    vdevs: list[PoolVdev] = Field(default_factory=list)


class TrueNasPoolList(_Model):
    pools: list[TrueNasPool]


class IscsiListing(_Model):
    targets: Table
    extents: Table


class TrueNasChange(_Model):
    """What a write did. ``item`` is the object after the change, in its listing's columns."""

    action: str
    target: str = Field(description="what was changed, e.g. tank/media or smb share 3")
    changed: bool = Field(description="false when nothing needed doing")
    message: str
    status_after: str | None = None
    job_id: int | None = Field(None, description="the TrueNAS job that did it, if any")
    item: dict[str, Any] | None = Field(None, description="the object after the change")
