"""Transport policy: plain ``http://`` for Proxmox VE is refused unless explicitly allowed, and
an insecure connection (plain http, verify_ssl = false) is warned about on every run, in every
face: the CLI's stderr, the MCP server's log, the dashboard's notifications."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from core.audit import AuditLog
from core.config import PveSettings, load_settings
from core.errors import ConfigError
from core.pve import PveClient
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from tui.app import LabdeckApp

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------ plain http


@pytest.mark.parametrize("host", ["http://pve.lan", "HTTP://pve.lan:8006/", "http://10.0.0.1"])
def test_plain_http_is_refused_with_the_reason_and_the_way_out(tmp_path, host):
    path = write_config(tmp_path, f'[pve]\nhost = "{host}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = info.value.message
    assert "plain http" in message and "in clear" in message
    assert "allow_insecure_transport = true" in message and "https://" in message


def test_plain_http_from_the_replaced_servers_env_var_is_refused_too(monkeypatch):
    monkeypatch.setenv("PROXMOX_HOST", "http://pve.lan")
    with pytest.raises(ConfigError, match="plain http"):
        load_settings()


@pytest.mark.parametrize("host", ["https://pve.lan:8006", "pve.lan", "[fe80::1]:8006"])
def test_https_and_bare_hosts_stay_https(host):
    settings = PveSettings(host=host, user="labdeck@pve", token_name="tok", token_value="x")
    assert settings.scheme == "https"
    assert PveClient(settings).base_url.startswith("https://")


def test_allowed_plain_http_is_kept_as_http_not_upgraded(tmp_path):
    path = write_config(
        tmp_path,
        '[pve]\nhost = "http://pve.lan"\nallow_insecure_transport = true\nuser = "a@pve"\n'
        'token_name = "tok"\ntoken_value = "x"\n',
    )
    pve = load_settings(path).resolve().pve
    assert pve.scheme == "http" and pve.host == "pve.lan"
    assert PveClient(pve).base_url == "http://pve.lan:8006/api2/json"
    # allowing it does not make https hosts plain
    assert PveSettings(host="pve.lan", allow_insecure_transport=True).scheme == "https"


@asynccontextmanager
async def plain_http_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback server speaking plain HTTP/1.1 (the simulator serves only https, as PVE
    does, so a plain-http endpoint — the proxy case — has to be this small stand-in)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        body = json.dumps({"data": {"version": "9.0.3", "release": "9.0"}}).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()
        await server.wait_closed()


async def test_allowed_plain_http_speaks_http_and_warns_on_every_client(caplog):
    caplog.set_level(logging.WARNING)
    async with plain_http_server() as (port, seen):
        settings = PveSettings(
            host="http://127.0.0.1", port=port, allow_insecure_transport=True,
            user="labdeck@pve", token_name="tok", token_value="canary-http",
        )  # fmt: skip
        for _run in range(2):
            async with PveClient(settings) as client:
                version = await client.get("/version")
            assert version["version"] == "9.0.3"
    assert len(seen) == 2 and all(head.startswith(b"GET /api2/json/version") for head in seen)
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 2, "one loud warning per run, not once per machine"
    assert "in clear" in warnings[0] and "canary-http" not in caplog.text


# ------------------------------------------------------------------ verify_ssl = false


def insecure_profile(handle: Any) -> Any:
    profile = demo_profile(handle, allow_writes=False)
    profile.pve.verify_ssl = False
    profile.pve.ca_bundle = None
    return profile


async def test_verify_false_warns_on_every_run_of_the_core(sim, caplog):
    caplog.set_level(logging.WARNING)
    for _run in range(2):
        async with Labdeck(insecure_profile(sim), face="cli") as lab:
            await lab.call("pve_cluster_overview")
    warnings = [r for r in caplog.records if "TLS verification is OFF" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)


async def test_the_mcp_face_logs_the_warning(sim, caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    profile = insecure_profile(sim)

    def factory() -> Labdeck:
        return Labdeck(profile, face="mcp", audit=AuditLog(tmp_path / "a.jsonl"), audit_reads=True)

    async with Client(build_server(factory, allow_writes=False)) as client:
        result = await client.call_tool("pve_cluster_overview", {})
    assert not result.is_error
    assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)


def test_the_cli_prints_the_warning_on_stderr_each_run(sim, tmp_path):
    token = sim.token
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "LABDECK_PVE_HOST": sim.host,
        "LABDECK_PVE_PORT": str(sim.port),
        "LABDECK_PVE_USER": token.user,
        "LABDECK_PVE_TOKEN_NAME": token.token_name,
        "LABDECK_PVE_TOKEN_VALUE": token.secret,
        "LABDECK_PVE_VERIFY_SSL": "false",
    }
    for _run in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "labdeck", "call", "pve_cluster_overview"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "TLS verification is OFF" in done.stderr
        assert "TLS verification" not in done.stdout  # stdout stays the result only
        assert token.secret not in done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["verify", "http"])
async def test_the_dashboard_notifies_at_every_start(sim, kind):
    profile = insecure_profile(sim) if kind == "verify" else demo_profile(sim, allow_writes=False)
    if kind == "http":
        profile.pve = PveSettings(host="http://127.0.0.1", port=sim.port, user="a@pve",
                                  token_name="tok", token_value="x",
                                  allow_insecure_transport=True)  # fmt: skip
    app = LabdeckApp(Labdeck(profile, face="tui"), refresh_interval=3600.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = [n.message for n in app._notifications]
    needle = "TLS verification is OFF" if kind == "verify" else "plain http"
    assert any(needle in message for message in shown), shown


async def test_a_secure_profile_gets_no_warning(sim, caplog):
    caplog.set_level(logging.WARNING)
    app = LabdeckApp(Labdeck(demo_profile(sim, allow_writes=False), face="tui"),
                     refresh_interval=3600.0)  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = [n.message for n in app._notifications]
    assert not [m for m in shown if "TLS" in m or "http" in m]
    assert "TLS verification is OFF" not in caplog.text
