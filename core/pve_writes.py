"""Helpers shared by the Proxmox VE write operations that run tasks (UPIDs)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from core.models import Guest
from core.pve_ops import GuestParams, _Params
from core.service import OpContext


class WaitParams(_Params):
    wait: bool = Field(True, description="Wait for the task to finish (recommended).")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="How long to wait, seconds.")


class GuestWaitParams(GuestParams):
    wait: bool = Field(True, description="Wait for the task to finish (recommended).")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="How long to wait, seconds.")


async def run_task(ctx: OpContext, upid: str, *, wait: bool, timeout_s: float) -> dict[str, Any]:
    """Wait for ``upid`` when asked; the task fields of a result (TaskFailed if it failed)."""
    if not wait:
        return {"upid": upid, "waited": False, "task_status": "running"}
    status = await ctx.pve.wait_task(upid, timeout_s=timeout_s, progress=ctx.progress)
    return {
        "upid": upid,
        "waited": True,
        "task_status": str(status.get("status")),
        "exitstatus": status.get("exitstatus"),
    }


def guest_fields(guest: Guest) -> dict[str, Any]:
    return {"vmid": guest.vmid, "name": guest.name, "node": guest.node, "kind": guest.kind}


def label(guest: Guest) -> str:
    return f"{'VM' if guest.kind == 'qemu' else 'CT'} {guest.vmid} ({guest.name})"


async def status_now(ctx: OpContext, guest: Guest) -> dict[str, Any]:
    data = await ctx.pve.get(f"{guest.ref.api_path}/status/current")
    return dict(data or {})


def state_of(data: dict[str, Any]) -> str:
    """running, paused or stopped: QEMU reports a paused VM as running + qmpstatus."""
    if data.get("qmpstatus") == "paused":
        return "paused"
    return str(data.get("status", "unknown"))
