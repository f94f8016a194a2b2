"""The streamable HTTP transport over real loopback sockets, and the resources and prompts.

In process: the SDK's ``/mcp`` app behind ``McpHttpGuard`` under uvicorn in a thread, on the
session simulator. As a subprocess: ``labdeck mcp --demo --transport streamable-http --port 0``
(the port is read from its stderr), exactly as a person starts it. Clients: the SDK's
streamable HTTP client for the protocol, raw httpx for the 401/403/421 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

import mcp_server
from core.errors import ConfigError
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from mcp_server.http import (
    TOKEN_ENV,
    Allowed,
    allowed_for,
    bind_warning,
    build_app,
    is_loopback,
    listen,
    resolve_token,
    uvicorn_server,
)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-token-7bq2-ZK9x-h4Lw-e0Rt"
OTHER_TOKEN = "test-token-7bq2-ZK9x-h4Lw-e0Rz"
STARTUP_S = 60.0
STOP_S = 15.0
MODES = ["auto", "legacy"]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


# ------------------------------------------------------------------ helpers


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def http_client(url: str, token: str = TOKEN, **kwargs: Any) -> AsyncIterator[Client]:
    """The SDK client over streamable HTTP, sending the bearer token on every request."""
    async with (
        httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30.0)) as http,
        Client(streamable_http_client(url, http_client=http), **kwargs) as client,
    ):
        yield client


def raw_post(url: str, headers: dict[str, str]) -> httpx.Response:
    """An initialize POST; the body is read only for the short refusals."""
    with (
        httpx.Client(timeout=10.0) as http,
        http.stream("POST", url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}) as answer,
    ):
        if answer.status_code != 200:
            answer.read()
        return answer


def mcp_factory(handle: Any, **profile_changes: Any) -> Callable[[], Labdeck]:
    profile = demo_profile(handle, allow_writes=False)
    for name, value in profile_changes.items():
        setattr(profile.pve, name, value)

    def factory() -> Labdeck:
        return Labdeck(profile, face="mcp", allow_writes=False)

    return factory


class ServerThread:
    """``build_app`` under uvicorn in a thread, on a loopback port the OS picked."""

    def __init__(self, mcp: Any, token: str = TOKEN) -> None:
        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        app = build_app(mcp, token=SecretStr(token), host="127.0.0.1", port=self.port)
        self.server = uvicorn_server(app)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_S
        while not self.server.started:
            assert self.thread.is_alive(), "the HTTP server thread died at startup"
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_S)
        self.sock.close()
        assert not self.thread.is_alive(), "the HTTP server did not stop"


@pytest.fixture
def http_server(sim: Any) -> Iterator[ServerThread]:
    with ServerThread(build_server(mcp_factory(sim), allow_writes=False)) as running:
        yield running


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def labdeck_argv(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "labdeck"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "labdeck", *args]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        labdeck_argv(*args),
        env=cli_env(tmp_path, **env),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
        check=False,
    )


# ------------------------------------------------------------------ the SDK client over HTTP


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_initializes_lists_tools_and_calls_over_http(http_server, mode):
    async with http_client(http_server.url, mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"pve_list_guests", "pve_cluster_overview"} <= tools

        guests = await client.call_tool("pve_list_guests", {"status": "running"})
        assert not guests.is_error
        table = guests.structured_content
        assert table["columns"] == ["vmid", "name", "node", "status"]
        assert table["rows"] and all(row[3] == "running" for row in table["rows"])

        inventory = await client.read_resource("labdeck://inventory")
        assert json.loads(inventory.contents[0].text)["overview"]["cluster_name"]


async def test_the_wrong_token_stops_the_sdk_client(http_server):
    with pytest.raises(Exception):
        async with asyncio.timeout(30):
            async with http_client(http_server.url, token=OTHER_TOKEN, mode="legacy") as client:
                await client.list_tools()


# ------------------------------------------------------------------ the guard, raw


def test_no_token_is_401_with_a_bearer_challenge(http_server):
    answer = raw_post(http_server.url, {})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"] == "unauthorized"
    assert "Authorization: Bearer" in answer.json()["message"]


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {OTHER_TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer",
        f"Basic {TOKEN}",
    ],
    ids=["other", "longer", "shorter", "empty", "basic"],
)
def test_a_wrong_token_is_401(http_server, authorization):
    answer = raw_post(http_server.url, {"Authorization": authorization})
    assert answer.status_code == 401
    assert "Bearer" in answer.headers["www-authenticate"]
    assert TOKEN not in answer.text


def test_the_token_scheme_is_case_insensitive(http_server):
    assert raw_post(http_server.url, {"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_every_path_needs_the_token(http_server):
    base = http_server.url.removesuffix("/mcp")
    with httpx.Client(timeout=10.0) as http:
        assert http.get(f"{base}/").status_code == 401
        assert http.get(f"{base}/nothing-here").status_code == 401
        assert http.get(f"{base}/nothing-here", headers=bearer()).status_code == 404


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://127.0.0.1.evil.example",
        "null",
        "http://localhost",
        "http://localhost:1",
        "https://localhost",
    ],
)
def test_a_foreign_origin_is_403_even_with_the_token(http_server, origin):
    answer = raw_post(http_server.url, {**bearer(), "Origin": origin})
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden_origin"


def test_a_foreign_origin_is_403_before_the_token_is_looked_at(http_server):
    assert raw_post(http_server.url, {"Origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_the_servers_own_loopback_origins_are_accepted(http_server, name):
    answer = raw_post(http_server.url, {**bearer(), "Origin": f"http://{name}:{http_server.port}"})
    assert answer.status_code == 200
    assert answer.headers.get("mcp-session-id")


def test_a_rebound_host_name_is_refused(http_server):
    # DNS rebinding: the page's own name now points at 127.0.0.1
    answer = raw_post(http_server.url, {**bearer(), "Host": f"evil.example:{http_server.port}"})
    assert answer.status_code == 421


def test_the_token_is_never_logged(sim, caplog):
    caplog.set_level(logging.DEBUG)
    with ServerThread(build_server(mcp_factory(sim), allow_writes=False)) as running:
        raw_post(running.url, {})
        raw_post(running.url, bearer(OTHER_TOKEN))
        raw_post(running.url, {**bearer(), "Origin": "https://evil.example"})
        assert raw_post(running.url, bearer()).status_code == 200
    assert "refused an MCP request" in caplog.text
    assert TOKEN not in caplog.text
    assert OTHER_TOKEN not in caplog.text


# ------------------------------------------------------------------ addresses


def test_allowed_hosts_and_origins_for_a_loopback_bind():
    allowed = allowed_for("127.0.0.1", 8123)
    assert allowed.hosts == {"127.0.0.1:8123", "localhost:8123", "[::1]:8123"}
    assert allowed.origins == {
        "http://127.0.0.1:8123",
        "http://localhost:8123",
        "http://[::1]:8123",
    }


def test_a_specific_bind_address_is_allowed_too():
    allowed = allowed_for("192.168.1.20", 8123)
    assert isinstance(allowed, Allowed)
    assert allowed.hosts is not None and "192.168.1.20:8123" in allowed.hosts
    assert "http://192.168.1.20:8123" in allowed.origins
    assert "http://[fd00::20]:8123" in allowed_for("fd00::20", 8123).origins
    assert "127.0.0.2:8123" in (allowed_for("127.0.0.2", 8123).hosts or ())
    assert allowed_for("::1", 8123) == allowed_for("127.0.0.1", 8123)


def test_a_wildcard_bind_checks_origins_but_not_host_names():
    allowed = allowed_for("0.0.0.0", 8123)
    assert allowed.hosts is None
    assert allowed.origins == allowed_for("127.0.0.1", 8123).origins


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("pve.example.lan", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback
    assert (bind_warning(host) is None) is loopback


def test_the_bind_warning_says_what_it_exposes():
    warning = bind_warning("0.0.0.0")
    assert warning is not None
    assert "0.0.0.0" in warning and "bearer token" in warning and "127.0.0.1" in warning


# ------------------------------------------------------------------ the token's sources


def test_the_token_comes_from_the_environment():
    token = resolve_token(None, {TOKEN_ENV: f"  {TOKEN}\n"})
    assert token.get_secret_value() == TOKEN
    assert TOKEN not in repr(token) and TOKEN not in str(token)


def test_a_0600_token_file_wins_over_the_environment(tmp_path):
    path = tmp_path / "mcp-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert resolve_token(str(path), {TOKEN_ENV: OTHER_TOKEN}).get_secret_value() == TOKEN


def test_a_token_file_readable_by_others_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "mcp-token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as refused:
        resolve_token(str(path), {})
    assert f"chmod 600 {path}" in str(refused.value)
    assert TOKEN not in str(refused.value)


@pytest.mark.parametrize("value", ["", "   ", "tiny-tok3n", "has a space in the middle!"])
def test_a_missing_or_weak_token_is_refused(value):
    with pytest.raises(ConfigError) as refused:
        resolve_token(None, {TOKEN_ENV: value})
    assert value.strip() == "" or value not in str(refused.value)


def test_run_refuses_http_without_a_token(sim):
    with pytest.raises(ConfigError, match="bearer token"):
        mcp_server.run(mcp_factory(sim), transport="streamable-http", port=free_port())


# ------------------------------------------------------------------ `labdeck mcp` as a subprocess


async def _read_url(process: asyncio.subprocess.Process, seen: list[str]) -> str:
    assert process.stderr is not None
    while True:
        line = (await process.stderr.readline()).decode()
        assert line, f"labdeck mcp exited early: {''.join(seen)}"
        seen.append(line)
        found = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line)
        if found:
            return found.group(1)


async def test_labdeck_mcp_serves_streamable_http_behind_the_token(tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        *labdeck_argv("mcp", "--demo", "--transport", "streamable-http", "--port", "0"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path, **{TOKEN_ENV: TOKEN}),
        cwd=str(ROOT),
    )
    seen: list[str] = []
    stdout = b""
    try:
        url = await asyncio.wait_for(_read_url(process, seen), STARTUP_S)
        port = int(url.rsplit(":", 1)[1].split("/")[0])

        async with http_client(url) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert "pve_list_guests" in tools
            guests = await client.call_tool("pve_list_guests", {})
            assert not guests.is_error
            assert guests.structured_content["total"] == len(guests.structured_content["rows"])

        async with httpx.AsyncClient(timeout=10.0) as http:

            async def post(headers: dict[str, str]) -> httpx.Response:
                return await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})

            assert (await post({})).status_code == 401
            assert (await post(bearer(OTHER_TOKEN))).status_code == 401
            evil = await post({**bearer(), "Origin": "https://evil.example"})
            assert evil.status_code == 403
            async with http.stream(
                "POST",
                url,
                json=INITIALIZE,
                headers={**MCP_HEADERS, **bearer(), "Origin": f"http://localhost:{port}"},
            ) as loopback:
                assert loopback.status_code == 200
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            stdout, rest = await asyncio.wait_for(process.communicate(), STOP_S)
        except TimeoutError:
            process.kill()
            stdout, rest = await process.communicate()
        seen.append(rest.decode())
    stderr = "".join(seen)
    assert process.returncode is not None
    assert TOKEN not in stderr and OTHER_TOKEN not in stderr
    assert "refused an MCP request" in stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr
    assert stdout == b"", "streamable HTTP keeps stdout empty: logs go to stderr"
    audit = (tmp_path / "state" / "labdeck" / "audit.jsonl").read_text()
    assert "pve_list_guests" in audit and TOKEN not in audit


async def test_labdeck_mcp_stops_cleanly_with_a_client_connected(tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        *labdeck_argv("mcp", "--demo", "--transport", "streamable-http", "--port", "0"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path, **{TOKEN_ENV: TOKEN}),
        cwd=str(ROOT),
    )
    seen: list[str] = []
    try:
        url = await asyncio.wait_for(_read_url(process, seen), STARTUP_S)
        # legacy mode keeps a GET (SSE) stream open: the server must end it, not hang on it
        async with http_client(url, mode="legacy") as client:
            await client.list_tools()
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), STOP_S) == 130
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    stderr = "".join(seen) + (await process.stderr.read()).decode()
    assert "ERROR" not in stderr and "Traceback" not in stderr


def test_labdeck_mcp_refuses_http_without_a_token(tmp_path: Path):
    started = time.monotonic()
    done = run_cli(tmp_path, "mcp", "--demo", "--transport", "streamable-http", "--port", "0")
    assert done.returncode == 2
    assert "needs a bearer token" in done.stderr
    assert TOKEN_ENV in done.stderr and "--token-file" in done.stderr
    assert done.stdout == ""
    assert time.monotonic() - started < STARTUP_S


def test_labdeck_mcp_refuses_a_token_file_readable_by_others(tmp_path: Path):
    path = tmp_path / "mcp-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    done = run_cli(
        tmp_path,
        "mcp",
        "--transport",
        "streamable-http",
        "--port",
        str(free_port()),
        "--token-file",
        str(path),
    )
    assert done.returncode == 2
    assert "readable by others" in done.stderr
    assert f"chmod 600 {path}" in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_labdeck_mcp_takes_no_token_on_the_command_line(tmp_path: Path):
    done = run_cli(tmp_path, "mcp", "--transport", "streamable-http", "--token", TOKEN)
    assert done.returncode == 2
    assert "unrecognized arguments" in done.stderr


# ------------------------------------------------------------------ resources and prompts


async def test_the_inventory_resource_is_listed_and_read(sim):
    server = build_server(mcp_factory(sim), allow_writes=False)
    async with Client(server) as client:
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert list(resources) == ["labdeck://inventory"]
        assert resources["labdeck://inventory"].mime_type == "application/json"

        read = await client.read_resource("labdeck://inventory")
        overview_call = await client.call_tool("pve_cluster_overview", {})
    (content,) = read.contents
    assert content.mime_type == "application/json"
    inventory = json.loads(content.text)
    assert inventory["overview"] == overview_call.structured_content
    guests = inventory["guests"]
    assert guests["columns"] == ["vmid", "name", "node", "type", "status"]
    assert len(guests["rows"]) == guests["total"] == inventory["overview"]["guests_total"]
    assert {row[3] for row in guests["rows"]} <= {"qemu", "lxc"}
    nodes = inventory["nodes"]
    assert len(nodes["rows"]) == inventory["overview"]["nodes_total"]
    assert all(0 <= row[3] <= 1 for row in nodes["rows"] if row[3] is not None)
    # compact: columns once, no indentation
    assert len(content.text) < 120 + 40 * guests["total"] + 60 * len(nodes["rows"]) + 400


async def test_the_inventory_resource_says_when_the_cluster_is_down(sim):
    server = build_server(mcp_factory(sim, port=free_port()), allow_writes=False)
    async with Client(server) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource("labdeck://inventory")
    message = str(failed.value)
    assert "Traceback" not in message
    assert message.strip()


async def test_the_health_report_prompt_guides_read_only_tool_calls(sim):
    server = build_server(mcp_factory(sim), allow_writes=False)
    async with Client(server) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert list(prompts) == ["health_report"]
        (argument,) = prompts["health_report"].arguments or []
        assert argument.name == "node" and argument.required is False

        whole = await client.get_prompt("health_report")
        one = await client.get_prompt("health_report", {"node": "pve2"})
        with pytest.raises(MCPError):
            await client.get_prompt("health_report", {"node": 'pve1", "status": "x'})
    text = whole.messages[0].content.text
    assert whole.messages[0].role == "user"
    tools = {tool for tool in re.findall(r"\bpve_[a-z_]+", text)}
    assert {"pve_cluster_overview", "pve_list_nodes", "pve_list_guests"} <= tools
    from core.ops import catalogue

    ops = catalogue()
    assert tools <= set(ops) and all(ops[name].read_only for name in tools)
    assert '"status": "stopped"' in text
    one_text = one.messages[0].content.text
    assert "node pve2" in one_text and '"node": "pve2"' in one_text


def test_the_profile_may_follow_the_mcp_command():
    from labdeck.cli import _build_parser

    parser = _build_parser()
    assert parser.parse_args(["mcp", "--profile", "lab2"]).profile == "lab2"
    assert parser.parse_args(["--profile", "lab1", "mcp"]).profile == "lab1"
    assert parser.parse_args(["mcp"]).profile is None
