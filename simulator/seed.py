"""Build the seeded homelab: same seed, same cluster, byte for byte."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from simulator.model import GIB, Drift, Guest, GuestKind, Node, Pool, Storage

BASE_EPOCH = 1_764_500_000  # late November 2025; the seed shifts it by up to a day

# name, kind, cores, memory MiB, disk GiB, tags, pool, ostype, running, guest agent
Blueprint = tuple[str, GuestKind, int, int, int, str, str | None, str, bool, bool]

CATALOGUE: tuple[Blueprint, ...] = (
    ("pihole", "lxc", 1, 512, 8, "dns;infra", "prod", "debian", True, False),
    ("nextcloud", "qemu", 4, 8192, 250, "prod;web", "prod", "l26", True, True),
    ("jellyfin", "lxc", 4, 4096, 32, "media", "media", "debian", True, False),
    ("gitea", "lxc", 2, 2048, 50, "dev;web", "lab", "debian", True, False),
    ("k3s-master", "qemu", 4, 8192, 64, "k8s;lab", "lab", "l26", True, True),
    ("k3s-worker-1", "qemu", 4, 8192, 64, "k8s;lab", "lab", "l26", True, True),
    ("k3s-worker-2", "qemu", 4, 8192, 64, "k8s;lab", "lab", "l26", True, True),
    ("home-assistant", "qemu", 2, 4096, 32, "iot;prod", "prod", "l26", True, True),
    ("grafana", "lxc", 2, 2048, 16, "monitoring", "prod", "debian", True, False),
    ("prometheus", "lxc", 2, 4096, 64, "monitoring", "prod", "debian", True, False),
    ("sonarr", "lxc", 2, 2048, 16, "media", "media", "ubuntu", True, False),
    ("radarr", "lxc", 2, 2048, 16, "media", "media", "ubuntu", True, False),
    ("vaultwarden", "lxc", 1, 1024, 8, "prod;security", "prod", "debian", True, False),
    ("traefik", "lxc", 1, 1024, 8, "prod;proxy;web", "prod", "alpine", True, False),
    ("opnsense", "qemu", 2, 4096, 32, "network;prod", None, "other", True, False),
    ("docker-host", "qemu", 8, 16384, 200, "docker", "lab", "l26", True, True),
    ("windows-11", "qemu", 4, 8192, 128, "desktop", None, "win11", False, True),
    ("minecraft", "lxc", 4, 6144, 40, "games", None, "ubuntu", False, False),
    ("ubuntu-template", "qemu", 2, 2048, 32, "template", None, "l26", False, True),
    ("paperless-ngx", "lxc", 2, 2048, 32, "docs", "prod", "debian", True, False),
    ("immich", "qemu", 4, 8192, 100, "media;photos", "media", "l26", True, True),
    ("uptime-kuma", "lxc", 1, 512, 4, "monitoring", "prod", "alpine", True, False),
    ("wireguard", "lxc", 1, 256, 2, "network;vpn", None, "alpine", False, False),
    ("kali-lab", "qemu", 2, 4096, 64, "security", "lab", "l26", False, False),
    ("postgres", "lxc", 2, 4096, 64, "db;prod", "prod", "debian", True, False),
    ("mqtt-broker", "lxc", 1, 512, 4, "iot", "prod", "alpine", True, False),
    ("zigbee2mqtt", "lxc", 1, 1024, 4, "iot", "prod", "debian", True, False),
    ("node-red", "lxc", 1, 1024, 8, "iot", "lab", "debian", False, False),
    ("syncthing", "lxc", 1, 1024, 8, "backup", None, "debian", True, False),
    ("pbs", "qemu", 4, 8192, 64, "backup;infra", None, "l26", True, True),
)
TEMPLATE_NAME = "ubuntu-template"

# For clusters bigger than the catalogue: generic roles, numbered.
ROLES = ("web", "app", "api", "db", "cache", "worker", "ci-runner", "build", "vpn", "proxy",
         "monitor", "logs", "queue", "search", "dev")  # fmt: skip
ROLE_TAGS = ("", "prod", "lab", "prod;web", "dev", "k8s", "backup", "monitoring")
POOLS = (
    ("prod", "Services the household depends on"),
    ("lab", "Experiments; safe to break"),
    ("media", "Streaming and photo library"),
)
DEFAULT_POOL_COUNT = len(POOLS)
# Pools past the household three are named <team>-<project>-<env>, as teams name them.
POOL_TEAMS = ("platform", "payments", "data", "web", "mobile", "security", "ml", "infra", "search",
              "growth", "billing", "identity", "support", "research", "video", "ops")  # fmt: skip
POOL_PROJECTS = ("api", "frontend", "etl", "warehouse", "ci", "k8s", "cache", "gateway", "auth",
                 "reports", "ingest", "models", "queue", "docs", "storage")  # fmt: skip
POOL_ENVS = {"prod": "production", "staging": "staging", "dev": "development", "test": "testing",
             "qa": "QA"}  # fmt: skip
CPU_MODELS = (
    ("AMD Ryzen 9 5950X 16-Core Processor", "3400.000", 16, 1),
    ("Intel(R) Core(TM) i5-12500", "3000.000", 12, 1),
    ("Intel(R) Xeon(R) E-2278G CPU @ 3.40GHz", "3400.000", 16, 1),
    ("AMD EPYC 7302P 16-Core Processor", "3000.000", 32, 1),
)
KERNEL_RELEASE = "6.17.2-1-pve"


@dataclass
class SeededCluster:
    base_epoch: int
    nodes: dict[str, Node]
    guests: dict[int, Guest]
    pools: dict[str, Pool]
    storages: list[Storage]


def make_drift(rng: random.Random, busy: float) -> Drift:
    return Drift(
        cpu_base=busy * rng.uniform(0.3, 1.0),
        cpu_swing=busy * rng.uniform(0.1, 0.6),
        mem_fraction=rng.uniform(0.3, 0.85),
        periods=(rng.uniform(240, 900), rng.uniform(60, 240), rng.uniform(15, 60)),
        phases=(rng.uniform(0, math.tau), rng.uniform(0, math.tau), rng.uniform(0, math.tau)),
        net_in_rate=rng.uniform(2e3, 4e5),
        net_out_rate=rng.uniform(1e3, 2e5),
        disk_read_rate=rng.uniform(1e3, 3e5),
        disk_write_rate=rng.uniform(1e3, 2e5),
    )


def _node(rng: random.Random, index: int, base: int) -> Node:
    model, mhz, threads, sockets = CPU_MODELS[rng.randrange(len(CPU_MODELS))]
    return Node(
        name=f"pve{index}",
        nodeid=index,
        ip=f"10.10.10.{10 + index}" if index < 240 else f"10.10.{index // 200}.{index % 200}",
        maxcpu=threads,
        sockets=sockets,
        cpu_model=model,
        cpu_mhz=mhz,
        maxmem=rng.choice((64, 96, 128)) * GIB,
        boot_time=base - rng.randrange(3 * 86400, 60 * 86400),
        rootfs_total=rng.choice((94, 98)) * GIB,
        rootfs_used=int(rng.uniform(6, 24) * GIB),
        swap_total=8 * GIB,
        kernel=KERNEL_RELEASE,
        drift=make_drift(rng, 0.05),
    )


def _blueprints(rng: random.Random, count: int) -> list[Blueprint]:
    chosen = list(CATALOGUE[:count])
    counters = dict.fromkeys(ROLES, 0)
    while len(chosen) < count:
        role = ROLES[rng.randrange(len(ROLES))]
        counters[role] += 1
        kind: GuestKind = "qemu" if rng.random() < 0.5 else "lxc"
        tags = ROLE_TAGS[rng.randrange(len(ROLE_TAGS))]
        pool = rng.choice((None, None, "prod", "lab", "media"))
        ostype = "l26" if kind == "qemu" else rng.choice(("debian", "ubuntu", "alpine"))
        chosen.append((
            f"{role}-{counters[role]}", kind, rng.choice((1, 2, 4)),
            rng.choice((512, 1024, 2048, 4096)), rng.choice((8, 16, 32, 64)),
            tags, pool, ostype, rng.random() < 0.7, kind == "qemu" and rng.random() < 0.6,
        ))  # fmt: skip
    return chosen


def _mac(rng: random.Random) -> str:
    tail = ":".join(f"{rng.randrange(256):02X}" for _ in range(3))
    return f"BC:24:11:{tail}"  # Proxmox's own OUI, as PVE generates


def build_cluster(
    node_count: int, guest_count: int, seed: int, pool_count: int = DEFAULT_POOL_COUNT
) -> SeededCluster:
    """The cluster of a seed. ``pool_count`` draws on RNGs of its own, so it changes which
    pools exist and who is in them, never the nodes, guests or storages themselves."""
    if pool_count < 0:
        raise ValueError(f"the pool count must be 0 or more, not {pool_count}")
    rng = random.Random(seed)
    base = BASE_EPOCH + rng.randrange(0, 86400)
    nodes = {f"pve{i}": _node(rng, i, base) for i in range(1, node_count + 1)}
    node_names = list(nodes)
    pools = {pid: Pool(pid, comment) for pid, comment in _pool_specs(seed, pool_count)}
    place = _pool_placer(seed, list(pools))
    guests: dict[int, Guest] = {}
    for offset, blueprint in enumerate(_blueprints(rng, guest_count)):
        name, kind, cores, mem, disk, tags, drawn, ostype, running, agent = blueprint
        pool = place(offset, drawn)
        vmid = 100 + offset
        template = name == TEMPLATE_NAME
        node_name = node_names[(offset + rng.randrange(2)) % len(node_names)]
        guest = Guest(
            vmid=vmid, kind=kind, node=node_name, name=name, cores=cores, memory_mib=mem,
            disk_gib=disk, ostype=ostype, tags=tags, template=template, agent=agent,
            onboot=running and rng.random() < 0.8,
            description=f"{name} - managed by labdeck demo" if rng.random() < 0.4 else "",
            mac=_mac(rng), ctime=base - rng.randrange(30 * 86400, 700 * 86400),
            uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            drift=make_drift(rng, rng.uniform(0.02, 0.4)),
            disk_fraction=rng.uniform(0.15, 0.7), pool=pool,
        )  # fmt: skip
        if running and not template:
            guest.status = "running"
            node_boot = nodes[node_name].boot_time
            guest.boot_time = max(node_boot + 60, base - rng.randrange(600, 40 * 86400))
            guest.pid = rng.randrange(1000, 4_000_000)
        guests[vmid] = guest
        if pool is not None:
            pools[pool].vmids.add(vmid)
    storages = _storages(rng, nodes, guests)
    _add_pool_storages(seed, pools, storages)
    return SeededCluster(base, nodes, guests, pools, storages)


def _pool_specs(seed: int, count: int) -> list[tuple[str, str | None]]:
    """Ids and comments of ``count`` pools: the household ones first, then team pools in a
    seeded order (numbered once every team/project/env name is taken)."""
    specs: list[tuple[str, str | None]] = list(POOLS[:count])
    rng = random.Random(f"labdeck-pool-names-{seed}")
    names = list(itertools.product(POOL_TEAMS, POOL_PROJECTS, POOL_ENVS))
    rng.shuffle(names)
    for index in range(count - len(specs)):
        team, project, env = names[index % len(names)]
        round_ = index // len(names)
        poolid = f"{team}-{project}-{env}" + (f"-{round_ + 1}" if round_ else "")
        specs.append((poolid, _pool_comment(rng, team, project, env)))
    return specs


def _pool_comment(rng: random.Random, team: str, project: str, env: str) -> str | None:
    """What an admin writes in a pool's comment field (some leave it empty)."""
    stage = POOL_ENVS[env]
    templates = (
        None,
        f"{team.capitalize()} team: {project} ({stage})",
        f"{stage[0].upper()}{stage[1:]} {project} of the {team} team",
        f"{project} {env}; owner {team}@example.com",
    )
    return templates[rng.choices(range(len(templates)), weights=(2, 5, 3, 2))[0]]


def _pool_placer(seed: int, poolids: list[str]) -> Callable[[int, str | None], str | None]:
    """Which pool a guest joins (at most one, as in PVE), given the household pool its
    blueprint drew.

    With up to the three household pools a guest keeps the pool it drew if that pool
    exists, which is exactly the cluster of the default settings. With more, the numbered
    role guests past the catalogue that drew a pool are spread over all pools with Zipf-like
    weights in a seeded order, so a few pools are big and most are small; guests that drew
    none stay outside every pool, and the catalogue guests keep their household pools.
    """
    household = set(poolids[:DEFAULT_POOL_COUNT])
    if len(poolids) <= DEFAULT_POOL_COUNT:
        return lambda offset, drawn: drawn if drawn in household else None
    rng = random.Random(f"labdeck-pool-members-{seed}")
    ranked = list(poolids)
    rng.shuffle(ranked)
    cum_weights = list(itertools.accumulate(1 / rank for rank in range(1, len(ranked) + 1)))

    def place(offset: int, drawn: str | None) -> str | None:
        if drawn is None or offset < len(CATALOGUE):
            return drawn
        return rng.choices(ranked, cum_weights=cum_weights)[0]

    return place


def _add_pool_storages(seed: int, pools: dict[str, Pool], storages: list[Storage]) -> None:
    """Storages as pool members: the NAS in the media pool, and now and then a shared or
    thin storage in a team pool (a storage may be in several pools, unlike a guest)."""
    if "media" in pools:
        pools["media"].storages.add("nas-nfs")
    rng = random.Random(f"labdeck-pool-storages-{seed}")
    candidates = [s.storage for s in storages if s.plugin in ("nfs", "lvmthin")]
    for poolid in list(pools)[DEFAULT_POOL_COUNT:]:
        if rng.random() < 0.12:
            pools[poolid].storages.add(rng.choice(candidates))


def _storages(
    rng: random.Random, nodes: dict[str, Node], guests: dict[int, Guest]
) -> list[Storage]:
    allocated: dict[str, int] = dict.fromkeys(nodes, 0)
    for guest in guests.values():
        allocated[guest.node] += guest.maxdisk
    node_names = tuple(nodes)
    storages = [
        Storage("local", "dir", "backup,iso,vztmpl", False, 94 * GIB,
                int(rng.uniform(12, 40) * GIB), node_names),
        Storage("nas-nfs", "nfs", "backup,images,iso", True, 16 * 1024 * GIB,
                int(rng.uniform(5.5, 9.5) * 1024 * GIB), node_names),
    ]  # fmt: skip
    thin_total = max([int(1.6 * size) for size in allocated.values()] + [1024 * GIB])
    storages.insert(
        1, Storage("local-lvm", "lvmthin", "images,rootdir", False, thin_total,
                   int(rng.uniform(4, 12) * GIB), node_names),
    )  # fmt: skip
    return storages
