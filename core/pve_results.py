"""Result models of the Proxmox VE operations beyond the basics (snapshots, tasks,
metrics, storage, backups, clone and migrate). Field names follow the PVE API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import GuestKind, Rows


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TaskOutcome(_Model):
    """What every write that runs a Proxmox task reports."""

    action: str
    changed: bool = Field(description="False when nothing had to be done")
    upid: str | None = Field(None, description="the task id; follow it with pve_task_status")
    waited: bool = Field(description="True when we waited for the task to end")
    task_status: str | None = Field(None, description="running or stopped")
    exitstatus: str | None = Field(None, description="OK or WARNINGS: n once stopped")
    message: str


class GuestTaskResult(TaskOutcome):
    vmid: int
    name: str
    node: str
    kind: GuestKind
    status_after: str | None = Field(None, description="guest status once the task ended")


class SnapshotInfo(_Model):
    name: str
    parent: str | None = Field(None, description="the snapshot this one was taken after")
    description: str = ""
    snaptime: int | None = Field(None, description="when it was taken (Unix time)")
    vmstate: bool | None = Field(None, description="VMs only: RAM was saved with it")
    depth: int = Field(0, description="level in the snapshot tree (0 = oldest ancestors)")


class SnapshotList(_Model):
    vmid: int
    name: str
    node: str
    kind: GuestKind
    snapshots: list[SnapshotInfo] = Field(description="the tree, depth first, oldest first")
    current_parent: str | None = Field(
        None, description="the snapshot the guest's current state descends from ('You are here')"
    )


class SnapshotResult(GuestTaskResult):
    snapname: str


class GuestConfig(_Model):
    vmid: int
    name: str
    node: str
    kind: GuestKind
    digest: str | None = Field(None, description="config digest (changes with every edit)")
    config: dict[str, Any] = Field(description="every config key as Proxmox VE reports it")


class TaskLog(_Model):
    upid: str
    start: int = Field(description="index of the first line returned (0-based)")
    lines: list[str]
    total: int = Field(description="lines the log holds so far")
    next_start: int | None = Field(None, description="pass as start for more; None at the end")


class MetricStat(_Model):
    min: float
    avg: float
    max: float


class Metrics(_Model):
    target: str = Field(description="'node/pve1' or 'qemu/100'")
    timeframe: str
    cf: str = Field(description="AVERAGE or MAX: how each row consolidates its interval")
    step_s: int | None = Field(None, description="seconds between rows")
    columns: list[str]
    rows: Rows
    summary: dict[str, MetricStat] = Field(description="min/avg/max per column over the rows")


class PoolResult(_Model):
    poolid: str
    action: str
    changed: bool
    message: str


class BackupResult(_Model):
    vmids: list[int]
    storage: str | None
    mode: str
    upids: list[str] = Field(description="one vzdump task per node")
    upid: str | None = Field(None, description="the first task (all are in upids)")
    waited: bool
    exitstatus: str | None = None
    volumes: list[str] = Field(default_factory=list, description="backup volids written")
    message: str


class CloneResult(GuestTaskResult):
    newid: int
    new_name: str
    new_node: str
    full: bool


class MigrateResult(GuestTaskResult):
    source_node: str
    target: str
    online: bool
