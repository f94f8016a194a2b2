"""The operating system inside a simulated QEMU guest, as its guest agent sees it.

Each guest gets a distribution (seeded by its name and ostype), a hostname, a
primary network interface and a set of running services. ``Machine`` is a
snapshot of these facts at one simulated moment; the guest agent answers
``get-osinfo`` and ``network-get-interfaces`` from it, and the simulated
commands (``simulator.guest_commands``) read the same snapshot, so ``cat
/etc/os-release`` and ``ip -br a`` agree with the agent's structured answers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal

from simulator.metrics import GuestMetrics
from simulator.model import GIB, MIB, Guest

Family = Literal["linux", "windows"]


@dataclass(frozen=True)
class Distro:
    """Release facts of one operating system (what ``os-release`` and qemu-ga report)."""

    key: str
    family: Family
    os_id: str
    name: str
    pretty_name: str
    version: str
    version_id: str
    codename: str
    kernel_release: str
    kernel_version: str
    nic: str  # name of the primary network interface
    root_device: str
    root_fs: str
    sh_is_dash: bool  # /bin/sh is dash (Debian family) rather than bash
    ssh_unit: str
    cron_unit: str
    home_url: str


DEBIAN_12 = Distro(
    key="debian12", family="linux", os_id="debian", name="Debian GNU/Linux",
    pretty_name="Debian GNU/Linux 12 (bookworm)", version="12 (bookworm)", version_id="12",
    codename="bookworm", kernel_release="6.1.0-28-amd64",
    kernel_version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", nic="ens18",
    root_device="/dev/sda1", root_fs="ext4", sh_is_dash=True, ssh_unit="ssh", cron_unit="cron",
    home_url="https://www.debian.org/",
)  # fmt: skip
UBUNTU_2404 = Distro(
    key="ubuntu2404", family="linux", os_id="ubuntu", name="Ubuntu",
    pretty_name="Ubuntu 24.04.1 LTS", version="24.04.1 LTS (Noble Numbat)", version_id="24.04",
    codename="noble", kernel_release="6.8.0-49-generic",
    kernel_version="#49-Ubuntu SMP PREEMPT_DYNAMIC Mon Nov  4 02:06:24 UTC 2024", nic="ens18",
    root_device="/dev/mapper/ubuntu--vg-ubuntu--lv", root_fs="ext4", sh_is_dash=True,
    ssh_unit="ssh", cron_unit="cron", home_url="https://www.ubuntu.com/",
)  # fmt: skip
ROCKY_9 = Distro(
    key="rocky9", family="linux", os_id="rocky", name="Rocky Linux",
    pretty_name="Rocky Linux 9.5 (Blue Onyx)", version="9.5 (Blue Onyx)", version_id="9.5",
    codename="", kernel_release="5.14.0-503.14.1.el9_5.x86_64",
    kernel_version="#1 SMP PREEMPT_DYNAMIC Fri Nov 15 12:04:32 UTC 2024", nic="eth0",
    root_device="/dev/mapper/rl-root", root_fs="xfs", sh_is_dash=False, ssh_unit="sshd",
    cron_unit="crond", home_url="https://rockylinux.org/",
)  # fmt: skip
WINDOWS_11 = Distro(
    key="win11", family="windows", os_id="mswindows", name="Microsoft Windows",
    pretty_name="Windows 11 Pro", version="Microsoft Windows 11", version_id="11",
    codename="", kernel_release="26100", kernel_version="10.0", nic="Ethernet",
    root_device="C:", root_fs="NTFS", sh_is_dash=False, ssh_unit="", cron_unit="",
    home_url="",
)  # fmt: skip

LINUX_DISTROS = (DEBIAN_12, UBUNTU_2404, ROCKY_9)
# Catalogue guests whose distribution is obvious from what they are.
DISTRO_BY_NAME = {
    "nextcloud": DEBIAN_12, "k3s-master": UBUNTU_2404, "k3s-worker-1": UBUNTU_2404,
    "k3s-worker-2": UBUNTU_2404, "home-assistant": DEBIAN_12, "docker-host": UBUNTU_2404,
    "ubuntu-template": UBUNTU_2404, "immich": UBUNTU_2404, "pbs": DEBIAN_12,
    "kali-lab": DEBIAN_12,
}  # fmt: skip

# Services running in a guest, beyond the base set, by name prefix or tag.
SERVICES_BY_PREFIX = {
    "nextcloud": ("nginx", "php8.2-fpm", "redis-server", "mariadb"),
    "k3s-master": ("k3s", "containerd"), "k3s-worker": ("k3s-agent", "containerd"),
    "home-assistant": ("docker", "containerd"), "docker-host": ("docker", "containerd"),
    "immich": ("docker", "containerd"), "pbs": ("proxmox-backup", "proxmox-backup-proxy"),
    "web": ("nginx",), "app": ("gunicorn",), "api": ("nginx", "gunicorn"),
    "db": ("postgresql",), "cache": ("redis-server",), "worker": ("celery",),
    "ci-runner": ("gitlab-runner", "docker"), "build": ("docker",), "vpn": ("wg-quick@wg0",),
    "proxy": ("haproxy",), "monitor": ("prometheus-node-exporter",), "logs": ("rsyslog",),
    "queue": ("rabbitmq-server",), "search": ("opensearch",),
}  # fmt: skip
SERVICES_BY_TAG = {"web": ("nginx",), "k8s": ("containerd",), "monitoring": ("prometheus",)}
AGENT_SERVICE = "qemu-guest-agent"


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def distro_for(guest: Guest) -> Distro:
    if guest.ostype.startswith("win"):
        return WINDOWS_11
    known = DISTRO_BY_NAME.get(guest.name)
    if known is not None:
        return known
    return LINUX_DISTROS[_stable(guest.name) % len(LINUX_DISTROS)]


def services_for(guest: Guest, distro: Distro) -> frozenset[str]:
    if distro.family == "windows":
        return frozenset({"QEMU-GA", "WinRM", "Dnscache"})
    names = {distro.ssh_unit, distro.cron_unit, "systemd-journald", "systemd-timesyncd",
             AGENT_SERVICE}  # fmt: skip
    for prefix, extra in SERVICES_BY_PREFIX.items():
        if guest.name == prefix or guest.name.startswith(prefix + "-"):
            names.update(extra)
    for tag in guest.tags.split(";"):
        names.update(SERVICES_BY_TAG.get(tag, ()))
    return frozenset(names)


def guest_ipv4(vmid: int) -> tuple[str, int, str]:
    """Address, prefix length and gateway of the guest on the lab bridge."""
    index = max(0, vmid - 100)
    third = 20 + index // 240
    return f"10.10.{third}.{10 + index % 240}", 24, f"10.10.{third}.1"


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address the kernel derives from a MAC."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{(eui[i] << 8) | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


@dataclass(frozen=True)
class Address:
    family: Literal["ipv4", "ipv6"]
    address: str
    prefix: int


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    addresses: tuple[Address, ...]
    rx_bytes: int
    tx_bytes: int
    loopback: bool = False


@dataclass(frozen=True)
class Machine:
    """One guest's OS facts at one simulated moment."""

    vmid: int
    hostname: str
    distro: Distro
    services: frozenset[str]
    now: float  # simulated epoch seconds
    uptime: int
    cores: int
    cpu: float  # fraction of all cores in use
    mem_total: int  # bytes the kernel sees
    mem_used: int
    swap_total: int
    disk_total: int
    disk_used: int
    interfaces: tuple[Interface, ...]
    gateway: str

    @property
    def load(self) -> tuple[float, float, float]:
        load = self.cpu * self.cores
        return round(load, 2), round(load * 0.92 + 0.03, 2), round(load * 0.85 + 0.05, 2)


def machine_of(guest: Guest, metrics: GuestMetrics, now: float) -> Machine:
    distro = distro_for(guest)
    address, prefix, gateway = guest_ipv4(guest.vmid)
    mac = guest.mac.lower()
    nic = Interface(
        name=distro.nic, mac=mac,
        addresses=(Address("ipv4", address, prefix), Address("ipv6", link_local(mac), 64)),
        rx_bytes=metrics.netin, tx_bytes=metrics.netout,
    )  # fmt: skip
    loopback_traffic = 4096 + metrics.uptime * 180
    lo = Interface(
        name="lo" if distro.family == "linux" else "Loopback Pseudo-Interface 1",
        mac="00:00:00:00:00:00",
        addresses=(Address("ipv4", "127.0.0.1", 8), Address("ipv6", "::1", 128)),
        rx_bytes=loopback_traffic, tx_bytes=loopback_traffic, loopback=True,
    )  # fmt: skip
    mem_total = guest.maxmem - min(guest.maxmem // 30, 256 * MIB)  # kernel and firmware keep some
    return Machine(
        vmid=guest.vmid, hostname=guest.name, distro=distro, services=services_for(guest, distro),
        now=now, uptime=metrics.uptime, cores=guest.cores, cpu=metrics.cpu,
        mem_total=mem_total, mem_used=min(metrics.mem, mem_total),
        swap_total=guest.swap_mib * MIB if distro.family == "linux" else 0,
        disk_total=guest.disk_gib * GIB, disk_used=int(guest.disk_gib * GIB * guest.disk_fraction),
        interfaces=(lo, nic), gateway=gateway,
    )  # fmt: skip


# ------------------------------------------------------------ agent answers


def osinfo(machine: Machine) -> dict[str, Any]:
    """``guest-get-osinfo`` as qemu-ga reports it (keys only present when known)."""
    distro = machine.distro
    out: dict[str, Any] = {
        "id": distro.os_id, "name": distro.name, "pretty-name": distro.pretty_name,
        "version": distro.version, "version-id": distro.version_id,
        "kernel-release": distro.kernel_release, "kernel-version": distro.kernel_version,
        "machine": "x86_64" if distro.family == "linux" else "x86-64",
    }  # fmt: skip
    if distro.family == "windows":
        out["variant"] = out["variant-id"] = "client"
    return out


def _packets(size: int, average: int) -> int:
    return size // average if size else 0


def network_interfaces(machine: Machine) -> list[dict[str, Any]]:
    """``guest-network-get-interfaces``: every interface with addresses and counters."""
    out: list[dict[str, Any]] = []
    for iface in machine.interfaces:
        average = 600 if iface.loopback else 900
        out.append({
            "name": iface.name, "hardware-address": iface.mac,
            "ip-addresses": [
                {"ip-address-type": a.family, "ip-address": a.address, "prefix": a.prefix}
                for a in iface.addresses
            ],
            "statistics": {
                "rx-bytes": iface.rx_bytes, "rx-packets": _packets(iface.rx_bytes, average),
                "rx-errs": 0, "rx-dropped": 0 if iface.loopback else iface.rx_bytes // 9_000_000,
                "tx-bytes": iface.tx_bytes, "tx-packets": _packets(iface.tx_bytes, average),
                "tx-errs": 0, "tx-dropped": 0,
            },
        })  # fmt: skip
    return out


def os_release(distro: Distro) -> str:
    """``/etc/os-release`` of a Linux distribution, matching ``osinfo``."""
    lines = [
        f'PRETTY_NAME="{distro.pretty_name}"', f'NAME="{distro.name}"',
        f'VERSION_ID="{distro.version_id}"', f'VERSION="{distro.version}"',
    ]  # fmt: skip
    if distro.codename:
        lines.append(f"VERSION_CODENAME={distro.codename}")
    lines.append(f"ID={distro.os_id}")
    if distro.os_id == "ubuntu":
        lines.append("ID_LIKE=debian")
    elif distro.os_id == "rocky":
        lines.append('ID_LIKE="rhel centos fedora"')
    lines.append(f'HOME_URL="{distro.home_url}"')
    return "\n".join(lines) + "\n"
