"""The safety policy every face goes through before a write is sent.

- read-only unless writes are allowed (profile ``allow_writes`` or the face's flag);
- protected guests (by vmid, ``name:``, ``tag:`` or ``pool:``) and TrueNAS datasets, shares
  and accounts (``dataset:``, ``user:``, ``group:``) are never written to;
- destructive operations need a confirmation the face obtained from a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from core.errors import ConfirmationRequired, PolicyDenied
from core.models import Guest
from core.ops import Operation


@dataclass(frozen=True, slots=True)
class Policy:
    allow_writes: bool = False
    protected: tuple[str, ...] = field(default_factory=tuple)
    #: when not None, the only write operations allowed
    allowed_operations: frozenset[str] | None = None

    def check_operation(self, op: Operation, *, confirmed: bool, how_to_allow: str) -> None:
        if op.read_only:
            return
        if not self.allow_writes:
            raise PolicyDenied(
                f"{op.name} changes the cluster, and labdeck is in read-only mode.",
                hint=how_to_allow,
            )
        if self.allowed_operations is not None and op.name not in self.allowed_operations:
            allowed = ", ".join(sorted(self.allowed_operations)) or "none"
            raise PolicyDenied(
                f"{op.name} is not in this profile's allowed write operations ({allowed}).",
                hint="Add it to [policy] allow_operations to allow it.",
            )
        if op.confirm and not confirmed:
            raise ConfirmationRequired(
                f"{op.name} is disruptive and needs an explicit confirmation.",
                hint="Confirm it (the dashboard asks; the CLI takes --yes).",
            )

    def protection_of(self, guest: Guest) -> str | None:
        """The rule that protects ``guest``, or None."""
        for rule in self.protected:
            kind, sep, value = rule.partition(":")
            if not sep:
                if rule.strip() == str(guest.vmid):
                    return rule
                continue
            kind = kind.strip().lower()
            value = value.strip()
            if (
                (kind == "vmid" and value == str(guest.vmid))
                or (kind == "name" and value == guest.name)
                or (kind == "tag" and value in guest.tags)
                or (kind == "pool" and value == guest.pool)
            ):
                return rule
        return None

    def check_guest(self, op: Operation, guest: Guest) -> None:
        if op.read_only:
            return
        rule = self.protection_of(guest)
        if rule is not None:
            raise PolicyDenied(
                f"guest {guest.vmid} ({guest.name}) is protected by the rule {rule!r}; "
                f"{op.name} is refused.",
                hint="Remove the rule from [policy] protected to allow writes to it.",
            )

    def check_nas(self, op: Operation, target: NasTarget) -> None:
        """Refuse a TrueNAS write that touches a protected dataset, share or account."""
        if op.read_only:
            return
        rule = nas_protection_of(self.protected, target)
        if rule is not None:
            raise PolicyDenied(
                f"{target.label} is protected by the rule {rule!r}; {op.name} is refused.",
                hint="Remove the rule from [policy] protected to allow writes to it.",
            )


# ------------------------------------------------------------------ TrueNAS protection
# Rules: ``dataset:POOL/PATH`` protects that dataset, everything below it (whole path
# components: ``tank/prod`` covers ``tank/prod/db``, not ``tank/production``), their
# snapshots, and shares of paths under its mountpoint ``/mnt/POOL/PATH``; ``user:NAME``
# protects a local account; ``group:NAME`` refuses any change to who is in that group.

#: TrueNAS writes whose target dataset is the parameter named here
_DATASET_PARAM = {
    "truenas_create_dataset": "name",
    "truenas_update_dataset": "name",
    "truenas_delete_dataset": "name",
    "truenas_create_snapshot": "dataset",
}
_USER_OPS = frozenset({"truenas_create_user", "truenas_update_user", "truenas_delete_user"})


class NasReader(Protocol):
    """The one TrueNAS call the policy needs to resolve ids (``TrueNasClient.query``)."""

    async def query(self, method: str, filters: list[Any] | None = None,
                    **options: Any) -> Any: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class NasTarget:
    """What one TrueNAS write touches, in the terms of the protection rules."""

    label: str
    datasets: tuple[str, ...] = ()
    #: the write also reaches every dataset below ``datasets`` (recursive delete/snapshot)
    recursive: bool = False
    paths: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    #: groups whose membership the write changes
    groups: tuple[str, ...] = ()


def _within(child: str, parent: str) -> bool:
    """``child`` is ``parent`` or below it, comparing whole ``/``-separated components."""
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def rules_of(protected: tuple[str, ...], kind: str) -> list[tuple[str, str]]:
    """``(rule, value)`` of every rule of ``kind`` (``dataset``, ``user``, ...)."""
    found = []
    for rule in protected:
        rule_kind, sep, value = rule.partition(":")
        if sep and rule_kind.strip().lower() == kind:
            found.append((rule, value.strip()))
    return found


def nas_protection_of(protected: tuple[str, ...], target: NasTarget) -> str | None:
    """The rule that protects what ``target`` touches, or None."""
    for rule, value in rules_of(protected, "dataset"):
        dataset = value.strip("/")
        for name in target.datasets:
            if _within(name, dataset) or (target.recursive and _within(dataset, name)):
                return rule
        if any(_within(path, f"/mnt/{dataset}") for path in target.paths):
            return rule
    for kind, names in (("user", target.users), ("group", target.groups)):
        for rule, value in rules_of(protected, kind):
            if value in names:
                return rule
    return None


async def _share_path(reader: NasReader, kind: str, share_id: int) -> str | None:
    found = await reader.query(f"sharing.{kind}.query", [["id", "=", share_id]])
    path = found[0].get("path") if found else None
    return str(path) if path else None


async def _group_names(reader: NasReader, ids: set[int]) -> tuple[str, ...]:
    if not ids:
        return ()
    rows = await reader.query("group.query", select=["id", "name"])
    return tuple(sorted(str(g["name"]) for g in rows if int(g["id"]) in ids))


async def _membership_change(op_name: str, parsed: BaseModel, reader: NasReader) -> tuple[str, ...]:
    """Names of the groups whose members a user write changes (reads the user if needed)."""
    new = set(getattr(parsed, "groups", None) or [])
    if op_name == "truenas_create_user":
        primary = getattr(parsed, "group", None)
        return await _group_names(reader, new | ({primary} if primary else set()))
    if op_name == "truenas_update_user" and getattr(parsed, "groups", None) is None:
        return ()  # membership stays as it is
    username = getattr(parsed, "username", "")
    found = await reader.query("user.query", [["username", "=", username]])
    if not found:
        return ()  # the operation reports the unknown user itself
    current = {int(g) for g in found[0].get("groups") or []}
    if op_name == "truenas_delete_user":
        primary_id = (found[0].get("group") or {}).get("id")
        changed = current | ({int(primary_id)} if primary_id else set())
    else:
        changed = current ^ new
    return await _group_names(reader, changed)


async def nas_target(
    op: Operation, parsed: BaseModel, protected: tuple[str, ...],
    reader: Callable[[], NasReader],
) -> NasTarget | None:  # fmt: skip
    """What a TrueNAS write touches, or None (apps, VMs, scrubs: no rule covers them).

    Shares named by id are looked up (``sharing.*.query``) and group membership is read
    (``user.query``, ``group.query``) only when a rule of that kind exists, so a profile
    without TrueNAS rules costs no extra request; these reads precede any write.
    """
    name = op.name
    if name in _DATASET_PARAM:
        dataset = str(getattr(parsed, _DATASET_PARAM[name]))
        recursive = bool(getattr(parsed, "recursive", False))
        return NasTarget(dataset, datasets=(dataset,), recursive=recursive)
    snapshot = getattr(parsed, "snapshot", None)
    if isinstance(snapshot, str):
        recursive = bool(getattr(parsed, "recursive", False))
        return NasTarget(snapshot, datasets=(snapshot.partition("@")[0],), recursive=recursive)
    if name.endswith(("_smb_share", "_nfs_share")):
        kind = "smb" if "_smb_" in name else "nfs"
        paths = [p for p in (getattr(parsed, "path", None),) if p]
        share_id = getattr(parsed, "id", None)
        if share_id is not None and rules_of(protected, "dataset"):
            current = await _share_path(reader(), kind, int(share_id))
            paths += [current] if current else []
        label = f"{kind} share {share_id if share_id is not None else paths[0]}"
        return NasTarget(label, paths=tuple(paths))
    if name in _USER_OPS:
        username = str(getattr(parsed, "username", ""))
        groups: tuple[str, ...] = ()
        if rules_of(protected, "group"):
            groups = await _membership_change(name, parsed, reader())
        return NasTarget(f"user {username}", users=(username,), groups=groups)
    return None
