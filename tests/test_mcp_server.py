"""The MCP face through a real MCP client (in memory), against the simulator over HTTPS.

Each test opens its ``Client`` in the test body (fixtures here are synchronous factories).
Both protocol generations are exercised where they differ: "auto" negotiates 2026-07-28
(elicitation rides ``input_required`` rounds), "legacy" the 2025-11-25 handshake
(elicitation is a request sent mid-call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from core.audit import AuditLog
from core.ops import catalogue
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server

MODES = ["auto", "legacy"]
CLI_HOW_TO_ALLOW = (
    "The MCP server is read-only: restart it with `labdeck mcp --allow-writes`"
    " (or set allow_writes = true in [policy]) to allow this."
)


# ------------------------------------------------------------------ helpers


def sent_writes(handle: Any) -> list[tuple[str, str]]:
    return [(method, path) for (method, path) in handle.request_log if method != "GET"]


def sim_guests(handle: Any) -> dict[int, Any]:
    """The simulator's own view of its guests (read on its loop)."""
    return handle.call(lambda: dict(handle.state.guests))


def pick(handle: Any, *, status: str, kind: str | None = None) -> Any:
    for guest in sorted(sim_guests(handle).values(), key=lambda g: g.vmid):
        if guest.status == status and not guest.template and kind in (None, guest.kind):
            return guest
    raise AssertionError(f"the seeded cluster has no {status} guest")


def audit_lines(audit_log: AuditLog) -> list[dict[str, Any]]:
    if not audit_log.path.exists():
        return []
    return [json.loads(line) for line in audit_log.path.read_text().splitlines()]


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


class Elicitations:
    """An elicitation callback that answers with ``action`` and remembers what it was asked."""

    def __init__(self, action: str = "accept", content: dict[str, Any] | None = None) -> None:
        self.action = action
        self.content = {"confirm": True} if content is None and action == "accept" else content
        self.asked: list[ElicitRequestParams] = []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        return ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


@pytest.fixture
def serve(audit_log: AuditLog) -> Callable[..., Any]:
    """``serve(handle, allow_writes=False)`` -> an MCPServer on that simulator.

    The service is built like ``labdeck mcp`` builds it (face mcp, reads audited).
    """

    def build(
        handle: Any,
        *,
        allow_writes: bool = False,
        protected: list[str] | None = None,
        how_to_allow: str = CLI_HOW_TO_ALLOW,
        tweak: Callable[[Any], None] | None = None,
    ) -> Any:
        profile = demo_profile(handle, allow_writes=allow_writes)
        if protected:
            profile.policy.protected = list(protected)
        if tweak is not None:
            tweak(profile)

        def factory() -> Labdeck:
            return Labdeck(
                profile,
                face="mcp",
                allow_writes=allow_writes,
                audit=audit_log,
                audit_reads=True,
                how_to_allow=how_to_allow,
            )

        return build_server(factory, allow_writes=allow_writes)

    return build


# ------------------------------------------------------------------ tools/list


async def test_every_catalogue_operation_is_a_tool_with_matching_annotations(sim, serve):
    ops = catalogue()
    async with Client(serve(sim)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(tools) == list(ops)
    for name, op in ops.items():
        hints = tools[name].annotations
        assert hints is not None
        assert hints.read_only_hint is op.read_only, name
        assert hints.destructive_hint is op.destructive, name
        assert hints.idempotent_hint is op.idempotent, name
        assert hints.open_world_hint is False, name


async def test_input_schemas_are_the_operations_parameters_with_descriptions(sim, serve):
    async with Client(serve(sim)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, op in catalogue().items():
        schema = tools[name].input_schema
        assert schema["type"] == "object"
        assert schema.get("additionalProperties") is False, name
        assert set(schema.get("properties", {})) == set(op.params.model_fields), name
        for field_name, field in op.params.model_fields.items():
            if field.description:
                assert schema["properties"][field_name]["description"] == field.description
            if field.is_required():
                assert field_name in schema.get("required", []), (name, field_name)
    guests = tools["pve_list_guests"].input_schema["properties"]
    assert "vmid, name, node, status" in guests["fields"]["description"]
    status = tools["pve_guest_status"].input_schema
    assert status["required"] == ["vmid"]
    assert status["properties"]["vmid"]["minimum"] == 100


async def test_output_schemas_are_the_result_models(sim, serve):
    async with Client(serve(sim)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, op in catalogue().items():
        schema = tools[name].output_schema
        assert schema is not None, name
        assert set(schema["properties"]) == set(op.result.model_fields), name


async def test_columnar_rows_publish_no_schema_per_row_or_cell(sim, serve):
    """A client that validates results (this SDK's does, with jsonschema) walks every node of
    the output schema over the result: a schema per cell cost 0.4 s on 5,000 guests."""
    async with Client(serve(sim)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        listing = await client.call_tool("pve_list_guests", {})  # validated by the client
    columnar = [name for name, tool in tools.items()
                if "rows" in (tool.output_schema or {}).get("properties", {})]  # fmt: skip
    assert "pve_list_guests" in columnar and len(columnar) > 3
    for name in columnar:
        rows = tools[name].output_schema["properties"]["rows"]  # type: ignore[index]
        assert rows["type"] == "array" and "items" not in rows, name
        assert "columns" in rows["description"], name
    assert listing.structured_content["rows"] and not listing.is_error


async def test_write_tools_say_their_side_effects_and_how_to_allow_them(sim, serve):
    async with Client(serve(sim)) as client:
        read_only = {tool.name: tool for tool in (await client.list_tools()).tools}
    async with Client(serve(sim, allow_writes=True)) as client:
        writable = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, op in catalogue().items():
        description = read_only[name].description or ""
        assert description.startswith(op.description)
        if op.read_only:
            assert "changes nothing" in description
            continue
        assert "Side effects" in description
        assert "labdeck mcp --allow-writes" in description
        assert "labdeck mcp --allow-writes" not in (writable[name].description or "")
        assert ("confirm each call" in description) is op.confirm


async def test_server_instructions_point_to_a_starting_tool(sim, serve):
    async with Client(serve(sim)) as client:
        assert "pve_cluster_overview" in (client.instructions or "")
        assert "read-only" in (client.instructions or "")


# ------------------------------------------------------------------ reads


async def test_list_guests_defaults_to_compact_columns_of_every_guest(sim, serve):
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_list_guests", {})
    assert not result.is_error
    table = result.structured_content
    assert table["columns"] == ["vmid", "name", "node", "status"]
    expected = [
        [g.vmid, g.name, g.node, g.status]
        for g in sorted(sim_guests(sim).values(), key=lambda g: g.vmid)
    ]
    assert table["rows"] == expected
    assert table["total"] == len(expected)
    assert table["next_cursor"] is None
    # the text block is the same data, compact: about 36 characters per guest
    assert json.loads(text_of(result)) == table
    assert len(text_of(result)) / len(expected) <= 40


async def test_list_guests_filters_extra_fields_and_pages(sim, serve):
    guests = sorted(sim_guests(sim).values(), key=lambda g: g.vmid)
    running_qemu = [g for g in guests if g.kind == "qemu" and g.status == "running"]
    assert len(running_qemu) >= 3
    async with Client(serve(sim)) as client:
        filtered = await client.call_tool(
            "pve_list_guests",
            {"kind": "qemu", "status": "running", "fields": ["vmid", "type", "maxcpu"]},
        )
        table = filtered.structured_content
        assert table["columns"] == ["vmid", "type", "maxcpu"]
        assert [row[0] for row in table["rows"]] == [g.vmid for g in running_qemu]
        assert {row[1] for row in table["rows"]} == {"qemu"}
        assert [row[2] for row in table["rows"]] == [g.cores for g in running_qemu]

        # fields sent as a JSON string (some clients do) work the same
        as_text = await client.call_tool(
            "pve_list_guests",
            {"kind": "qemu", "status": "running", "fields": '["vmid","type","maxcpu"]'},
        )
        assert as_text.structured_content == table

        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            args: dict[str, Any] = {"limit": 10}
            if cursor:
                args["cursor"] = cursor
            page = (await client.call_tool("pve_list_guests", args)).structured_content
            pages += 1
            assert page["total"] == len(guests)
            seen += [row[0] for row in page["rows"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [g.vmid for g in guests]
    assert pages == -(-len(guests) // 10)


async def test_cluster_overview_matches_the_simulated_cluster(sim, serve):
    guests = sim_guests(sim).values()
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_cluster_overview", {})
    overview = result.structured_content
    assert not result.is_error
    assert overview["cluster_name"] == "labdeck-demo"
    assert overview["quorate"] is True
    assert overview["nodes_online"] == overview["nodes_total"] == 3
    assert overview["guests_total"] == len(guests)
    assert overview["guests_running"] == sum(g.status == "running" for g in guests)
    assert overview["qemu_total"] == sum(g.kind == "qemu" for g in guests)


async def test_guest_status_reports_the_guests_live_state(sim, serve):
    guest = pick(sim, status="running", kind="qemu")
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_guest_status", {"vmid": guest.vmid})
    status = result.structured_content
    assert (status["vmid"], status["name"], status["node"], status["kind"], status["status"]) == (
        guest.vmid,
        guest.name,
        guest.node,
        "qemu",
        "running",
    )
    assert status["maxmem"] == guest.memory_mib * 1024 * 1024
    assert status["uptime"] > 0


async def test_list_pools_lists_each_pool_with_its_members(sim, serve):
    pools = sim.call(lambda: {p.poolid: set(p.vmids) for p in sim.state.pools.values()})
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_list_pools", {})
    listed = result.structured_content["pools"]
    assert [p["poolid"] for p in listed] == sorted(pools)
    for pool in listed:
        members = {m["vmid"] for m in pool["members"] if m["type"] in ("qemu", "lxc")}
        assert members == pools[pool["poolid"]]


async def test_reads_are_audited_as_agent_activity(sim, serve, audit_log):
    async with Client(serve(sim)) as client:
        await client.call_tool("pve_list_nodes", {})
    (line,) = [e for e in audit_lines(audit_log) if e["operation"] == "pve_list_nodes"]
    assert (line["face"], line["access"], line["outcome"]) == ("mcp", "read", "ok")


# ------------------------------------------------------------------ bad input


async def test_unknown_vmid_is_an_error_that_says_what_to_do(sim, serve):
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_guest_status", {"vmid": 99999})
    assert result.is_error
    text = text_of(result)
    assert "no guest with vmid 99999" in text
    assert "pve_list_guests" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("pve_guest_status", {"vmid": 5}, "vmid: Input should be greater than or equal to 100"),
        ("pve_guest_status", {}, "vmid: Field required"),
        ("pve_guest_status", {"vmid": "abc"}, "vmid: Input should be a valid integer"),
        ("pve_list_guests", {"fields": ["vmid", "colour"]}, "fields: unknown field(s) ['colour']"),
        ("pve_list_guests", {"colour": "red"}, "colour: unknown parameter (accepted: node,"),
        ("pve_list_guests", {"status": "sleeping"}, "status: Input should be 'running'"),
    ],
)
async def test_bad_arguments_are_refused_naming_the_field(sim, serve, tool, arguments, expected):
    sim.clear_request_log()
    async with Client(serve(sim)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert expected in text_of(result)
    assert sim.request_log == []  # refused before anything was sent


async def test_an_unknown_tool_is_an_error(sim, serve):
    async with Client(serve(sim)) as client:
        result = await client.call_tool("pve_delete_everything", {})
    assert result.is_error
    assert "Unknown tool" in text_of(result)


# ------------------------------------------------------------------ writes


@pytest.mark.parametrize("how_to_allow", [CLI_HOW_TO_ALLOW, "core default"])
async def test_read_only_server_refuses_writes_before_sending_anything(
    fresh_sim, serve, audit_log, how_to_allow
):
    guest = pick(fresh_sim, status="stopped")
    kwargs = {} if how_to_allow == "core default" else {"how_to_allow": how_to_allow}
    fresh_sim.clear_request_log()
    async with Client(serve(fresh_sim, **kwargs)) as client:
        result = await client.call_tool("pve_start_guest", {"vmid": guest.vmid})
    assert result.is_error
    assert "read-only" in text_of(result)
    assert "labdeck mcp --allow-writes" in text_of(result)
    assert fresh_sim.request_log == []
    assert sim_guests(fresh_sim)[guest.vmid].status == "stopped"
    (line,) = audit_lines(audit_log)
    assert (line["operation"], line["outcome"], line["error"]) == (
        "pve_start_guest",
        "refused",
        "policy",
    )


@pytest.mark.parametrize("mode", MODES)
async def test_start_runs_with_writes_allowed_and_reports_progress(
    make_sim, serve, audit_log, mode
):
    handle = make_sim(speed=10.0)  # slow enough that the task is polled a few times
    guest = pick(handle, status="stopped")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with Client(serve(handle, allow_writes=True), mode=mode) as client:
        result = await client.call_tool(
            "pve_start_guest", {"vmid": guest.vmid}, progress_callback=on_progress
        )
        assert not result.is_error, text_of(result)
        started = result.structured_content
        assert (started["vmid"], started["changed"], started["status_after"]) == (
            guest.vmid,
            True,
            "running",
        )
        status = await client.call_tool("pve_guest_status", {"vmid": guest.vmid})
    assert status.structured_content["status"] == "running"
    assert sim_guests(handle)[guest.vmid].status == "running"
    assert progress, "no progress notification arrived"
    values = [value for value, _, _ in progress]
    assert values == sorted(values)
    assert all("running" in (message or "") for _, _, message in progress)
    writes = [e for e in audit_lines(audit_log) if e["access"] == "write"]
    assert [(e["operation"], e["outcome"]) for e in writes] == [("pve_start_guest", "ok")]


@pytest.mark.parametrize("mode", MODES)
async def test_destructive_tool_runs_once_a_person_confirms(fresh_sim, serve, mode):
    guest = pick(fresh_sim, status="running")
    elicitation = Elicitations("accept")
    async with Client(
        serve(fresh_sim, allow_writes=True), mode=mode, elicitation_callback=elicitation
    ) as client:
        result = await client.call_tool("pve_stop_guest", {"vmid": guest.vmid})
    assert not result.is_error, text_of(result)
    assert result.structured_content["status_after"] == "stopped"
    assert sim_guests(fresh_sim)[guest.vmid].status == "stopped"
    (asked,) = elicitation.asked
    assert f"{guest.vmid} ({guest.name}) on node {guest.node}" in asked.message
    assert asked.requested_schema["properties"]["confirm"]["type"] == "boolean"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("action", "content", "expected"),
    [
        ("decline", None, "The user declined pve_stop_guest"),
        ("cancel", None, "dismissed the confirmation"),
        ("accept", {"confirm": False}, "did not confirm"),
    ],
)
async def test_destructive_tool_refused_when_the_person_says_no(
    fresh_sim, serve, audit_log, mode, action, content, expected
):
    guest = pick(fresh_sim, status="running")
    elicitation = Elicitations(action, content)
    fresh_sim.clear_request_log()
    async with Client(
        serve(fresh_sim, allow_writes=True), mode=mode, elicitation_callback=elicitation
    ) as client:
        result = await client.call_tool("pve_stop_guest", {"vmid": guest.vmid})
    assert result.is_error
    assert expected in text_of(result)
    assert "Nothing was changed" in text_of(result)
    assert len(elicitation.asked) == 1
    assert sent_writes(fresh_sim) == []
    assert sim_guests(fresh_sim)[guest.vmid].status == "running"
    (line,) = [e for e in audit_lines(audit_log) if e["access"] == "write"]
    assert (line["outcome"], line["error"]) == ("refused", "confirmation_required")


@pytest.mark.parametrize("mode", MODES)
async def test_destructive_tool_refused_by_a_client_without_elicitation(fresh_sim, serve, mode):
    guest = pick(fresh_sim, status="running")
    fresh_sim.clear_request_log()
    async with Client(serve(fresh_sim, allow_writes=True), mode=mode) as client:
        result = await client.call_tool("pve_shutdown_guest", {"vmid": guest.vmid, "wait": False})
    assert result.is_error
    text = text_of(result)
    assert "needs a person's confirmation" in text
    assert "does not support elicitation" in text
    assert f"labdeck call pve_shutdown_guest vmid={guest.vmid} wait=false" in text
    assert "--allow-writes --yes" in text
    assert sent_writes(fresh_sim) == []
    assert sim_guests(fresh_sim)[guest.vmid].status == "running"


async def test_read_only_server_never_asks_a_person_to_confirm(fresh_sim, serve):
    guest = pick(fresh_sim, status="running")
    elicitation = Elicitations("accept")
    fresh_sim.clear_request_log()
    async with Client(serve(fresh_sim), elicitation_callback=elicitation) as client:
        result = await client.call_tool("pve_stop_guest", {"vmid": guest.vmid})
    assert result.is_error
    assert "labdeck mcp --allow-writes" in text_of(result)
    assert elicitation.asked == []
    assert fresh_sim.request_log == []


async def test_no_one_is_asked_about_a_call_that_would_fail(fresh_sim, serve, audit_log):
    guest = pick(fresh_sim, status="running")
    elicitation = Elicitations("accept")
    server = serve(fresh_sim, allow_writes=True, protected=[str(guest.vmid)])
    async with Client(server, elicitation_callback=elicitation) as client:
        protected = await client.call_tool("pve_stop_guest", {"vmid": guest.vmid})
        missing = await client.call_tool("pve_stop_guest", {"vmid": 99999})
        invalid = await client.call_tool("pve_stop_guest", {"vmid": 5})
    assert protected.is_error and "is protected by the rule" in text_of(protected)
    assert missing.is_error and "no guest with vmid 99999" in text_of(missing)
    assert invalid.is_error and "vmid: Input should be greater than" in text_of(invalid)
    assert elicitation.asked == []
    assert sent_writes(fresh_sim) == []
    # refused before anyone was asked, and still on the record
    outcomes = [
        (e["outcome"], e["error"]) for e in audit_lines(audit_log) if e["access"] == "write"
    ]
    assert outcomes == [("refused", "policy"), ("error", "not_found"), ("error", "invalid_input")]


async def test_a_failed_write_is_an_error_not_a_success(fresh_sim, serve):
    guest = pick(fresh_sim, status="stopped")
    async with Client(
        serve(fresh_sim, allow_writes=True), elicitation_callback=Elicitations("accept")
    ) as client:
        result = await client.call_tool("pve_reboot_guest", {"vmid": guest.vmid})
    assert result.is_error
    assert "cannot be rebooted" in text_of(result)
    assert "pve_start_guest" in text_of(result)


# ------------------------------------------------------------------ cluster down


class Cable:
    """A TCP forwarder in front of the simulator that can be unplugged and plugged back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def plug(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def cable_to(handle: Any) -> AsyncIterator[Cable]:
    cable = Cable(handle.port)
    await cable.plug()
    try:
        yield cable
    finally:
        with contextlib.suppress(AssertionError):
            await cable.unplug()


async def test_server_starts_with_the_cluster_down_and_recovers(sim, serve):
    async with cable_to(sim) as cable:
        await cable.unplug()

        def through_cable(profile: Any) -> None:
            profile.pve.port = cable.port

        async with Client(serve(sim, tweak=through_cable)) as client:
            tools = (await client.list_tools()).tools
            assert len(tools) == len(catalogue())
            down = await client.call_tool("pve_cluster_overview", {})
            assert down.is_error
            assert "Check host and port" in text_of(down)
            assert "Traceback" not in text_of(down)

            await cable.plug()
            back = await client.call_tool("pve_cluster_overview", {})
            assert not back.is_error, text_of(back)
            assert back.structured_content["nodes_total"] == 3


async def test_errors_never_carry_the_token_secret(sim, serve):
    secret = sim.token.secret
    async with Client(serve(sim, allow_writes=True)) as client:
        results = [
            await client.call_tool("pve_guest_status", {"vmid": 99999}),
            await client.call_tool("pve_stop_guest", {"vmid": 100}),
            await client.call_tool("pve_task_status", {"upid": "nope"}),
        ]
    for result in results:
        assert result.is_error
        assert secret not in text_of(result)


def test_the_package_does_not_import_the_dashboard():
    import subprocess
    import sys

    code = (
        "import sys, mcp_server; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_tool_schemas_carry_no_generated_titles(sim, serve):
    # titles repeat property names and make every tools/list bigger for the model
    async with Client(serve(sim)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        for schema in (tool.input_schema, tool.output_schema or {}):
            text = json.dumps(schema)
            assert '"title":' not in text.replace('"properties": {"title"', ""), tool.name
