"""MCP server figures: cold start against a bare server, concurrent reads, and a bounded load.

Every server here is a real `labdeck mcp` subprocess configured like a user's (environment
variables, a mode-0600 token file) and pointed at a `labdeck sim` subprocess; traffic stays on
loopback. Memory is each process's resident set (VmRSS) read from /proc.

The cold start alone: ``python -m bench.mcp_bench --runs 7 --repeat 3``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core_bench import ROOT, ExternalSim, percentile

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "labdeck-bench", "version": "1"},
    },
}
START_TIMEOUT_S = 60.0


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (VmRSS), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return round(int(found.group(1)) / 1024, 1)


def labdeck_env(sim: ExternalSim, workdir: Path) -> dict[str, str]:
    """The environment of a `labdeck` that reaches ``sim`` with the read-only token.

    Config and state (the audit log) live in ``workdir``; the secret goes in a 0600 file,
    never on a command line.
    """
    token_file = workdir / "pve-token"
    token_file.write_text(sim.readonly_token.secret)
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_"))}  # fmt: skip
    env.update(
        XDG_CONFIG_HOME=str(workdir / "config"),
        XDG_STATE_HOME=str(workdir / "state"),
        PYTHONUNBUFFERED="1",
        LABDECK_PVE_HOST=sim.host,
        LABDECK_PVE_PORT=str(sim.port),
        LABDECK_PVE_USER=sim.readonly_token.user,
        LABDECK_PVE_TOKEN_NAME=sim.readonly_token.token_name,
        LABDECK_PVE_TOKEN_FILE=str(token_file),
        LABDECK_PVE_CA_BUNDLE=sim.ca_path,
    )
    return env


# ------------------------------------------------------------------ cold start


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


@dataclass(frozen=True, slots=True)
class ColdStart:
    """One stdio server's start, from spawning it."""

    initialize_s: float  # until the answer to ``initialize`` (the goal's figure)
    tools_list_s: float  # until the answer to the first ``tools/list``, sent right after
    cpu_initialize_s: float  # the server's CPU time when it answered ``initialize``
    cpu_tools_list_s: float  # ... and when it answered ``tools/list``


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc (10 ms steps)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ask(process: subprocess.Popen[str], request: dict[str, Any]) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(request) + "\n")
    process.stdin.flush()
    if "id" not in request:
        return {}
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    if "result" not in answer:
        raise RuntimeError(f"{request['method']} failed: {answer}")
    return answer


def _cold_start(argv: list[str], env: dict[str, str]) -> ColdStart:
    """Spawn a stdio server; time its answers to ``initialize`` and the first ``tools/list``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, cwd=ROOT, text=True,
    )  # fmt: skip
    try:
        _ask(process, INITIALIZE)
        initialized = time.perf_counter() - started
        cpu_initialized = cpu_s(process.pid)  # it now waits for input: its count is final
        _ask(process, INITIALIZED)
        _ask(process, TOOLS_LIST)
        listed = time.perf_counter() - started
        cpu_listed = cpu_s(process.pid)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: a stdio server exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return ColdStart(initialized, listed, cpu_initialized, cpu_listed)


def _medians(starts: list[ColdStart]) -> dict[str, float]:
    return {
        name: round(statistics.median(getattr(start, name) for start in starts), 3)
        for name in ColdStart.__slots__
    }


def bench_cold_start(sim: ExternalSim, runs: int) -> dict[str, Any]:
    """`labdeck mcp` (a real profile, not --demo) vs a bare one-tool server, interleaved.

    The goal's figure is the time to the answer to ``initialize``; the first ``tools/list``
    (where `labdeck mcp` generates its tools) and the servers' CPU time at each answer
    (steadier than wall time on a busy machine) are reported beside it.
    """
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        # The warm-up runs also write the bytecode cache, as any installed Python package
        # has one: with PYTHONDONTWRITEBYTECODE set, every run would compile the project's
        # edited modules again, while the bare server's (site-packages) are compiled.
        env = labdeck_env(sim, Path(tmp))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        labdeck_argv = [sys.executable, "-m", "labdeck", "mcp"]
        bare_argv = [sys.executable, str(ROOT / "bench" / "bare_mcp.py")]
        _cold_start(labdeck_argv, env)  # warm the OS file cache and the bytecode cache
        _cold_start(bare_argv, env)
        ours: list[ColdStart] = []
        bare: list[ColdStart] = []
        for _ in range(runs):
            ours.append(_cold_start(labdeck_argv, env))
            bare.append(_cold_start(bare_argv, env))
    median_ours, median_bare = _medians(ours), _medians(bare)
    return {
        "runs": runs,
        "labdeck_median_s": median_ours["initialize_s"],
        "bare_median_s": median_bare["initialize_s"],
        "ratio": round(median_ours["initialize_s"] / median_bare["initialize_s"], 2),
        "goal": "labdeck <= bare",
        "to_first_tools_list_s": {
            "labdeck": median_ours["tools_list_s"],
            "bare": median_bare["tools_list_s"],
        },
        "cpu_to_initialize_s": {
            "labdeck": median_ours["cpu_initialize_s"],
            "bare": median_bare["cpu_initialize_s"],
        },
        "cpu_to_first_tools_list_s": {
            "labdeck": median_ours["cpu_tools_list_s"],
            "bare": median_bare["cpu_tools_list_s"],
        },
    }


# ------------------------------------------------------------------ streamable HTTP server


@dataclass
class HttpServer:
    """A `labdeck mcp --transport streamable-http` subprocess and how to reach it."""

    url: str
    token: str
    process: asyncio.subprocess.Process
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))


async def _drain(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    """Keep reading the server's stderr so its pipe never fills and blocks it."""
    while line := await stream.readline():
        tail.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def http_server(sim: ExternalSim, workdir: Path) -> AsyncIterator[HttpServer]:
    token = secrets.token_urlsafe(32)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labdeck", "mcp", "--transport", "streamable-http", "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**labdeck_env(sim, workdir), "LABDECK_MCP_TOKEN": token},
    )  # fmt: skip
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=50)
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_read_url(process.stderr, tail), START_TIMEOUT_S)
        drain = asyncio.create_task(_drain(process.stderr, tail))
        yield HttpServer(url, token, process, tail)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


async def _read_url(stream: asyncio.StreamReader, tail: deque[str]) -> str:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError("labdeck mcp exited early:\n" + "".join(tail))
        tail.append(line)
        found = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line)
        if found:
            return found.group(1)


@contextlib.asynccontextmanager
async def mcp_client(server: HttpServer) -> AsyncIterator[Any]:
    """The SDK client over streamable HTTP with the bearer token; big pool for 200 in flight."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=httpx2.Timeout(60.0),
            limits=limits,
        ) as http,
        Client(streamable_http_client(server.url, http_client=http)) as client,
    ):
        yield client


def read_call(i: int, vmids: list[int]) -> tuple[str, dict[str, Any]]:
    """The i-th call of a mixed read load: listings, one guest's status, the overview."""
    match i % 4:
        case 0:
            return "pve_list_guests", {"limit": 20}
        case 1:
            return "pve_guest_status", {"vmid": vmids[i % len(vmids)]}
        case 2:
            return "pve_cluster_overview", {}
        case _:
            return "pve_list_guests", {"status": "running", "limit": 50,
                                       "fields": ["vmid", "name", "cpu", "mem"]}  # fmt: skip


@dataclass
class Round:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_round(client: Any, calls: int, concurrency: int, vmids: list[int],
                    first: int = 0) -> Round:  # fmt: skip
    """``calls`` read tool calls, at most ``concurrency`` in flight at any moment."""
    result = Round()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        name, arguments = read_call(i, vmids)
        async with gate:
            started = time.perf_counter()
            try:
                answer = await client.call_tool(name, arguments)
            except Exception as exc:  # a benchmark counts failures instead of stopping
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                if answer.is_error:
                    result.errors.append(f"{name}: {answer.content[0].text[:200]}")
            result.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(first + i) for i in range(calls)))
    return result


async def guest_ids(client: Any) -> list[int]:
    listing = await client.call_tool("pve_list_guests", {"fields": ["vmid"]})
    return [row[0] for row in listing.structured_content["rows"]]


async def _concurrent(sim: ExternalSim, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        async with http_server(sim, Path(tmp)) as server:
            async with _session_errors_counted(server) as (client, session_errors):
                vmids = await guest_ids(client)
                await run_round(client, 20, 20, vmids)  # warm: connections, imports, caches
                started = time.perf_counter()
                done = await run_round(client, calls, calls, vmids)
                total = time.perf_counter() - started
    return {
        "session_errors": session_errors,
        "calls": calls,
        "errors": len(done.errors),
        "total_s": round(total, 3),
        "p50_ms": round(1000 * percentile(done.latencies, 50), 1),
        "p99_ms": round(1000 * percentile(done.latencies, 99), 1),
        "calls_per_s": round(calls / total, 1),
    }


#: the listing sizes an agent asks for (issue #7: 50 / 500 / all)
LISTING_LIMITS: tuple[int | None, ...] = (50, 500, None)
#: the server's read cache keeps a listing 2 s; a call after this pause fetches anew
CACHE_EXPIRED_S = 2.1


def _answer_size(answer: Any) -> tuple[int, int]:
    """(bytes of the tool result as JSON — content and structuredContent, what crosses the
    wire —, bytes of its text content — what a model that reads text is given)."""
    wire = json.dumps(answer.model_dump(mode="json", by_alias=True, exclude_none=True),
                      separators=(",", ":"))  # fmt: skip
    text = "".join(getattr(block, "text", "") for block in answer.content)
    return len(wire.encode()), len(text.encode())


async def _listings(client: Any, guests: int, rounds: int) -> dict[str, Any]:
    """``pve_list_guests`` with ``limit`` 50, 500 and none, over MCP: latency with the
    cluster fetched anew (each round, after the cache expired, one limit in turn goes first)
    and from the server's cache (the next calls, e.g. an agent paging), and the sizes."""
    fresh: dict[str, list[float]] = {}
    cached: dict[str, list[float]] = {}
    sizes: dict[str, tuple[int, int, int]] = {}
    limits = [limit for limit in LISTING_LIMITS if limit is None or limit < guests]
    for r in range(rounds):
        await asyncio.sleep(CACHE_EXPIRED_S)
        order = limits[r % len(limits) :] + limits[: r % len(limits)]
        for position, limit in enumerate(order):
            name = "all" if limit is None else str(limit)
            started = time.perf_counter()
            answer = await client.call_tool("pve_list_guests", {} if limit is None else
                                            {"limit": limit})  # fmt: skip
            elapsed = time.perf_counter() - started
            if answer.is_error:
                raise RuntimeError(f"pve_list_guests {name}: {answer.content[0].text[:200]}")
            (fresh if position == 0 else cached).setdefault(name, []).append(elapsed)
            wire, text = _answer_size(answer)
            sizes[name] = (len(answer.structured_content["rows"]), wire, text)
    figures: dict[str, Any] = {}
    for name, (rows, wire, text) in sizes.items():
        figures[name] = {
            "rows": rows,
            "fresh_median_ms": round(1000 * statistics.median(fresh[name]), 1),
            "cached_median_ms": round(1000 * statistics.median(cached[name]), 1),
            "wire_bytes": wire,
            "text_bytes": text,
            "est_tokens": text // 4,
        }
    return figures


async def _mcp_listings(sim: ExternalSim, guests: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        async with http_server(sim, Path(tmp)) as server, mcp_client(server) as client:
            await client.call_tool("pve_list_guests", {"limit": 1})  # warm: TLS, imports
            return await _listings(client, guests, rounds)


def bench_listings(sim: ExternalSim, guests: int, rounds: int = 6) -> dict[str, Any]:
    """Listing 50 / 500 / all guests through a real `labdeck mcp` over streamable HTTP."""
    return asyncio.run(_mcp_listings(sim, guests, rounds))


def bench_concurrent(sim: ExternalSim, calls: int) -> dict[str, Any]:
    """``calls`` read tool calls all at once on one session, over streamable HTTP."""
    return asyncio.run(_concurrent(sim, calls))


@contextlib.asynccontextmanager
async def _session_errors_counted(server: HttpServer) -> AsyncIterator[tuple[Any, list[str]]]:
    """The client; a transport failure that ends the session is recorded, not raised."""
    errors: list[str] = []
    try:
        async with mcp_client(server) as client:
            yield client, errors
    except Exception as exc:  # e.g. ExceptionGroup(ReadError) from the SDK's transport
        errors.append(f"{type(exc).__name__}: {exc!r}"[:300])


async def _load(sim: ExternalSim, total: int, concurrency: int, samples: int) -> dict[str, Any]:
    """``total`` calls in rounds; RSS of the MCP server and the simulator between rounds."""
    per_round = total // samples
    rss: list[tuple[int, float, float]] = []
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        async with http_server(sim, Path(tmp)) as server:
            pids = (server.process.pid, sim.process.pid)
            async with _session_errors_counted(server) as (client, session_errors):
                vmids = await guest_ids(client)
                await run_round(client, concurrency, concurrency, vmids)  # warm-up, not counted
                rss.append((0, rss_mib(pids[0]), rss_mib(pids[1])))
                started = time.perf_counter()
                for index in range(samples):
                    first = index * per_round
                    done = await run_round(client, per_round, concurrency, vmids, first)
                    latencies += done.latencies
                    errors += done.errors
                    rss.append((first + per_round, rss_mib(pids[0]), rss_mib(pids[1])))
            elapsed = time.perf_counter() - started
    if len(rss) < 2:
        return {"session_errors": session_errors, "errors": len(errors)}
    start, middle, end = rss[0], rss[len(rss) // 2], rss[-1]
    # growth over the second half: a leak keeps growing there, warm-up effects do not
    return {
        "session_errors": session_errors,
        "requests": per_round * samples,
        "concurrency": concurrency,
        "errors": len(errors),
        "first_errors": errors[:3],
        "total_s": round(elapsed, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1),
        "server_rss_mib": {"start": start[1], "middle": middle[1], "end": end[1]},
        "sim_rss_mib": {"start": start[2], "middle": middle[2], "end": end[2]},
        "server_growth_second_half_mib": round(end[1] - middle[1], 1),
        "sim_growth_second_half_mib": round(end[2] - middle[2], 1),
        "rss_samples": [{"after": n, "server": s, "sim": m} for n, s, m in rss],
    }


def bench_load(sim: ExternalSim, total: int, concurrency: int, samples: int = 10) -> dict[str, Any]:
    return asyncio.run(_load(sim, total, concurrency, samples))


def main() -> int:
    """``python -m bench.mcp_bench [--runs 7] [--repeat 1]``: the cold start figure alone."""
    import argparse

    from bench.core_bench import external_sim

    parser = argparse.ArgumentParser(prog="python -m bench.mcp_bench")
    parser.add_argument("--runs", type=int, default=7, help="starts of each server per figure")
    parser.add_argument("--repeat", type=int, default=1, help="figures to take, one per line")
    args = parser.parse_args()
    with external_sim(100, 3) as sim:  # never called: the figure does not depend on its size
        for _ in range(args.repeat):
            print(json.dumps(bench_cold_start(sim, args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
