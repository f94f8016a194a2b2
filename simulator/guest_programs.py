"""Which programs each simulated guest has, by name, and the few Windows ones."""

from __future__ import annotations

from simulator.guest_commands import (
    Outcome,
    Program,
    Session,
    Stream,
    cat,
    date,
    df,
    free,
    hostname,
    id_,
    ip,
    ls,
    not_simulated,
    systemctl,
    uname,
    uptime,
    whoami,
)
from simulator.guest_textutils import (
    echo,
    false,
    grep,
    head,
    journalctl,
    seq,
    sleep,
    tail,
    true,
    wc,
    yes,
)

LINUX_PROGRAMS: dict[str, Program] = {
    "cat": cat, "date": date, "df": df, "echo": echo, "false": false, "free": free,
    "grep": grep, "head": head, "hostname": hostname, "id": id_, "ip": ip,
    "journalctl": journalctl, "ls": ls, "seq": seq, "sleep": sleep, "systemctl": systemctl,
    "tail": tail, "true": true, "uname": uname, "uptime": uptime, "wc": wc, "whoami": whoami,
    "yes": yes,
}  # fmt: skip
# Where programs live (Debian and Ubuntu merged /bin into /usr/bin; Rocky too).
LINUX_BIN_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")


# ---------------------------------------------------------------- Windows


def win_hostname(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return Outcome(session.machine.hostname.upper() + "\r\n")


def win_whoami(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return Outcome("nt authority\\system\r\n")


def win_cmd(session: Session, args: list[str], stdin: Stream) -> Outcome:
    if len(args) < 2 or args[0].lower() not in ("/c", "/k"):
        return not_simulated("cmd", "an interactive session")
    word, rest = args[1].lower(), args[2:]
    if word == "echo":
        return Outcome(" ".join(rest) + "\r\n")
    if word == "ver":
        version = session.machine.distro.kernel_release
        return Outcome(f"\r\nMicrosoft Windows [Version 10.0.{version}.2605]\r\n")
    program = WINDOWS_PROGRAMS.get(word.removesuffix(".exe"))
    if program is not None and program is not win_cmd:
        return program(session, rest, stdin)
    return Outcome(stderr=f"'{args[1]}' is not recognized as an internal or external command,\r\n"
                   "operable program or batch file.\r\n", exitcode=1)  # fmt: skip


WINDOWS_PROGRAMS: dict[str, Program] = {
    "hostname": win_hostname,
    "whoami": win_whoami,
    "cmd": win_cmd,
}
