"""Programs in the simulated guests: the shared types, files and system-facts programs.

Each program is a pure function of a ``Session`` (the guest's ``Machine`` plus its
mutable service states), its arguments and its stdin; it returns an ``Outcome`` with
the text written, the exit code and how many simulated seconds it ran. Options we
do not simulate are refused with an explicit "not simulated" message rather than
silently ignored, so nobody mistakes the simulator's limits for a guest's answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from simulator.guest_os import Interface, Machine, os_release

# Output one program may generate (more than the agent keeps, see guest_agent).
STREAM_LIMIT = 1024 * 1024
BASE_SECONDS = 0.004  # a short-lived program runs a few simulated milliseconds

More = Literal["", "big", "endless"]


@dataclass(frozen=True)
class Stream:
    """Text passed between programs. ``more``: the text is only a prefix of a
    ``big`` (finite, over ``STREAM_LIMIT``) or ``endless`` output."""

    text: str = ""
    more: More = ""


@dataclass(frozen=True)
class Outcome:
    stdout: str = ""
    stderr: str = ""
    exitcode: int = 0
    seconds: float = BASE_SECONDS
    more: More = ""

    @property
    def output(self) -> Stream:
        return Stream(self.stdout, self.more)


@dataclass
class Session:
    """One exec: the guest's facts and the services running in it (changed by systemctl)."""

    machine: Machine
    services: set[str] = field(default_factory=set)
    installed: frozenset[str] = frozenset()


Program = Callable[[Session, list[str], Stream], Outcome]


def fail(program: str, message: str, code: int = 1) -> Outcome:
    return Outcome(stderr=f"{program}: {message}\n", exitcode=code)


def not_simulated(program: str, what: str) -> Outcome:
    return fail(program, f"{what} is not simulated", 2)


# ------------------------------------------------------------------- files


def files(machine: Machine) -> dict[str, str]:
    distro, (_, nic) = machine.distro, machine.interfaces
    address = nic.addresses[0].address
    rest = machine.uptime % 86400
    out = {
        "/etc/os-release": os_release(distro),
        "/usr/lib/os-release": os_release(distro),
        "/etc/hostname": machine.hostname + "\n",
        "/etc/hosts": f"127.0.0.1\tlocalhost\n{address}\t{machine.hostname}\n",
        "/etc/resolv.conf": f"nameserver {machine.gateway}\nsearch lab.home.arpa\n",
        "/proc/loadavg": "{:.2f} {:.2f} {:.2f} 1/211 {}\n".format(*machine.load, 4000 + rest % 900),
        "/proc/uptime": f"{machine.uptime}.42 {machine.uptime * machine.cores * 0.9:.2f}\n",
        "/proc/version": f"Linux version {distro.kernel_release} {distro.kernel_version}\n",
    }
    if distro.os_id == "debian":
        out["/etc/debian_version"] = "12.8\n"
    elif distro.os_id == "ubuntu":
        out["/etc/debian_version"] = "trixie/sid\n"
    elif distro.os_id == "rocky":
        out["/etc/redhat-release"] = out["/etc/rocky-release"] = f"{distro.pretty_name}\n"
    return out


DIRECTORIES = {
    "/": ("bin", "boot", "dev", "etc", "home", "lib", "lib64", "media", "mnt", "opt", "proc",
          "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var"),
    "/root": (), "/tmp": (), "/home": ("admin",), "/opt": (), "/srv": (), "/mnt": (),  # noqa: S108
    "/var": ("backups", "cache", "lib", "local", "lock", "log", "mail", "opt", "run", "spool",
             "tmp"),
    "/proc": ("loadavg", "uptime", "version"),
}  # fmt: skip


def _dir_listing(machine: Machine, path: str) -> tuple[str, ...] | None:
    path = path.rstrip("/") or "/"
    if path == "/etc":
        names = {p.rsplit("/", 1)[1] for p in files(machine) if p.startswith("/etc/")}
        return tuple(sorted(names | {"passwd", "group", "fstab", "ssh", "systemd"}))
    return DIRECTORIES.get(path)


def read_file(session: Session, program: str, path: str, stdin: Stream) -> Outcome:
    if path == "-":
        return Outcome(stdout=stdin.text, more=stdin.more)
    content = files(session.machine).get(path)
    if content is not None:
        return Outcome(stdout=content)
    if _dir_listing(session.machine, path) is not None:
        return fail(program, f"{path}: Is a directory")
    return fail(program, f"{path}: No such file or directory")


def concat(parts: list[Outcome]) -> Outcome:
    more: More = next((p.more for p in parts if p.more), "")
    code = max((p.exitcode for p in parts), default=0)
    return Outcome("".join(p.stdout for p in parts), "".join(p.stderr for p in parts), code,
                   more=more)  # fmt: skip


def cat(session: Session, args: list[str], stdin: Stream) -> Outcome:
    if any(a.startswith("-") and a != "-" for a in args):
        return not_simulated("cat", "an option")
    return concat([read_file(session, "cat", path, stdin) for path in args or ["-"]])


def ls(session: Session, args: list[str], stdin: Stream) -> Outcome:
    flags = "".join(a[1:] for a in args if a.startswith("-") and a != "-")
    if set(flags) - {"1", "a"}:
        return not_simulated("ls", f"option -{flags}")
    paths = [a for a in args if not a.startswith("-")] or ["/"]
    parts: list[Outcome] = []
    for path in paths:
        listing = _dir_listing(session.machine, path)
        if listing is not None:
            names = ((".", "..") if "a" in flags else ()) + listing
            header = f"{path}:\n" if len(paths) > 1 else ""
            parts.append(Outcome(header + "".join(f"{n}\n" for n in names)))
        elif path in files(session.machine):
            parts.append(Outcome(f"{path}\n"))
        else:
            parts.append(fail("ls", f"cannot access '{path}': No such file or directory", 2))
    return concat(parts)


# ----------------------------------------------------------- system facts


def uname(session: Session, args: list[str], stdin: Stream) -> Outcome:
    machine, distro = session.machine, session.machine.distro
    fields = {"s": "Linux", "n": machine.hostname, "r": distro.kernel_release,
              "v": distro.kernel_version, "m": "x86_64", "o": "GNU/Linux"}  # fmt: skip
    wanted: set[str] = set()
    for arg in args:
        if arg == "--all":
            wanted.add("a")
        elif not arg.startswith("-") or arg.startswith("--"):
            return fail("uname", f"extra operand '{arg}'\nTry 'uname --help' for more information.")
        else:
            for letter in arg[1:]:
                if letter not in "asnrvmo":
                    return fail("uname", f"invalid option -- '{letter}'\n"
                                "Try 'uname --help' for more information.")  # fmt: skip
                wanted.add(letter)
    if "a" in wanted:
        wanted = set(fields)
    order = [fields[k] for k in "snrvmo" if k in (wanted or {"s"})]
    return Outcome(" ".join(order) + "\n")


def hostname(session: Session, args: list[str], stdin: Stream) -> Outcome:
    machine = session.machine
    if args in ([], ["-s"], ["-f"], ["--fqdn"]):
        return Outcome(machine.hostname + "\n")
    if args == ["-I"]:
        v4 = [a.address for i in machine.interfaces if not i.loopback for a in i.addresses
              if a.family == "ipv4"]  # fmt: skip
        return Outcome(" ".join(v4) + " \n")
    return not_simulated("hostname", "setting the name or these options")


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    clock = f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
    if days:
        return f"{days} day{'s' if days != 1 else ''}, {clock}"
    return clock


def uptime(session: Session, args: list[str], stdin: Stream) -> Outcome:
    machine = session.machine
    if args == ["-p"]:
        days, rest = divmod(machine.uptime, 86400)
        parts = [(days, "day"), (rest // 3600, "hour"), (rest % 3600 // 60, "minute")]
        text = ", ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)
        return Outcome(f"up {text or '0 minutes'}\n")
    if args:
        return not_simulated("uptime", "this option")
    now = time.strftime("%H:%M:%S", time.gmtime(machine.now))
    load = ", ".join(f"{x:.2f}" for x in machine.load)
    return Outcome(f" {now} up {_span(machine.uptime)},  0 users,  load average: {load}\n")


def _human(size: float) -> str:
    """GNU ``-h`` sizes: powers of 1024, rounded up, one decimal below 10."""
    units = "BKMGTP"
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    if index == 0:
        return f"{int(size)}"
    if size < 10:
        return f"{math.ceil(size * 10) / 10:.1f}{units[index]}"
    return f"{math.ceil(size)}{units[index]}"


def _table(rows: list[list[str]], minimum: list[int], left: int = 1) -> str:
    widths = [max(minimum[i], *(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < left or i == len(row) - 1 else cell.rjust(widths[i])
                 for i, cell in enumerate(row)]  # fmt: skip
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def df(session: Session, args: list[str], stdin: Stream) -> Outcome:
    machine = session.machine
    human = "-h" in args
    paths = [a for a in args if not a.startswith("-")]
    if any(a.startswith("-") and a != "-h" for a in args):
        return not_simulated("df", "this option")
    for path in paths:
        if _dir_listing(machine, path) is None and path not in files(machine):
            return fail("df", f"{path}: No such file or directory")
    run = machine.mem_total // 10
    mounts = [(machine.distro.root_device, machine.disk_total, machine.disk_used, "/")]
    if not paths:
        mounts = [("udev", machine.mem_total // 2, 0, "/dev"), ("tmpfs", run, 1_200_000, "/run"),
                  *mounts, ("tmpfs", machine.mem_total // 2, 0, "/dev/shm"),  # noqa: S108
                  ("tmpfs", 5 * 1024 * 1024, 0, "/run/lock")]  # fmt: skip
    size_head = "Size" if human else "1K-blocks"
    rows = [["Filesystem", size_head, "Used", "Avail", "Use%", "Mounted on"]]
    for device, total, used, where in mounts:
        reserved = total // 20 if where == "/" else 0  # ext4 keeps 5 % for root
        avail = max(0, total - reserved - used)
        share = f"{math.ceil(100 * used / (used + avail)) if used else 0}%"
        show = _human if human else (lambda n: str(n // 1024))
        rows.append([device, show(total), show(used), show(avail), share, where])
    return Outcome(_table(rows, [14, 5 if human else 9, 5, 5, 4, 0]))


def free(session: Session, args: list[str], stdin: Stream) -> Outcome:
    machine = session.machine
    units = {"-b": 1, "-k": 1024, "-m": 1024**2, "-g": 1024**3}
    if len(args) > 1 or (args and args[0] not in (*units, "-h")):
        return not_simulated("free", "this option")
    flag = args[0] if args else "-k"

    def show(n: int) -> str:
        return _human(n).replace("K", "Ki").replace("M", "Mi").replace("G", "Gi") if flag == "-h" \
            else str(n // units[flag])  # fmt: skip

    total, used = machine.mem_total, machine.mem_used
    cache = (total - used) * 2 // 5
    rows = [["", "total", "used", "free", "shared", "buff/cache", "available"],
            ["Mem:", *map(show, (total, used, total - used - cache, 12 * 1024**2, cache,
                                 total - used))],
            ["Swap:", *map(show, (machine.swap_total, 0, machine.swap_total))]]  # fmt: skip
    return Outcome("".join(f"{row[0]:<8}" + "".join(f"{c:>12}" for c in row[1:]) + "\n"
                           for row in rows))  # fmt: skip


def date(session: Session, args: list[str], stdin: Stream) -> Outcome:
    stamp = time.gmtime(session.machine.now)
    rest = [a for a in args if a not in ("-u", "--utc")]
    if not rest:
        return Outcome(time.strftime("%a %b %e %H:%M:%S UTC %Y", stamp) + "\n")
    if len(rest) == 1 and rest[0].startswith("+"):
        fmt = rest[0][1:].replace("%s", str(int(session.machine.now)))
        return Outcome(time.strftime(fmt, stamp) + "\n")
    return not_simulated("date", "setting the clock or this option")


def whoami(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return Outcome("root\n")


def id_(session: Session, args: list[str], stdin: Stream) -> Outcome:
    if args in (["-u"], ["-g"]):
        return Outcome("0\n")
    if args in (["-un"], ["-gn"], ["-u", "-n"]):
        return Outcome("root\n")
    return Outcome("uid=0(root) gid=0(root) groups=0(root)\n")


def ip(session: Session, args: list[str], stdin: Stream) -> Outcome:
    brief = bool(args) and args[0] in ("-br", "-brief")
    rest = args[1:] if brief else args
    obj, extra = (rest[0], rest[1:]) if rest else ("", [])
    if extra not in ([], ["show"]):
        return not_simulated("ip", "this selection")
    ifaces = session.machine.interfaces
    if obj in ("a", "addr", "address"):
        return Outcome("".join((_brief_addr if brief else _full_addr)(n, i, session.machine)
                               for n, i in enumerate(ifaces, 1)))  # fmt: skip
    if obj in ("l", "link") and brief:
        return Outcome("".join(f"{i.name:<16} {_state(i):<14} {i.mac} <{_flags(i)}> \n"
                               for i in ifaces))  # fmt: skip
    if obj in ("r", "route") and not brief:
        nic = next(i for i in ifaces if not i.loopback)
        v4 = nic.addresses[0]
        network = ".".join(v4.address.split(".")[:3]) + ".0"
        return Outcome(f"default via {session.machine.gateway} dev {nic.name} proto static \n"
                       f"{network}/{v4.prefix} dev {nic.name} proto kernel scope link "
                       f"src {v4.address} \n")  # fmt: skip
    if not obj:
        return fail("ip", "Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }", 255)
    return not_simulated("ip", f"object '{obj}'")


def _state(iface: Interface) -> str:
    return "UNKNOWN" if iface.loopback else "UP"


def _flags(iface: Interface) -> str:
    return "LOOPBACK,UP,LOWER_UP" if iface.loopback else "BROADCAST,MULTICAST,UP,LOWER_UP"


def _brief_addr(index: int, iface: Interface, machine: Machine) -> str:
    addresses = "".join(f"{a.address}/{a.prefix} " for a in iface.addresses)
    return f"{iface.name:<16} {_state(iface):<14} {addresses}\n"


def _full_addr(index: int, iface: Interface, machine: Machine) -> str:
    mtu, kind = (65536, "loopback") if iface.loopback else (1500, "ether")
    broadcast = "00:00:00:00:00:00" if iface.loopback else "ff:ff:ff:ff:ff:ff"
    qdisc = "noqueue" if iface.loopback else "fq_codel"
    lines = [f"{index}: {iface.name}: <{_flags(iface)}> mtu {mtu} qdisc {qdisc} state "
             f"{_state(iface)} group default qlen 1000",
             f"    link/{kind} {iface.mac} brd {broadcast}"]  # fmt: skip
    for a in iface.addresses:
        scope = "host" if iface.loopback else ("global" if a.family == "ipv4" else "link")
        if a.family == "ipv4":
            brd = "" if iface.loopback else f" brd {a.address.rsplit('.', 1)[0]}.255"
            lines.append(f"    inet {a.address}/{a.prefix}{brd} scope {scope} {iface.name}")
        else:
            lines.append(f"    inet6 {a.address}/{a.prefix} scope {scope} ")
        lines.append("       valid_lft forever preferred_lft forever")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- systemd


def unit_name(name: str) -> str:
    return name.removesuffix(".service")


def systemctl(session: Session, args: list[str], stdin: Stream) -> Outcome:
    args = [a for a in args if a not in ("--no-pager", "-q", "--quiet")]
    if not args:
        return not_simulated("systemctl", "listing units")
    verb, units = args[0], [unit_name(u) for u in args[1:]]
    if verb == "is-active":
        states = ["active" if u in session.services else "inactive" for u in units]
        return Outcome(
            "".join(f"{s}\n" for s in states),
            exitcode=0 if states and all(s == "active" for s in states) else 3,
        )
    if verb in ("start", "stop", "restart", "reload"):
        for unit in units:
            if unit not in session.installed:
                state = "loaded" if verb == "stop" else "found"
                return Outcome(stderr=f"Failed to {verb} {unit}.service: Unit {unit}.service "
                               f"not {state}.\n", exitcode=5)  # fmt: skip
            if verb == "stop":
                session.services.discard(unit)
            else:
                session.services.add(unit)
        return Outcome(seconds=0.3 if verb != "reload" else 0.05)
    if verb == "status" and units:
        return _status(session, units)
    return not_simulated("systemctl", f"verb '{verb}'")


def _status(session: Session, units: list[str]) -> Outcome:
    out: list[str] = []
    code = 0
    for unit in units:
        if unit not in session.installed:
            return Outcome("".join(out), f"Unit {unit}.service could not be found.\n", 4)
        running = unit in session.services
        code = max(code, 0 if running else 3)
        since = time.strftime(
            "%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(session.machine.now - session.machine.uptime)
        )
        active = f"active (running) since {since}" if running else "inactive (dead)"
        out.append(f"● {unit}.service - {unit}\n"
                   f"     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; enabled)\n"
                   f"     Active: {active}\n")  # fmt: skip
    return Outcome("\n".join(out), exitcode=code)
