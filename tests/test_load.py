"""Load and scale, without timing: a real `labdeck mcp` under concurrent tool calls, and the
guests table kept in step at 5,000 rows.

Speed is measured in ``bench/`` (``make bench``); here only what must hold whatever the
machine: no call fails, the server's memory settles instead of growing with the number of
requests served, and a big table stays exact (rows, cells, column widths).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rich.text import Text
from textual.app import App, ComposeResult

from tui.widgets.keyed_table import KeyedTable, cell_width

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "load-test-token-Qm4x-81Zp-kW3e"
CONCURRENCY = 200
ROUND = 1000  # calls per measured round; two rounds plus a warm-up: 2,200 requests
STARTUP_S = 60.0
# Generous: the two rounds do the same work, so a server that frees what it allocates per
# request ends them at about the same size. A leak of even 3 KiB a request shows as 3 MiB.
RSS_GROWTH_BOUND_MIB = 25.0


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found, f"no VmRSS for pid {pid}"
    return int(found.group(1)) / 1024


def server_env(sim: Any, tmp_path: Path) -> dict[str, str]:
    """`labdeck mcp` configured like a user's: env vars and a 0600 token file (read-only)."""
    token = sim.readonly_token
    token_file = tmp_path / "pve-token"
    token_file.write_text(token.secret)
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_"))}  # fmt: skip
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
        LABDECK_MCP_TOKEN=TOKEN,
        LABDECK_PVE_HOST=sim.host,
        LABDECK_PVE_PORT=str(sim.port),
        LABDECK_PVE_USER=token.user,
        LABDECK_PVE_TOKEN_NAME=token.token_name,
        LABDECK_PVE_TOKEN_FILE=str(token_file),
        LABDECK_PVE_CA_BUNDLE=sim.ca_path,
    )
    return env


@contextlib.asynccontextmanager
async def mcp_server(sim: Any, tmp_path: Path) -> AsyncIterator[tuple[str, int, list[str]]]:
    """``labdeck mcp --transport streamable-http`` as a subprocess: (url, pid, stderr lines)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labdeck", "mcp", "--transport", "streamable-http", "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=server_env(sim, tmp_path), cwd=str(ROOT),
    )  # fmt: skip
    assert process.stderr is not None
    stderr: list[str] = []

    async def read_url() -> str:
        assert process.stderr is not None
        while line := (await process.stderr.readline()).decode():
            stderr.append(line)
            if found := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
                return found.group(1)
        raise AssertionError("labdeck mcp exited early:\n" + "".join(stderr))

    async def drain() -> None:  # the pipe must never fill up and block the server
        assert process.stderr is not None
        while line := await process.stderr.readline():
            stderr.append(line.decode(errors="replace"))

    drainer = None
    try:
        url = await asyncio.wait_for(read_url(), STARTUP_S)
        drainer = asyncio.create_task(drain())
        yield url, process.pid, stderr
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        if drainer is not None:
            await asyncio.wait_for(drainer, 5)


@contextlib.asynccontextmanager
async def client_for(url: str) -> AsyncIterator[Client]:
    # Fewer connections than calls in flight: the rest wait in the client's pool, as with any
    # HTTP client, instead of overflowing the server's listen backlog (128). No keep-alive:
    # on a saturated machine a reused connection occasionally meets the server closing it
    # (a transport race, not a tool failure), which the SDK turns into a dead session.
    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=0)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=httpx2.Timeout(120.0), limits=limits) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):  # fmt: skip
        yield client


def read_call(i: int, vmids: list[int]) -> tuple[str, dict[str, Any]]:
    """A mix of reads: cached listings, one guest's live status (a request each), overview."""
    match i % 4:
        case 0:
            return "pve_list_guests", {"limit": 10, "cursor": str(i % 20)}
        case 1:
            return "pve_guest_status", {"vmid": vmids[i % len(vmids)]}
        case 2:
            return "pve_cluster_overview", {}
        case _:
            return "pve_list_guests", {"status": "running", "fields": ["vmid", "name", "cpu"]}


async def load_round(client: Client, calls: int, vmids: list[int]) -> list[str]:
    """``calls`` tool calls, ``CONCURRENCY`` in flight; returns the failures."""
    gate = asyncio.Semaphore(CONCURRENCY)
    failures: list[str] = []

    async def one(i: int) -> None:
        name, arguments = read_call(i, vmids)
        async with gate:
            try:
                result = await client.call_tool(name, arguments)
            except Exception as exc:  # counted, so one failure does not hide the others
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                return
        if result.is_error:
            failures.append(f"{name}: {result.content}")
        elif name == "pve_guest_status":
            assert result.structured_content["vmid"] == arguments["vmid"]

    await asyncio.gather(*(one(i) for i in range(calls)))
    return failures


async def test_mcp_server_serves_concurrent_reads_without_errors_or_growing_memory(sim, tmp_path):
    async with mcp_server(sim, tmp_path) as (url, pid, stderr), client_for(url) as client:
        listing = await client.call_tool("pve_list_guests", {"fields": ["vmid"]})
        vmids = [row[0] for row in listing.structured_content["rows"]]
        assert vmids

        assert await load_round(client, CONCURRENCY, vmids) == []  # warm-up: all 200 at once
        assert await load_round(client, ROUND, vmids) == []
        after_first = rss_mib(pid)
        assert await load_round(client, ROUND, vmids) == []
        after_second = rss_mib(pid)

    assert after_second - after_first < RSS_GROWTH_BOUND_MIB, (after_first, after_second)
    text = "".join(stderr)
    assert "Traceback" not in text and "ERROR" not in text, text[-2000:]
    audit = (tmp_path / "state" / "labdeck" / "audit.jsonl").read_text().splitlines()
    assert len(audit) >= 2 * ROUND + CONCURRENCY  # every read an agent made is on record


# ------------------------------------------------------------------ a 5,000-row table


class Table(KeyedTable):
    COLUMNS = (("id", "Id"), ("name", "Name"), ("load", "Load"))
    initial_sort = ("id", False)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Table()


def rows_of(count: int, load: str, long_name_every: int = 0) -> dict[str, tuple[str | Text, ...]]:
    rows: dict[str, tuple[str | Text, ...]] = {}
    for i in range(count):
        name = f"guest-{i}" + ("-with-a-long-name" if long_name_every and i % long_name_every == 0
                               else "")  # fmt: skip
        rows[f"{100 + i}"] = (f"{100 + i}", Text(name), load.format(i=i))
    return rows


def column_widths(table: KeyedTable) -> dict[str, int]:
    return {str(key.value): column.content_width for key, column in table.columns.items()}


def widest(rows: dict[str, tuple[str | Text, ...]], index: int, label: str) -> int:
    return max([cell_width(cells[index]) for cells in rows.values()] + [len(label) + 1])


async def test_a_5000_row_table_updates_in_place_and_fits_its_columns():
    async with TableApp().run_test(size=(100, 30)) as pilot:
        table = pilot.app.query_one(Table)
        first = rows_of(5000, "{i}%", long_name_every=1000)
        table.sync_rows(first)
        await pilot.pause()
        assert table.row_count == 5000
        assert column_widths(table) == {
            "id": widest(first, 0, "Id"),
            "name": widest(first, 1, "Name"),
            "load": widest(first, 2, "Load"),
        }

        # every load changes and gets narrower; the long names go: columns shrink to fit
        second = rows_of(5000, "{i}")
        row_objects = list(table.rows)
        table.sync_rows(second)
        await pilot.pause()
        assert table.sync_stats == {"added": 5000, "updated": 5000 + 5, "removed": 0}
        assert list(table.rows) == row_objects  # the same rows, updated in place
        assert table.get_row("4321") == ["4321", Text("guest-4221"), "4221"]
        assert column_widths(table)["name"] == len("guest-4999")
        assert column_widths(table)["load"] == widest(second, 2, "Load") == len("Load ")

        # rows go and come; markup in a str cell counts by what it shows
        third = {k: v for k, v in second.items() if int(k) % 2}
        third["9999"] = ("9999", Text("x"), "[b]wide-but-bold[/b]")
        table.sync_rows(third)
        await pilot.pause()
        assert table.row_count == 2501
        assert table.sync_stats["removed"] == 2500
        assert table.sync_stats["added"] == 5001  # rows kept through a rebuild are not new
        assert table.get_row("4321") == ["4321", Text("guest-4221"), "4221"]
        assert [row.key.value for row in table.ordered_rows][:3] == ["101", "103", "105"]
        assert column_widths(table)["load"] == len("wide-but-bold")
        assert table.virtual_size.width == sum(
            column.get_render_width(table) for column in table.columns.values()
        )


# ------------------------------------------------------------------ a 5,000-guest inventory


async def test_200_concurrent_reads_of_a_5000_guest_cluster_share_one_request_and_one_parse(
    make_sim, make_service
):
    handle = make_sim(guests=5000, nodes=32)
    async with make_service(handle) as lab:
        inventories = await asyncio.gather(*(lab.inventory() for _ in range(200)))
        assert lab.pve.requests_sent == 1  # coalesced in the client
        assert all(inventory is inventories[0] for inventory in inventories)  # parsed once
        guests = inventories[0].guests
        assert len(guests) == 5000
        assert [g.vmid for g in guests] == list(range(100, 5100))
        assert len(inventories[0].nodes) == 32
        # the listing an agent sees is built from that one parse too
        page = await lab.call("pve_list_guests", {"limit": 3, "cursor": "4997"})
        assert page.model_dump()["rows"] == [[g.vmid, g.name, g.node, g.status]
                                            for g in guests[4997:]]  # fmt: skip
        assert page.total == 5000 and page.next_cursor is None
        assert lab.pve.requests_sent == 1
