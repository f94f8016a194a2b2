"""The simulated cluster: seeded data plus the operations the API performs on it.

Pure logic, no I/O: every change goes through a method here and time comes
from the ``SimClock``. Not thread-safe; the simulator touches it from its event
loop only (tests use ``handle.call`` to mutate it).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable

from simulator.clock import SimClock
from simulator.errors import die, param_error
from simulator.guest_agent import GuestAgents
from simulator.guest_os import Machine, machine_of
from simulator.metrics import GuestMetrics, guest_metrics
from simulator.model import Guest, GuestKind, Node, Pool, Storage, Volume
from simulator.seed import DEFAULT_POOL_COUNT, build_cluster
from simulator.tasks import Task, TaskBook
from simulator.volumes import seed_backups

POWER_ACTIONS = ("start", "shutdown", "stop", "reboot")
# Simulated seconds each worker runs before the guest state changes.
TASK_SECONDS = {"start": 2.0, "shutdown": 4.0, "stop": 1.0, "reboot": 5.0}
FAIL_SECONDS = 0.5
THIN_USE = 0.45  # share of allocated thin disks actually written


class ClusterState:
    def __init__(self, *, cluster_name: str, node_count: int, guest_count: int, seed: int,
                 speed: float = 1.0, dynamic: bool = True,
                 pool_count: int = DEFAULT_POOL_COUNT) -> None:  # fmt: skip
        if node_count < 1:
            raise ValueError("a cluster needs at least one node")
        seeded = build_cluster(node_count, guest_count, seed, pool_count)
        self.cluster_name = cluster_name
        self.seed = seed
        self.dynamic = dynamic
        self.clock = SimClock(seeded.base_epoch, speed)
        self.nodes: dict[str, Node] = seeded.nodes
        self.guests: dict[int, Guest] = seeded.guests
        self.pools: dict[str, Pool] = seeded.pools
        self.storages: list[Storage] = seeded.storages
        self.config_version = 1
        self.tasks = TaskBook()
        self.agents = GuestAgents(seed)
        self._rng = random.Random(f"labdeck-runtime-{seed}")
        self._seed_task_history()
        self.backups: list[Volume] = seed_backups(self)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        return self.clock.now()

    def metric_time(self) -> float:
        """The time live metrics show: whole simulated seconds (uptimes are whole seconds
        anyway), so the requests within one second can share the numbers of 5,000 guests
        (``simulator.guest_sheet``); the base epoch when metrics are frozen."""
        return float(math.floor(self.clock.now())) if self.dynamic else float(self.clock.base_epoch)

    def advance(self) -> list[Task]:
        """Finish the tasks whose time has come; returns them."""
        return self.tasks.advance(self.now())

    # --------------------------------------------------------------- lookups

    def node(self, name: str) -> Node:
        found = self.nodes.get(name)
        if found is None:
            raise die(
                f"hostname lookup '{name}' failed - failed to get address info for: "
                f"{name}: Name or service not known"
            )
        return found

    def guest_on(self, node: str, kind: GuestKind, vmid: int) -> Guest:
        self.node(node)
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            folder = "qemu-server" if kind == "qemu" else "lxc"
            raise die(f"Configuration file 'nodes/{node}/{folder}/{vmid}.conf' does not exist")
        return guest

    def guests_on(self, node: str, kind: GuestKind | None = None) -> list[Guest]:
        return [g for g in self.guests.values()
                if g.node == node and (kind is None or g.kind == kind)]  # fmt: skip

    def metrics(self, guest: Guest) -> GuestMetrics:
        return guest_metrics(guest, self.metric_time(), self.now())

    def machine(self, guest: Guest) -> Machine:
        """The OS inside a running guest, as its guest agent and commands see it now."""
        return machine_of(guest, self.metrics(guest), self.now())

    def next_free_vmid(self) -> int:
        vmid = 100
        while vmid in self.guests:
            vmid += 1
        return vmid

    def storage(self, storage_id: str) -> Storage | None:
        return next((s for s in self.storages if s.storage == storage_id), None)

    def storage_used(self, allocations: dict[str, int]) -> Callable[[Storage, str], int]:
        """``used(storage, node)`` given per-node allocated guest disk bytes."""

        def used(storage: Storage, node: str) -> int:
            if storage.plugin == "lvmthin":
                extra = int(allocations.get(node, 0) * THIN_USE)
                return min(int(storage.total * 0.97), storage.used + extra)
            return storage.used

        return used

    def disk_allocations(self) -> dict[str, int]:
        out = dict.fromkeys(self.nodes, 0)
        for guest in self.guests.values():
            out[guest.node] = out.get(guest.node, 0) + guest.maxdisk
        return out

    # ----------------------------------------------------------------- tasks

    def _new_task(self, node: str, kind: str, ident: str, user: str, seconds: float,
                  start: float | None = None) -> Task:  # fmt: skip
        begin = self.now() if start is None else start
        host = self.nodes[node]
        return Task(
            node=node,
            pid=self._rng.randrange(1000, 4_000_000),
            pstart=int((begin - host.boot_time) * 100),
            starttime=int(begin),
            kind=kind,
            ident=ident,
            user=user,
            end_at=begin + seconds,
            exitstatus="OK",
        )

    def power(self, node: str, kind: GuestKind, vmid: int, action: str, user: str) -> Task:
        """Start a power worker; the guest changes when the task finishes."""
        if action not in POWER_ACTIONS:
            raise ValueError(action)
        guest = self.guest_on(node, kind, vmid)
        if guest.template and action == "start":  # refused before any worker starts
            raise die(f"you can't start a {'vm' if kind == 'qemu' else 'CT'} if it's a template")
        prefix = "qm" if kind == "qemu" else "vz"
        error = self._power_refusal(guest, action)
        seconds = FAIL_SECONDS if error else TASK_SECONDS[action]
        task = self._new_task(node, f"{prefix}{action}", str(vmid), user, seconds)
        begin, end = float(task.starttime), task.end_at
        if error:
            task.exitstatus = error
            task.log = [(end, f"TASK ERROR: {error}")]
        else:
            task.log = [(begin + seconds * i / 3, line)
                        for i, line in enumerate(_power_log(guest, action))]  # fmt: skip
            task.log.append((end, "TASK OK"))
            task.on_finish = self._power_effect(guest, action)
        return self.tasks.add(task)

    def _power_refusal(self, guest: Guest, action: str) -> str | None:
        if action == "start" and guest.running:
            return f"{guest.label} already running"
        if action != "start" and not guest.running:
            return f"{guest.label} not running"
        return None

    def _power_effect(self, guest: Guest, action: str) -> Callable[[float], None]:
        def apply(at: float) -> None:
            self.agents.reset(guest.vmid)
            guest.paused = False
            if action in ("start", "reboot"):
                guest.status = "running"
                guest.boot_time = at
                guest.pid = self._rng.randrange(1000, 4_000_000)
            else:
                guest.status = "stopped"
                guest.boot_time = 0.0
                guest.pid = 0

        return apply

    def _seed_task_history(self) -> None:
        rng = random.Random(f"labdeck-history-{self.seed}")
        base = float(self.clock.base_epoch)
        for node in self.nodes.values():
            when = base - rng.randrange(3 * 3600, 20 * 3600)
            task = self._new_task(node.name, "aptupdate", "", "root@pam", 9.0, start=when)
            task.log = [(when + 1, "starting apt-get update"),
                        (when + 8, "Reading package lists..."), (when + 9, "TASK OK")]  # fmt: skip
            task.finished = True
            self.tasks.add(task)
            for guest in self.guests_on(node.name)[:2]:
                when = base - rng.randrange(3600, 30 * 3600)
                took = rng.randrange(40, 400)
                task = self._new_task(node.name, "vzdump", str(guest.vmid), "root@pam",
                                      float(took), start=when)  # fmt: skip
                lines = _backup_log(guest, when, took)
                task.log = [(when + took * i / len(lines), line) for i, line in enumerate(lines)]
                task.finished = True
                self.tasks.add(task)

    # ----------------------------------------------------------------- pools

    def pool(self, poolid: str) -> Pool:
        found = self.pools.get(poolid)
        if found is None:
            raise die(f"pool '{poolid}' does not exist")
        return found

    def create_pool(self, poolid: str, comment: str | None) -> None:
        if poolid in self.pools:
            raise die(f"pool '{poolid}' already exists")
        self.pools[poolid] = Pool(poolid, comment)
        self.config_version += 1

    def update_pool(self, poolid: str, *, comment: str | None, vmids: Iterable[int],
                    storages: Iterable[str], delete: bool, allow_move: bool) -> None:  # fmt: skip
        pool = self.pool(poolid)
        vmids, storages = list(vmids), list(storages)
        for vmid in vmids:  # validate everything before changing anything
            guest = self.guests.get(vmid)
            if guest is None:
                raise param_error({"vms": f"no such VM ID '{vmid}'"})
            if not delete and guest.pool not in (None, poolid) and not allow_move:
                raise die(f"VM {vmid} belongs already to pool '{guest.pool}' "
                          "and allow-move is not set")  # fmt: skip
        for sid in storages:
            if self.storage(sid) is None:
                raise param_error({"storage": f"no such storage ID '{sid}'"})
        if comment is not None:
            pool.comment = comment
        for vmid in vmids:
            guest = self.guests[vmid]
            if delete:
                if guest.pool == poolid:
                    guest.pool = None
                pool.vmids.discard(vmid)
                continue
            if guest.pool is not None and guest.pool != poolid:
                self.pools[guest.pool].vmids.discard(vmid)
            guest.pool = poolid
            pool.vmids.add(vmid)
        for sid in storages:
            (pool.storages.discard if delete else pool.storages.add)(sid)
        self.config_version += 1

    def delete_pool(self, poolid: str) -> None:
        pool = self.pool(poolid)
        if pool.vmids or pool.storages:
            raise die(f"pool '{poolid}' is not empty")
        del self.pools[poolid]
        self.config_version += 1


def _power_log(guest: Guest, action: str) -> list[str]:
    if guest.kind == "lxc":
        return []  # container workers log nothing but their final line
    if action == "start":
        return [f"start VM {guest.vmid}: preparing disks", f"VM {guest.vmid} started"]
    if action == "shutdown":
        return ["requesting ACPI shutdown", "waiting for guest to power off"]
    if action == "reboot":
        return ["requesting reboot", "waiting for guest to power off", f"VM {guest.vmid} started"]
    return []


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _backup_log(guest: Guest, when: float, took: int) -> list[str]:
    archive = "vma.zst" if guest.kind == "qemu" else "tar.zst"
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(when))
    minutes, seconds = divmod(took, 60)
    return [
        f"INFO: starting new backup job: vzdump {guest.vmid} --storage nas-nfs --mode snapshot "
        f"--compress zstd --node {guest.node}",
        f"INFO: Starting Backup of VM {guest.vmid} ({guest.kind})",
        f"INFO: Backup started at {_stamp(when)}",
        f"INFO: VM Name: {guest.name}",
        f"INFO: creating vzdump archive "
        f"'/mnt/pve/nas-nfs/dump/vzdump-{guest.kind}-{guest.vmid}-{stamp}.{archive}'",
        f"INFO: Finished Backup of VM {guest.vmid} (00:{minutes:02d}:{seconds:02d})",
        f"INFO: Backup finished at {_stamp(when + took)}",
        "INFO: Backup job finished successfully",
        "TASK OK",
    ]
