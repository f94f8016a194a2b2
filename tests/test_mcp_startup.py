"""What `labdeck mcp` loads before it answers ``initialize``, and that loading less changes
nothing a client sees (issue #7: cold start no slower than a bare MCP server).

Regression guards, not timings (speed is measured in bench/mcp_bench.py): a real `labdeck mcp`
subprocess over stdio, configured like a person's (config file, 0600 token file) against the
simulator, reports ``sys.modules`` when it exits.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from core.ops import catalogue
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server

ROOT = Path(__file__).resolve().parents[1]
ANSWER_S = 60.0

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "startup-test", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

#: runs the real command line in a child, then writes what it imported to argv[1]
CHILD = (
    "import gc, json, sys\n"
    "from labdeck.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump({'modules': sorted(sys.modules), 'gc': gc.isenabled()}, out)\n"
    "sys.exit(code)\n"
)

#: packages `labdeck mcp` never needs to answer initialize (the dashboard, SSH for `pct exec`,
#: the OS keyring, the PVE HTTP and TrueNAS websocket clients, the simulator). rich is not
#: here: the SDK's MCPServer constructor imports it for its log handler.
NOT_BEFORE_INITIALIZE = (
    "textual",
    "tui",
    "asyncssh",
    "keyring",
    "httpx",
    "websockets",
    "pygments",
    "simulator",
)
#: core modules that come with the operations: imported when the tools are generated
CORE_OF_THE_OPERATIONS = ("core.ops", "core.service", "core.pve", "core.truenas", "core.models")


def write_config(tmp_path: Path, handle: Any, policy: str = "") -> Path:
    """A config file for ``handle`` (read-only token in a 0600 file), as the docs advise."""
    secret = tmp_path / "pve-token"
    secret.write_text(handle.readonly_token.secret)
    os.chmod(secret, 0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        "[pve]\n"
        f'host = "{handle.host}"\n'
        f"port = {handle.port}\n"
        f'user = "{handle.readonly_token.user}"\n'
        f'token_name = "{handle.readonly_token.token_name}"\n'
        f'token_file = "{secret}"\n'
        f'ca_bundle = "{handle.ca_path}"\n' + policy
    )
    return config


async def run_labdeck_mcp(
    tmp_path: Path, config: Path, *messages: dict[str, Any]
) -> tuple[list[dict[str, Any]], set[str], int, str]:
    """Send ``messages`` to `labdeck --config CONFIG mcp`, read one answer per request, end
    its input; -> (answers, modules it had imported when it exited, exit code, stderr)."""
    modules_file = tmp_path / "modules.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(modules_file), "--config", str(config), "mcp",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
        limit=4 * 1024 * 1024,  # one line per answer: tools/list is ~130 KB
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    answers = []
    try:
        for message in messages:
            process.stdin.write((json.dumps(message) + "\n").encode())
            await process.stdin.drain()
            if "id" in message:
                line = await asyncio.wait_for(process.stdout.readline(), ANSWER_S)
                if not line:
                    break  # it exited: the exit code and stderr say why
                answers.append(json.loads(line))
        process.stdin.close()  # end of input: a stdio server exits
        _, stderr = await asyncio.wait_for(process.communicate(), ANSWER_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    modules: set[str] = set()
    if modules_file.exists():
        report = json.loads(modules_file.read_text())
        # the collector, paused for the start-up imports, runs again
        assert report["gc"] is True
        modules = set(report["modules"])
    return answers, modules, process.returncode, stderr.decode(errors="replace")


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` (packages or modules, with their submodules) in ``modules``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


async def test_initialize_is_answered_before_the_core_and_the_clients_are_imported(
    sim: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim)
    answers, modules, code, stderr = await run_labdeck_mcp(tmp_path, config, INITIALIZE)
    assert code == 0, stderr
    (answer,) = answers
    assert answer["result"]["serverInfo"]["name"] == "labdeck"
    assert "tools" in answer["result"]["capabilities"]
    # the list is the server's own: the config was read and the SDK's server ran
    assert {"core.config", "mcp_server.server", "mcp.server.mcpserver"} <= modules
    assert imported(modules, NOT_BEFORE_INITIALIZE) == []
    assert imported(modules, CORE_OF_THE_OPERATIONS) == []
    assert [m for m in modules if m.startswith(("core.pve_ops", "core.truenas_ops"))] == []


async def test_the_first_tools_list_brings_the_operations_but_not_the_dashboard_or_ssh(
    sim: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim)
    answers, modules, code, stderr = await run_labdeck_mcp(
        tmp_path, config, INITIALIZE, INITIALIZED, TOOLS_LIST
    )
    assert code == 0, stderr
    listed = [tool["name"] for tool in answers[1]["result"]["tools"]]
    assert listed == list(catalogue())
    assert set(CORE_OF_THE_OPERATIONS) <= modules
    # SSH (pct exec) and the keyring load when a call needs them; the dashboard never does
    assert imported(modules, ("textual", "tui", "asyncssh", "keyring", "simulator")) == []


async def test_a_typo_in_allow_operations_stops_the_server_before_it_serves(
    sim: Any, tmp_path: Path
) -> None:
    policy = '[policy]\nallow_operations = ["pve_start_guest", "pve_nuke_cluster"]\n'
    config = write_config(tmp_path, sim, policy)
    answers, _, code, stderr = await run_labdeck_mcp(tmp_path, config, INITIALIZE)
    assert answers == []
    assert code == 2
    assert "allow_operations names unknown operations: pve_nuke_cluster" in stderr
    assert "Traceback" not in stderr


def test_the_collector_pause_ends_even_when_the_import_fails() -> None:
    from labdeck.cli import _collector_paused

    assert gc.isenabled()
    try:
        with pytest.raises(ImportError), _collector_paused():
            assert not gc.isenabled()
            raise ImportError("no such module")
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector


# ------------------------------------------------------------------ same tools either way


async def tools_listed(server: Any) -> str:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    return json.dumps([tool.model_dump(mode="json", by_alias=True) for tool in tools])


@pytest.mark.parametrize("allow_writes", [False, True])
@pytest.mark.parametrize("clusters", [1, 2])
async def test_tools_generated_on_first_use_are_the_tools_generated_up_front(
    sim: Any, allow_writes: bool, clusters: int
) -> None:
    def factory_for(name: str) -> Callable[[], Labdeck]:
        def factory() -> Labdeck:
            profile = demo_profile(sim, allow_writes=allow_writes)
            return Labdeck(profile.model_copy(update={"name": name}), face="mcp")

        return factory

    factories = {name: factory_for(name) for name in ["alpha", "beta"][:clusters]}

    def build(on_first_use: bool) -> Any:
        return build_server(
            factories["alpha"],
            allow_writes=allow_writes,
            clusters=factories,
            tools_on_first_use=on_first_use,
        )

    up_front = await tools_listed(build(False))
    on_first_use = await tools_listed(build(True))
    assert on_first_use == up_front
    assert len(json.loads(up_front)) == len(catalogue())


async def test_connecting_does_not_generate_the_tools_and_listing_does(sim: Any) -> None:
    from mcp_server.server import ToolsOnFirstUse

    server = build_server(
        lambda: Labdeck(demo_profile(sim, allow_writes=False), face="mcp"), allow_writes=False
    )
    manager = server._tool_manager  # the SDK's attribute that build_server swaps (see there)
    assert isinstance(manager, ToolsOnFirstUse)
    async with Client(server) as client:  # initialize, answered
        assert not manager.generated
        tools = (await client.list_tools()).tools
        assert manager.generated
        overview = await client.call_tool("pve_cluster_overview", {})
    assert len(tools) == len(catalogue())
    assert not overview.is_error


def _described(tool: Any) -> dict[str, Any]:
    """All of a tool the SDK reads when listing or calling it, but its function."""
    meta = tool.fn_metadata
    output = meta.output_model
    return {
        "listed": (
            tool.name,
            tool.title,
            tool.description,
            tool.parameters,
            tool.icons,
            tool.meta,
            tool.annotations,
        ),
        "output_schema": meta.output_schema,
        "wrap_output": meta.wrap_output,
        "output_model": None if output is None else output.model_json_schema(),
        "arguments": meta.arg_model.model_json_schema(),
        # resolver plans are keyed on each tool's own resolver: how many, not which
        "runs": (
            tool.is_async,
            tool.context_kwarg,
            sorted(tool.resolved_params),
            len(tool.resolver_plans),
        ),
        "function": (tool.fn.__name__, tool.fn.__annotations__.get("return")),
    }


@pytest.mark.parametrize("allow_writes", [False, True])
def test_tools_made_alike_are_what_the_sdk_makes_of_each_operation(
    monkeypatch: pytest.MonkeyPatch, allow_writes: bool
) -> None:
    """``_tools`` has the SDK make one tool per result model and makes the others with that
    result alike (``_made_alike``): each must be what the SDK makes of it on its own."""
    from mcp.server.mcpserver.tools import Tool

    from mcp_server.server import _tool, _tools

    made_by_sdk = []
    from_function = Tool.from_function

    def counted(*args: Any, **kwargs: Any) -> Any:  # counts, and lets the SDK do the work
        made_by_sdk.append(kwargs.get("name"))
        return from_function(*args, **kwargs)

    monkeypatch.setattr(Tool, "from_function", counted)
    tools = _tools(allow_writes=allow_writes, clusters=("alpha", "beta"))
    operations = list(catalogue().values())
    assert len(made_by_sdk) < len(tools) == len(operations)
    alike = [op for op in operations if op.name not in made_by_sdk]
    assert alike and not any(op.confirm for op in alike)
    for op, tool in zip(operations, tools, strict=True):
        alone = _tool(op, allow_writes=allow_writes, clusters=("alpha", "beta"))
        assert _described(tool) == _described(alone), op.name
    # each has its own metadata: giving one an argument model leaves the others alone
    assert len({id(tool.fn_metadata) for tool in tools}) == len(tools)
