"""``labdeck doctor``: check a profile end to end and say how to fix each failure.

Order matters: each check needs the previous one (no TCP without DNS, no auth without a
trusted TLS channel), so after the first failure the rest are reported as skipped.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from core.config import Profile
from core.errors import LabdeckError
from core.pve import PveClient, auth_for
from core.pve_auth import TokenAuth
from core.tls import fetch_certificate, sha256_fingerprint

Outcome = Literal["ok", "warn", "FAIL", "skip"]

#: (privilege, path, what needs it, needs writes)
PVE_PRIVILEGES: tuple[tuple[str, str, str, bool], ...] = (
    ("VM.Audit", "/vms", "list guests and their status", False),
    ("Sys.Audit", "/nodes", "node status and metrics", False),
    ("Datastore.Audit", "/storage", "storage usage", False),
    ("Pool.Audit", "/pool", "pools and members", False),
    ("VM.GuestAgent.Audit", "/vms", "guest agent info (PVE 9)", False),
    ("VM.PowerMgmt", "/vms", "start/shutdown/stop/reboot", True),
    ("VM.GuestAgent.Unrestricted", "/vms", "guest commands (exec)", True),
)


@dataclass(slots=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    fix: str = ""


@dataclass(slots=True)
class DoctorReport:
    profile: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.outcome != "FAIL" for c in self.checks)

    def add(self, name: str, outcome: Outcome, detail: str, fix: str = "") -> Check:
        check = Check(name, outcome, detail, fix)
        self.checks.append(check)
        return check


def _check_config_file(report: DoctorReport, path: Path | None) -> None:
    if path is None:
        report.add("config file", "ok", "none (settings from the environment)")
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        report.add(
            "config file",
            "warn",
            f"{path} is mode {mode:04o} (readable by others)",
            f"chmod 600 {path}",
        )
    else:
        report.add("config file", "ok", f"{path} (mode {mode:04o})")


async def run_doctor(
    profile: Profile, *, config_path: Path | None, timeout_s: float = 5.0
) -> DoctorReport:
    report = DoctorReport(profile=profile.name)
    _check_config_file(report, config_path)
    pve = profile.pve
    if not pve.configured or pve.host is None:
        report.add(
            "pve: configured",
            "FAIL",
            "no [pve] host in this profile",
            "Add [pve] host/user/token_name and a token_file (see README), or try `labdeck demo`.",
        )
        return report
    target = f"{pve.host}:{pve.port}"
    report.add("pve: configured", "ok", f"{pve.token_id} at {target}")

    try:
        auth = auth_for(pve, None)
    except LabdeckError as exc:
        report.add("pve: credentials", "FAIL", exc.message, exc.hint or "")
        return _skip_rest(report, "credentials")
    kind = "API token" if isinstance(auth, TokenAuth) else "password (ticket login)"
    report.add("pve: credentials", "ok", f"{kind} found (not shown)")

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(pve.host, pve.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        report.add(
            "pve: DNS",
            "FAIL",
            f"{pve.host} does not resolve ({exc})",
            "Check the host name, or use the node's IP address.",
        )
        return _skip_rest(report, "DNS")
    addresses = sorted({str(info[4][0]) for info in infos})
    report.add("pve: DNS", "ok", ", ".join(addresses[:3]))

    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(pve.host, pve.port)
        writer.close()
    except (OSError, TimeoutError) as exc:
        report.add(
            "pve: TCP",
            "FAIL",
            f"cannot connect to {target} ({exc.__class__.__name__})",
            "Is pveproxy running, is the port (8006) right, is a firewall in the way?",
        )
        return _skip_rest(report, "TCP")
    report.add("pve: TCP", "ok", f"{target} in {1000 * (time.monotonic() - started):.0f} ms")

    if not await _check_tls(report, profile, timeout_s):
        return _skip_rest(report, "TLS")

    client = PveClient(pve)
    try:
        try:
            version = await client.get("/version")
        except LabdeckError as exc:
            report.add("pve: auth", "FAIL", exc.message, exc.hint or "")
            return _skip_rest(report, "auth")
        report.add("pve: auth", "ok", f"accepted; Proxmox VE {version.get('version')}")
        await _check_privileges(report, client, allow_writes=profile.policy.allow_writes)
    finally:
        await client.aclose()
    return report


async def _check_tls(report: DoctorReport, profile: Profile, timeout_s: float) -> bool:
    pve = profile.pve
    assert pve.host is not None
    try:
        der = await fetch_certificate(pve.host, pve.port, timeout_s)
    except LabdeckError as exc:
        report.add("pve: TLS", "FAIL", exc.message, exc.hint or "")
        return False
    fingerprint = sha256_fingerprint(der)
    expiry = _expiry(der)
    if expiry is not None:
        days = (expiry - datetime.now(UTC)).days
        if days < 0:
            report.add(
                "pve: certificate expiry",
                "FAIL",
                f"expired {-days} days ago",
                "Renew it: pvecm updatecerts --force (or your ACME setup).",
            )
        elif days < 21:
            report.add(
                "pve: certificate expiry",
                "warn",
                f"expires in {days} days",
                "Renew it soon (pvecm updatecerts or ACME).",
            )
        else:
            report.add("pve: certificate expiry", "ok", f"valid for {days} more days")
    if pve.fingerprint:
        if fingerprint != pve.fingerprint:
            report.add(
                "pve: TLS",
                "FAIL",
                f"certificate {fingerprint} does not match the pin",
                "If the certificate was renewed on purpose, update fingerprint.",
            )
            return False
        report.add("pve: TLS", "ok", "certificate matches the SHA-256 pin")
        return True
    if not pve.verify_ssl:
        report.add(
            "pve: TLS",
            "warn",
            "verification is OFF (verify_ssl = false)",
            f'Set ca_bundle, or pin it: fingerprint = "{fingerprint}"',
        )
        return True
    from core.tls import verifying_context

    try:
        context = verifying_context(pve.ca_bundle)
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(
                pve.host, pve.port, ssl=context, server_hostname=pve.host
            )
        writer.close()
    except ssl.SSLCertVerificationError as exc:
        report.add(
            "pve: TLS",
            "FAIL",
            f"certificate not trusted ({exc.verify_message})",
            f"Set ca_bundle to /etc/pve/pve-root-ca.pem from a node, or pin it: "
            f'fingerprint = "{fingerprint}"',
        )
        return False
    except (OSError, TimeoutError, LabdeckError) as exc:
        report.add("pve: TLS", "FAIL", f"TLS handshake failed ({exc})")
        return False
    source = " (ca_bundle)" if pve.ca_bundle else ""
    report.add("pve: TLS", "ok", f"certificate trusted{source}")
    return True


def _expiry(der: bytes) -> datetime | None:
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - cryptography comes with trustme
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


async def _check_privileges(report: DoctorReport, client: PveClient, *, allow_writes: bool) -> None:
    granted: dict[str, set[str]] = {}
    for path in sorted({path for _, path, _, _ in PVE_PRIVILEGES}):
        data = await client.get("/access/permissions", {"path": path})
        granted[path] = {priv for priv, value in (data.get(path) or {}).items() if value}
    for priv, path, purpose, needs_writes in PVE_PRIVILEGES:
        name = f"pve: {priv} on {path}"
        if priv in granted[path]:
            report.add(name, "ok", purpose)
        elif needs_writes and not allow_writes:
            report.add(name, "skip", f"missing; needed for {purpose} (writes are off)")
        else:
            report.add(
                name,
                "FAIL",
                f"missing; needed for {purpose}",
                f"pveum acl modify {path} {client.auth.acl_flag} --roles <role with {priv}>",
            )


def _skip_rest(report: DoctorReport, after: str) -> DoctorReport:
    report.add("remaining checks", "skip", f"not run: {after} failed")
    return report
