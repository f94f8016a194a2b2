"""``Labdeck``: the one entry point every face calls.

It owns the cluster clients of one profile, parses parameters (clear errors before any
request), applies the policy, runs the operation, and writes the audit line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from core.audit import AuditLog
from core.config import Profile
from core.errors import ConfigError, InvalidInput, LabdeckError, NotFound
from core.models import Guest, GuestKind, Inventory, NodeInfo, StorageInfo
from core.ops import Operation, catalogue, get_operation
from core.policy import Policy, nas_target
from core.pve import ProgressFn, PveClient
from core.truenas import TrueNasClient

if TYPE_CHECKING:
    from core.pve_ssh import PctExec

log = logging.getLogger("labdeck.service")

Face = str  # "cli" | "tui" | "mcp"
#: result fields copied into the audit line
_AUDITED_RESULT_KEYS = ("upid", "changed", "exit_code", "exited", "status_after")
BIG_LISTING = 500  # items above which parsing moves to a worker thread


class AuditUnwritable(ConfigError):
    """The audit log cannot be written (its directory is not writable, its path is taken).

    Raised before a change is sent, so that nothing changes unrecorded; or after a call,
    saying how the call ended, since its line is missing from the log.
    """


def audit_unwritable(path: Path, exc: OSError, outcome: str) -> AuditUnwritable:
    """The error of an audit line that could not be written; ``outcome`` says what ran."""
    reason = exc.strerror or type(exc).__name__
    return AuditUnwritable(
        f"{outcome}: labdeck cannot append to its audit log {path} ({reason}).",
        hint=f"Make {path.parent} writable by this user (and {path.name} in it a file), or "
        "set XDG_STATE_HOME to a writable directory (the log is "
        "$XDG_STATE_HOME/labdeck/audit.jsonl, by default under ~/.local/state).",
    )


def unaudited(entry: dict[str, Any], failure: Exception | None) -> str:
    """How the call of ``entry`` ended, said first when its line cannot be written: the
    person must not lose an error, nor retry a change that was made."""
    name = entry["operation"]
    if failure is not None and entry.get("outcome") == "refused":
        return f"{name} was refused ({failure}), and the refusal is not audited"
    if failure is not None:
        return f"{name} failed ({failure}), and the failure is not audited"
    if entry["access"] == "write":
        return f"{name} succeeded (do not run it again), but the change is not audited"
    return f"{name} succeeded, but the read is not audited"


@dataclass(slots=True)
class OpContext:
    """What a handler gets besides its params."""

    service: Labdeck
    progress: ProgressFn | None = None

    @property
    def pve(self) -> PveClient:
        return self.service.pve

    async def report(self, elapsed_s: float, message: str) -> None:
        if self.progress is not None:
            result = self.progress(elapsed_s, message)
            if result is not None:
                await result


def parse_params(op: Operation, raw: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Validate parameters; every problem is named by its field."""
    if isinstance(raw, op.params):
        return raw
    data = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {})
    try:
        return op.params.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors(include_url=False, include_input=False):
            loc = err["loc"]
            # report by top-level parameter; list items and union branches stay readable
            where = str(loc[0]) if loc else "params"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(op.params.model_fields)
                msg = f"unknown parameter (accepted: {allowed or 'none'})"
            else:
                index = next((part for part in loc[1:] if isinstance(part, int)), None)
                if index is not None:
                    msg = f"item {index}: {msg}"
            if where in fields and msg not in fields[where]:
                fields[where] = f"{fields[where]}, or {msg[0].lower()}{msg[1:]}"
            else:
                fields[where] = msg
        raise InvalidInput(f"invalid parameters for {op.name}:", fields=fields) from None


def _tags(raw: Any) -> list[str]:
    if not raw:
        return []
    return [t for t in str(raw).replace(",", ";").replace(" ", ";").split(";") if t]


def freeze_long_lived() -> None:
    """Exempt what is alive now (modules, classes, schemas: ~100k objects) from the cyclic GC.

    A big listing allocates enough to trigger a full collection, which walks every tracked
    object holding the GIL: ~100 ms on a 2-core machine, a frozen event loop. Frozen, a full
    collection walks only the data (a few ms). Once per process; reference counting still
    frees frozen objects as before.
    """
    global _frozen
    if not _frozen:  # not gc.get_freeze_count(): it walks the frozen objects, ~30 ms
        gc.freeze()
        _frozen = True


_frozen = False


#: the fields set of every guest ``_guests`` builds: all of them, as if passed to ``Guest(...)``.
#: One set shared by all: pydantic only ever adds a field's name to it (on assignment), which
#: changes nothing here, and copies it for a copied model. A set per guest would hold as many
#: references as its ``__dict__``: 5,000 more sets for every full GC pass to walk (~40% of
#: the work of walking the guests), while the loop waits.
_ALL_GUEST_FIELDS: set[str] = set(Guest.model_fields)
# What ``_guests`` skips is only validation: it stores the ``__dict__`` and bookkeeping that
# ``BaseModel.model_construct`` would (no private attributes, no post-init hook, no extras:
# checked here so that a change to ``Guest`` falls back to validating each guest).
_TRUSTED_GUEST = (
    not Guest.__private_attributes__
    and not Guest.__pydantic_post_init__
    and Guest.model_config.get("extra") != "allow"
)


#: per vmid, a guest's item in an earlier answer and the ``Guest`` made of it (``_reusable``)
Reusable = dict[Any, tuple[dict[str, Any], Guest]]


def _guests(items: list[dict[str, Any]], reuse: Reusable | None = None) -> list[Guest]:
    """The ``Guest`` of each qemu/lxc item of ``/cluster/resources``, in their order.

    ``reuse``: the guests of the previous answer. An item equal to the one a guest was made
    of gives that guest again: the same values, not made anew (a stopped guest's item does
    not change from one answer to the next; ~30% of a big cluster's). Guests are never
    changed in place (``model_copy`` makes a changed one), so sharing them is safe.

    ``_guest_values`` converts each value to its field's type, as ``Guest(...)`` was always
    given them; validating them again would cost 6-10 µs a guest, 30-50 ms for 5,000.
    ``model_construct`` does not help (its Python loop over the fields costs more than
    validation), so this loop sets what it would set. Values it leaves as they came (``pool``
    and ``lock``) are validated when they are not strings, to fail as ``Guest(...)`` would.
    """
    set_attribute = object.__setattr__
    tags: dict[str, list[str]] = {}
    guests: list[Guest] = []
    for item in items:
        if reuse:
            kept = reuse.get(item.get("vmid"))
            if kept is not None and kept[0] == item:
                guests.append(kept[1])
                continue
        values = _guest_values(item, item["type"], tags)
        pool, lock = values["pool"], values["lock"]
        if (
            not _TRUSTED_GUEST
            or (pool is not None and type(pool) is not str)
            or (lock is not None and type(lock) is not str)
        ):
            guests.append(Guest(**values))
            continue
        guest = Guest.__new__(Guest)
        set_attribute(guest, "__dict__", values)
        set_attribute(guest, "__pydantic_fields_set__", _ALL_GUEST_FIELDS)
        set_attribute(guest, "__pydantic_extra__", None)
        set_attribute(guest, "__pydantic_private__", None)
        guests.append(guest)
    return guests


def _guest_values(
    item: dict[str, Any], kind: GuestKind, tags: dict[str, list[str]]
) -> dict[str, Any]:
    """The fields of one guest's ``/cluster/resources`` item, each of its ``Guest`` type.

    ``tags`` caches the split of each tags string (a few dozen distinct ones across thousands
    of guests); each guest gets its own copy of the list, as validation would give it.
    """
    get = item.get
    raw_tags = get("tags")
    if not raw_tags:
        guest_tags: list[str] = []
    else:
        split = tags.get(raw_tags) if type(raw_tags) is str else None
        if split is None:
            split = _tags(raw_tags)
            if type(raw_tags) is str:
                tags[raw_tags] = split
        guest_tags = list(split)
    return {
        "vmid": int(item["vmid"]),
        "name": str(get("name") or f"{kind}-{item['vmid']}"),
        "node": str(get("node") or ""),
        "kind": kind,
        "status": str(get("status") or "unknown"),  # null too: not "None"
        "cpu": float(get("cpu") or 0.0),
        "maxcpu": float(get("maxcpu") or 0),
        "mem": int(get("mem") or 0),
        "maxmem": int(get("maxmem") or 0),
        "disk": int(get("disk") or 0),
        "maxdisk": int(get("maxdisk") or 0),
        "uptime": int(get("uptime") or 0),
        "netin": int(get("netin") or 0),
        "netout": int(get("netout") or 0),
        "tags": guest_tags,
        "pool": get("pool") or None,
        "template": bool(get("template") or 0),
        "lock": get("lock") or None,
    }


def inventory_from_resources(
    resources: list[dict[str, Any]], reuse: Reusable | None = None
) -> Inventory:
    """The ``Inventory`` of one ``/cluster/resources`` answer (sorted by node, vmid, storage).

    Guests are built without validating again the values ``_guest_values`` converted
    (see ``_guests``, and for ``reuse``); nodes and storages, a few dozen, are validated.
    """
    nodes: list[NodeInfo] = []
    guest_items: list[dict[str, Any]] = []
    storages: list[StorageInfo] = []
    pools: list[str] = []
    for item in resources:
        kind = item.get("type")
        if kind == "qemu" or kind == "lxc":
            guest_items.append(item)
        elif kind == "node":
            nodes.append(NodeInfo.model_validate(item))
        elif kind == "storage":
            storages.append(
                StorageInfo(
                    storage=str(item.get("storage", "")),
                    node=str(item.get("node") or ""),
                    plugintype=str(item.get("plugintype", "")),
                    status=str(item.get("status") or ""),
                    shared=bool(item.get("shared") or 0),
                    content=str(item.get("content", "")),
                    disk=int(item.get("disk") or 0),
                    maxdisk=int(item.get("maxdisk") or 0),
                )
            )
        elif kind == "pool":
            pools.append(str(item.get("pool") or item.get("id", "").removeprefix("/pool/")))
    nodes.sort(key=lambda n: n.node)
    guests = _guests(guest_items, reuse)
    guests.sort(key=lambda g: g.vmid)
    storages.sort(key=lambda s: (s.node, s.storage))
    return Inventory(nodes=nodes, guests=guests, storages=storages, pools=sorted(pools))


def _reusable(resources: object, inventory: object) -> Reusable:
    """Per vmid, the guest item of an earlier answer (``resources``) and the ``Guest`` its
    ``inventory`` made of it."""
    if not isinstance(resources, list) or not isinstance(inventory, Inventory):
        return {}
    made = {guest.vmid: guest for guest in inventory.guests}
    reuse: Reusable = {}
    for item in resources:
        if isinstance(item, dict) and item.get("type") in ("qemu", "lxc"):
            guest = made.get(item.get("vmid"))  # type: ignore[arg-type]
            if guest is not None:
                reuse[item["vmid"]] = (item, guest)
    return reuse


def _release_then_parse(held: list[object], items: list[dict[str, Any]]) -> Inventory:
    """Parse ``items`` reusing the guests of the previous answer and inventory ``held``
    holds (``_guests``), dropping the rest first (in a worker thread).

    Freeing a big listing is one deallocation cascade in C per object dropped, which keeps
    the GIL throughout: dropped one by one, the loop's thread may take the GIL in between.
    """
    reuse = _reusable(*held) if len(held) == 2 else {}
    while held:
        held.pop()
    return inventory_from_resources(items, reuse)


class Labdeck:
    """One profile's clients + policy + audit. ``async with Labdeck(profile, face=...)``."""

    def __init__(
        self,
        profile: Profile,
        *,
        face: Face,
        allow_writes: bool | None = None,
        audit: AuditLog | None = None,
        how_to_allow: str = "Allow writes with --allow-writes or [policy] allow_writes = true.",
        pve: PveClient | None = None,
        audit_reads: bool = False,
    ) -> None:
        self.profile = profile
        #: record reads in the audit log too (the MCP server and CLI do: agent activity)
        self.audit_reads = audit_reads
        self.face = face
        self.policy = Policy(
            allow_writes=profile.policy.allow_writes if allow_writes is None else allow_writes,
            protected=tuple(profile.policy.protected),
            allowed_operations=None
            if profile.policy.allow_operations is None
            else frozenset(profile.policy.allow_operations),
        )
        if profile.policy.allow_operations is not None:
            known = catalogue()
            unknown = [n for n in profile.policy.allow_operations if n not in known]
            if unknown:
                raise ConfigError(
                    f"[policy] allow_operations names unknown operations: {', '.join(unknown)}.",
                    hint="`labdeck ops` lists them; write operations are marked write.",
                )
        self.audit = audit
        self.how_to_allow = how_to_allow
        self._pve = pve
        self._truenas: TrueNasClient | None = None
        self._pct_exec: PctExec | None = None  # SSH to the nodes, opened on first use
        # the parsed form of the last /cluster/resources answer, reused while it is cached
        self._inventory: tuple[object, Inventory] | None = None
        self._parsing: tuple[object, asyncio.Future[Inventory]] | None = None

    async def __aenter__(self) -> Labdeck:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pve is not None:
            await self._pve.aclose()
        if self._truenas is not None:
            await self._truenas.aclose()
            self._truenas = None
        if self._pct_exec is not None:
            await self._pct_exec.aclose()
            self._pct_exec = None

    @property
    def pct_exec(self) -> PctExec:
        """``pct exec`` over SSH to the nodes (LXC commands); connections are pooled."""
        if self._pct_exec is None:
            from core.pve_ssh import PctExec  # asyncssh takes ~0.5 s to import: only when used

            self._pct_exec = PctExec(self.profile.pve.ssh)
        return self._pct_exec

    @property
    def truenas(self) -> TrueNasClient:
        """The profile's TrueNAS client (connects on first call)."""
        if self._truenas is None:
            if not self.profile.truenas.configured:
                raise ConfigError(
                    f"profile {self.profile.name!r} has no TrueNAS system configured.",
                    hint="Add [truenas] url and api_key_file to config.toml (or TRUENAS_URL and "
                    "TRUENAS_API_KEY), or run `labdeck demo`.",
                )
            self._truenas = TrueNasClient(self.profile.truenas)
        return self._truenas

    @property
    def pve(self) -> PveClient:
        if self._pve is None:
            if not self.profile.pve.configured:
                raise ConfigError(
                    f"profile {self.profile.name!r} has no Proxmox VE cluster configured.",
                    hint="Add a [pve] section to config.toml (see README), or run `labdeck demo`.",
                )
            self._pve = PveClient(self.profile.pve)
        return self._pve

    # -------------------------------------------------------------- inventory

    async def inventory(self) -> Inventory:
        """Nodes, guests, storages and pools from one ``GET /cluster/resources`` (TTL-cached)."""
        resources = await self.pve.cached_get("/cluster/resources")
        if self._inventory is not None and self._inventory[0] is resources:
            return self._inventory[1]
        items = list(resources or [])
        if len(items) <= BIG_LISTING:
            inventory = inventory_from_resources(items)
            self._inventory = (resources, inventory)
            return inventory
        parsing = self._parsing
        loop = asyncio.get_running_loop()  # a face may run the service in a later loop
        if parsing is None or parsing[0] is not resources or parsing[1].get_loop() is not loop:
            # one parse per answer, however many callers wait for it (200 concurrent calls)
            parsing = (resources, asyncio.ensure_future(self._parse_big(resources, items)))
            self._parsing = parsing
        return await asyncio.shield(parsing[1])

    async def _parse_big(self, resources: object, items: list[dict[str, Any]]) -> Inventory:
        """Thousands of guests: build the models off the event loop so it stays responsive.

        The previous answer and its inventory are let go in the same worker thread, first:
        freeing 5,000 guests and their items is ~10 ms of deallocation the loop would spend
        (the service held them last), and a GC pass during the parse walks one inventory.
        """
        freeze_long_lived()
        previous, self._inventory = self._inventory, None
        held: list[object] = [] if previous is None else list(previous)
        del previous
        inventory = await asyncio.to_thread(_release_then_parse, held, items)
        self._inventory = (resources, inventory)
        return inventory

    async def find_guest(self, vmid: int, node: str | None = None) -> Guest:
        inventory = await self.inventory()
        guest = inventory.guest(vmid)
        if guest is None:
            raise NotFound(
                f"no guest with vmid {vmid} in this cluster.",
                hint="List guests with pve_list_guests (labdeck call pve_list_guests).",
            )
        if node is not None and guest.node != node:
            known = {n.node for n in inventory.nodes}
            if node not in known:
                raise NotFound(
                    f"no node named {node!r}.", hint=f"Nodes: {', '.join(sorted(known))}."
                )
            raise NotFound(
                f"guest {vmid} is on node {guest.node}, not {node}.",
                hint="Omit node (labdeck finds it) or pass the right one.",
            )
        return guest

    # -------------------------------------------------------------- operations

    def _entry(self, op: Operation) -> dict[str, Any]:
        return {
            "face": self.face,
            "profile": self.profile.name,
            "operation": op.name,
            "access": "read" if op.read_only else "write",
        }

    def _audited(self, op: Operation) -> bool:
        return self.audit is not None and (not op.read_only or self.audit_reads)

    def _audit_failure(self, entry: dict[str, Any], exc: BaseException, started: float) -> None:
        if isinstance(exc, AuditUnwritable):
            return  # the line this would write cannot be written either
        if isinstance(exc, LabdeckError):
            refused = exc.kind in ("policy", "confirmation_required")
            entry.update(outcome="refused" if refused else "error", error=exc.kind,
                         message=exc.message)  # fmt: skip
            upid = getattr(exc, "upid", None)
            if upid:
                entry["upid"] = upid
        else:
            entry.update(outcome="error", error=type(exc).__name__)
        if not isinstance(exc, Exception):  # cancelled or interrupted: that must go on
            try:
                self._audit(entry, started)
            except AuditUnwritable as unwritable:
                log.error("%s", unwritable)
            return
        self._audit(entry, started, failure=exc)

    async def preflight(
        self, name: str | Operation, params: Mapping[str, Any] | BaseModel | None = None
    ) -> Guest | None:
        """Every check ``call`` makes before sending, except the person's confirmation.

        A face asks for confirmation only after this passed, so nobody is asked about a call
        that would be refused anyway. Refusals are audited like ``call``'s. Returns the
        target guest, if the operation has one.
        """
        op = get_operation(name) if isinstance(name, str) else name
        started = time.monotonic()
        entry = self._entry(op)
        try:
            parsed = parse_params(op, params)
            entry["params"] = parsed.model_dump(mode="json", exclude_none=True)
            if op.read_only:
                return None
            return await self._check_write(op, parsed, confirmed=True, entry=entry)
        except LabdeckError as exc:
            if self._audited(op):
                self._audit_failure(entry, exc, started)
            raise

    async def call(
        self,
        name: str | Operation,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        confirmed: bool = False,
        progress: ProgressFn | None = None,
    ) -> BaseModel:
        """Run one catalogue operation: parse, check the policy, run, audit."""
        op = get_operation(name) if isinstance(name, str) else name
        started = time.monotonic()
        entry = self._entry(op)
        try:
            parsed = parse_params(op, params)
            entry["params"] = parsed.model_dump(mode="json", exclude_none=True)
            if not op.read_only:
                await self._check_write(op, parsed, confirmed=confirmed, entry=entry)
            result = await op.handler(OpContext(self, progress), parsed)
        except BaseException as exc:
            if self._audited(op):
                self._audit_failure(entry, exc, started)
            raise
        if self._audited(op):
            dumped = result.model_dump(mode="json")
            entry["outcome"] = "ok"
            entry.update({k: dumped[k] for k in _AUDITED_RESULT_KEYS if dumped.get(k) is not None})
            self._audit(entry, started)
        return result

    async def _check_write(
        self, op: Operation, parsed: BaseModel, *, confirmed: bool, entry: dict[str, Any]
    ) -> Guest | None:
        """Checks that must pass before a write is sent: the policy's, then the audit log's
        (a refusal is said as such, and its line fails to be written like any other)."""
        guest = await self._check_policy(op, parsed, confirmed=confirmed, entry=entry)
        self._audit_ready(op)
        return guest

    async def _check_policy(
        self, op: Operation, parsed: BaseModel, *, confirmed: bool, entry: dict[str, Any]
    ) -> Guest | None:
        """Policy checks that must pass before a write is sent."""
        self.policy.check_operation(op, confirmed=confirmed, how_to_allow=self.how_to_allow)
        if op.backend == "truenas":
            # may read (share paths, group members) when a rule needs it; never writes
            target = await nas_target(op, parsed, self.policy.protected, lambda: self.truenas)
            if target is not None:
                entry["target"] = target.label
                self.policy.check_nas(op, target)
            return None
        vmid = getattr(parsed, "vmid", None)
        if not isinstance(vmid, int):
            return None
        guest = await self.find_guest(vmid, getattr(parsed, "node", None))
        entry["target"] = f"{guest.kind}/{guest.vmid}@{guest.node}"
        self.policy.check_guest(op, guest)
        return guest

    def _audit_ready(self, op: Operation) -> None:
        """Refuse a write whose audit line could not be written, before anything is sent.

        The line itself is written once the call ended (it holds the outcome); this checks
        the log can be opened for appending (a full disk can still fail it afterwards).
        """
        if self.audit is None:
            return
        try:
            self.audit.ensure_writable()
        except OSError as exc:
            raise audit_unwritable(self.audit.path, exc, f"{op.name} was not sent") from None

    def _audit(
        self, entry: dict[str, Any], started: float, *, failure: Exception | None = None
    ) -> None:
        """Write ``entry``; if it cannot be, the error says how the call ended (``failure``)."""
        if self.audit is None:
            return
        entry["duration_s"] = round(time.monotonic() - started, 3)
        try:
            self.audit.record(entry)
        except OSError as exc:
            raise audit_unwritable(self.audit.path, exc, unaudited(entry, failure)) from None


ProgressCallback = Callable[[float, str], Awaitable[None] | None]
