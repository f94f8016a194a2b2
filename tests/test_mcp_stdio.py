"""``labdeck mcp --demo`` as a subprocess over real stdio: the SDK's stdio client, and a
byte-level check that stdout carries nothing but JSON-RPC."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 60.0


def labdeck_command(*args: str) -> tuple[str, list[str]]:
    script = Path(sys.executable).parent / "labdeck"
    if script.exists():
        return str(script), list(args)
    return sys.executable, ["-m", "labdeck", *args]


def isolated_env(tmp_path: Path) -> dict[str, str]:
    # no real configuration, keyring or audit log of the developer's
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
    }


async def test_labdeck_mcp_demo_serves_the_catalogue_over_stdio(tmp_path: Path):
    command, args = labdeck_command("mcp", "--demo")
    params = StdioServerParameters(
        command=command, args=args, env=isolated_env(tmp_path), cwd=str(ROOT)
    )
    with (tmp_path / "stderr.txt").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"pve_list_guests", "pve_cluster_overview", "pve_stop_guest"} <= tools

            overview = await client.call_tool("pve_cluster_overview", {})
            assert not overview.is_error
            assert overview.structured_content["cluster_name"] == "labdeck-demo"

            refused = await client.call_tool("pve_start_guest", {"vmid": 100})
            assert refused.is_error
            assert "labdeck mcp --allow-writes" in refused.content[0].text
    audit = (tmp_path / "state" / "labdeck" / "audit.jsonl").read_text().splitlines()
    outcomes = [(e["operation"], e["outcome"]) for e in map(json.loads, audit)]
    assert ("pve_start_guest", "refused") in outcomes


async def test_stdout_carries_only_protocol_messages(tmp_path: Path):
    command, args = labdeck_command("mcp", "--demo")
    process = await asyncio.create_subprocess_exec(
        command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # one JSON-RPC message per line: tools/list of the whole catalogue exceeds 64 KiB
        limit=16 * 1024 * 1024,
        env={**isolated_env(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=str(ROOT),
    )
    assert process.stdin is not None and process.stdout is not None
    lines: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(message).encode() + b"\n")
        await process.stdin.drain()

    async def answer_to(request_id: int) -> dict[str, Any]:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_S)
            assert line, "the server closed stdout early"
            lines.append(line)
            message = json.loads(line)
            if message.get("id") == request_id:
                return message

    try:
        await send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "stdout-check", "version": "0"},
                },
            }
        )
        initialized = await answer_to(1)
        assert initialized["result"]["serverInfo"]["name"] == "labdeck"
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        listed = await answer_to(2)
        assert len(listed["result"]["tools"]) >= 10
        call = {"name": "pve_list_nodes", "arguments": {}}
        await send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
        nodes = await answer_to(3)
        assert nodes["result"]["isError"] is False
        assert len(nodes["result"]["structuredContent"]["nodes"]) == 3
        process.stdin.close()  # end of the session: the server exits
        rest, _ = await asyncio.wait_for(process.communicate(), STARTUP_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines += rest.splitlines()
    assert process.returncode == 0
    for line in lines:
        message = json.loads(line)
        assert message["jsonrpc"] == "2.0", line
