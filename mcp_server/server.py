"""The MCP server: one tool per operation of ``core.ops``, generated, never hand-written.

Each tool takes the operation's parameters (its pydantic params model is the input schema),
returns its result model (output schema + structured content), and carries the operation's
flags as ``ToolAnnotations``. Every call goes through ``Labdeck.call``: the same parsing,
policy, confirmation rule and audit trail as the dashboard and ``labdeck call``.

This module deliberately has no ``from __future__ import annotations``: the SDK reads the
generated functions' annotations at registration, and they refer to per-operation objects
(the result model, the resolver) that only exist in a closure. Annotations naming core types
are quoted instead: the core (every operation's models, the HTTP and TrueNAS clients) is
imported when the first tool is generated or called, not before ``initialize`` is answered.
"""

import json
import logging
import shlex
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
    Resolve,
)
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.resources import FunctionResource, Resource
from mcp.server.mcpserver.tools import Tool, ToolManager
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp_types import Annotations, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import ConfirmationRequired, LabdeckError, PolicyDenied

if TYPE_CHECKING:
    from core.ops import Operation
    from core.service import Labdeck

logger = logging.getLogger(__name__)

SERVER_NAME = "labdeck"
RESTART_WITH_WRITES = "labdeck mcp --allow-writes"


# ---------------------------------------------------------------- shared state


ServiceFactory = Callable[[], "Labdeck"]


@dataclass(slots=True)
class ServerState:
    """What the lifespan shares with every tool call: one service per cluster, built on first
    use (so one client per cluster for the whole server)."""

    default: str
    factories: Mapping[str, ServiceFactory]
    labs: "dict[str, Labdeck]" = field(default_factory=dict)

    @property
    def lab(self) -> "Labdeck":
        return self.for_cluster(None)

    def for_cluster(self, cluster: str | None) -> "Labdeck":
        name = self.default if cluster is None else cluster
        lab = self.labs.get(name)
        if lab is None:
            lab = self.labs[name] = self.factories[name]()
        return lab

    async def aclose(self) -> None:
        for lab in self.labs.values():
            await lab.aclose()


def _state(ctx: Context) -> ServerState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, ServerState)
    return state


def _split_cluster(
    state: ServerState, arguments: dict[str, Any]
) -> "tuple[Labdeck, dict[str, Any]]":
    """The service of the cluster the call names (``cluster``), and the other arguments.

    ``cluster`` is published only when the server has several clusters; naming an unknown
    one is refused before anything is sent, with the known names.
    """
    if len(state.factories) < 2 or "cluster" not in arguments:
        return state.lab, arguments
    rest = dict(arguments)
    cluster = rest.pop("cluster")
    if cluster is None:
        return state.lab, rest
    if not isinstance(cluster, str) or cluster not in state.factories:
        known = ", ".join(state.factories)
        raise ToolError(
            f"invalid parameters: cluster: {cluster!r} is not a configured cluster "
            f"(known: {known}). Nothing was sent."
        )
    return state.for_cluster(cluster), rest


#: the state of the connection whose request is being handled (set by ``_expose_state``):
#: a static resource takes no ``Context``, so this is how it reaches the shared service
_current_state: ContextVar[ServerState | None] = ContextVar("labdeck_mcp_state", default=None)


async def _expose_state(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: make this connection's ``ServerState`` visible while it is handled."""
    state = ctx.lifespan_context
    reset = _current_state.set(state if isinstance(state, ServerState) else None)
    try:
        return await call_next(ctx)
    finally:
        _current_state.reset(reset)


def _lifespan(
    default: str, factories: Mapping[str, ServiceFactory]
) -> Callable[[MCPServer[ServerState]], Any]:
    @asynccontextmanager
    async def lifespan(_server: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        # Each cluster's service is built on its first use (and its client on its first
        # call): initialize and tools/list are answered without the core's clients, and with
        # the cluster down.
        state = ServerState(default, factories)
        try:
            yield state
        finally:
            await state.aclose()

    return lifespan


# ---------------------------------------------------------------- arguments


def _is_container(annotation: Any) -> bool:
    if get_origin(annotation) in (list, dict):
        return True
    return any(_is_container(arg) for arg in get_args(annotation))


def _arguments_model(op: "Operation") -> type[ArgModelBase]:
    """The SDK-side argument model: passes the raw arguments on for the core to parse.

    Validation is the core's (``parse_params``), so an agent reads the same field-by-field
    messages as a person at the shell, unknown parameters are refused rather than silently
    dropped, and there is one source of truth for constraints. The published input schema
    is the operation's own params model (see ``_input_schema``).
    """
    container_fields = frozenset(
        name for name, field in op.params.model_fields.items() if _is_container(field.annotation)
    )

    class Arguments(ArgModelBase):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _decode_json_strings(cls, data: Any) -> Any:
            # Some clients send list arguments as a JSON string ('["vmid","cpu"]').
            if not isinstance(data, dict):
                return data
            decoded = dict(data)
            for name in container_fields & decoded.keys():
                value = decoded[name]
                if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
                    try:
                        decoded[name] = json.loads(value)
                    except ValueError:
                        pass  # left as is: the core names the field in its error
            return decoded

        def model_dump_one_level(self) -> dict[str, Any]:
            return {"arguments": dict(self.model_extra or {})}

    Arguments.__name__ = Arguments.__qualname__ = f"{op.name}_arguments"
    return Arguments


def compact_schema(node: Any) -> Any:
    """Drop pydantic's generated ``title`` keys: they repeat the property names, and every
    tool's schemas are sent to the model on each ``tools/list`` (about a fifth of the size)."""
    if isinstance(node, dict):
        return {
            key: (
                {name: compact_schema(sub) for name, sub in value.items()}
                if key in ("properties", "$defs")
                else compact_schema(value)
            )
            for key, value in node.items()
            if key != "title"
        }
    if isinstance(node, list):
        return [compact_schema(item) for item in node]
    return node


def _input_schema(op: "Operation", clusters: Sequence[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = compact_schema(op.params.model_json_schema(by_alias=True))
    if len(clusters) > 1:
        schema.setdefault("properties", {})["cluster"] = {
            "type": "string",
            "enum": list(clusters),
            "description": f"Which cluster (labdeck profile) to act on; default: {clusters[0]}.",
        }
    return schema


# ---------------------------------------------------------------- descriptions


def _description(op: "Operation", *, allow_writes: bool) -> str:
    parts = [op.description]
    if op.read_only:
        parts.append(f"Read-only: changes nothing on the {_SYSTEM[op.backend]}.")
        return " ".join(parts)
    parts.append(
        f"Side effects: this changes the {_SYSTEM[op.backend]}; "
        "every call is recorded in labdeck's audit log."
    )
    if not allow_writes:
        parts.append(
            "This server is running read-only, so calls are refused until the user "
            f"restarts it with `{RESTART_WITH_WRITES}`."
        )
    if op.confirm:
        parts.append(
            "A person must confirm each call: the client shows a confirmation request "
            "(MCP elicitation); without elicitation support in the client it is refused."
        )
    return " ".join(parts)


def _annotations(op: "Operation") -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=op.read_only,
        # the spec's default for a write is "destructive"; say so only when it is
        destructive_hint=op.destructive,
        idempotent_hint=op.idempotent,
        # The tools reach one configured cluster, a closed world the user chose, not the
        # open internet (the spec's example of an open world is a web search).
        open_world_hint=False,
    )


# ---------------------------------------------------------------- confirmation


class Confirm(BaseModel):
    """What the person answers to a confirmation request."""

    confirm: bool = Field(
        title="Run it",
        description="Tick to let the agent run this operation now.",
    )


@dataclass(frozen=True, slots=True)
class NotAsked:
    """The resolver did not ask a person; ``reason`` says why (None: read-only mode)."""

    reason: str | None = None


NO_ELICITATION = "no_elicitation"


def _client_can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    # a bare `elicitation: {}` (before modes existed) means form support; url-only does not
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _cli_line(op: "Operation", params: BaseModel) -> str:
    words = ["labdeck", "call", op.name]
    for name, value in params.model_dump(mode="json", exclude_unset=True).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        words.append(shlex.quote(f"{name}={text}"))
    return " ".join([*words, "--allow-writes", "--yes"])


async def _target(lab: "Labdeck", op: "Operation", arguments: dict[str, Any]) -> str:
    """Run the core's checks (audited when they refuse); a sentence naming the target."""
    guest = await lab.preflight(op, arguments)
    if guest is None:
        return "the cluster"
    label = "VM" if guest.kind == "qemu" else "container"
    return f"{label} {guest.vmid} ({guest.name}) on node {guest.node}"


def _cluster_note(state: ServerState, lab: "Labdeck") -> str:
    """`` of cluster NAME`` when the server has several: the person must know which."""
    return f" of cluster {lab.profile.name}" if len(state.factories) > 1 else ""


def _confirmation_resolver(op: "Operation") -> Callable[..., Any]:
    async def confirmation(ctx: Context, arguments: dict[str, Any]) -> Elicit[Confirm] | NotAsked:
        lab, arguments = _split_cluster(_state(ctx), arguments)
        if not lab.policy.allow_writes:
            # Never ask a person about a call the read-only policy refuses anyway.
            return NotAsked()
        # Check everything but the confirmation first: no one is asked about a call
        # that would fail (bad parameters, unknown or protected guest).
        try:
            target = await _target(lab, op, arguments)
        except LabdeckError as exc:
            raise ToolError(str(exc)) from None
        if not _client_can_elicit(ctx):
            return NotAsked(NO_ELICITATION)
        where = _cluster_note(_state(ctx), lab)
        return Elicit(
            f"An AI agent asks to run {op.name} on {target}{where}: {op.summary} Allow it?",
            Confirm,
        )

    return confirmation


def _refusal(
    op: "Operation", outcome: ElicitationResult[Any] | None, arguments: dict[str, Any]
) -> str:
    """Why a confirmation-needing call did not run, and what would let it run."""
    nothing = "Nothing was changed."
    unasked = outcome.data if isinstance(outcome, AcceptedElicitation) else None
    if isinstance(unasked, NotAsked) and unasked.reason == NO_ELICITATION:
        from core.service import parse_params

        try:
            cli = _cli_line(op, parse_params(op, arguments))
        except LabdeckError:
            cli = f"labdeck call {op.name} ... --allow-writes --yes"
        return (
            f"{op.name} needs a person's confirmation, and this MCP client cannot ask for one "
            f"(it does not support elicitation). {nothing} To run it, the user can use an MCP "
            f"client with elicitation support, or run it from a shell: {cli}"
        )
    if isinstance(outcome, DeclinedElicitation):
        return f"The user declined {op.name}. {nothing} Do not retry unless the user asks."
    if isinstance(outcome, CancelledElicitation):
        return f"The user dismissed the confirmation of {op.name}. {nothing}"
    return f"The user did not confirm {op.name}. {nothing}"


# ---------------------------------------------------------------- tools


def _result(model: BaseModel) -> CallToolResult:
    # Compact JSON for the text block: listings are columnar to stay small, and an indented
    # dump would put every cell on a line of its own.
    return CallToolResult(
        content=[TextContent(type="text", text=model.model_dump_json(by_alias=True))],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )


async def _run(
    op: "Operation",
    ctx: Context,
    arguments: dict[str, Any],
    *,
    confirmed: bool = False,
    outcome: ElicitationResult[Any] | None = None,
) -> CallToolResult:
    lab, arguments = _split_cluster(_state(ctx), arguments)

    async def progress(elapsed_s: float, message: str) -> None:
        await ctx.report_progress(elapsed_s, None, message)

    try:
        result = await lab.call(op, arguments, confirmed=confirmed, progress=progress)
    except ConfirmationRequired:
        raise ToolError(_refusal(op, outcome, arguments)) from None
    except PolicyDenied as exc:
        if not lab.policy.allow_writes and RESTART_WITH_WRITES not in str(exc):
            # whatever the service's own hint, an agent must learn how *this* server is opened
            raise ToolError(
                f"{exc.message} The user can restart the MCP server with "
                f"`{RESTART_WITH_WRITES}` to allow it."
            ) from None
        raise ToolError(str(exc)) from None
    except LabdeckError as exc:
        # The message says what went wrong and what to do; never a traceback or a secret.
        raise ToolError(str(exc)) from None
    return _result(result)


def _tool(
    op: "Operation",
    *,
    allow_writes: bool,
    clusters: Sequence[str] = (),
    made: dict[Any, Tool] | None = None,
) -> Tool:
    """The tool of ``op``. ``made``: tools made so far, by result model (``_made_alike``)."""
    returns = Annotated[CallToolResult, op.result]

    if op.confirm:
        resolver = _confirmation_resolver(op)

        async def call_confirmed(
            arguments: dict[str, Any],
            ctx: Context,
            confirmation: Annotated[ElicitationResult[Confirm], Resolve(resolver)],
        ) -> returns:
            confirmed = (
                isinstance(confirmation, AcceptedElicitation)
                and isinstance(confirmation.data, Confirm)
                and confirmation.data.confirm
            )
            return await _run(op, ctx, arguments, confirmed=confirmed, outcome=confirmation)

        fn: Callable[..., Any] = call_confirmed
    else:

        async def call(arguments: dict[str, Any], ctx: Context) -> returns:
            return await _run(op, ctx, arguments)

        fn = call

    description, annotations = _description(op, allow_writes=allow_writes), _annotations(op)
    alike = made if made is not None and not op.confirm else None  # a resolver is per tool
    like = None if alike is None else alike.get(op.result)
    if like is not None:
        tool = _made_alike(like, fn, op.name, description, annotations)
    else:
        tool = Tool.from_function(fn, name=op.name, description=description,
                                  annotations=annotations)  # fmt: skip
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact_schema(tool.fn_metadata.output_schema)
        if alike is not None:
            alike[op.result] = tool
    # The function above takes the arguments as one dict; publish and accept the
    # operation's own parameters instead (FuncMetadata reads arg_model on every call).
    tool.fn_metadata.arg_model = _arguments_model(op)
    tool.parameters = _input_schema(op, clusters)
    return tool


def _made_alike(
    like: Tool, fn: Callable[..., Any], name: str, description: str,
    annotations: ToolAnnotations,
) -> Tool:  # fmt: skip
    """The tool ``Tool.from_function`` would make of ``fn``, from ``like``: a tool made of a
    function with the same signature and return annotation (an operation without a
    confirmation, whose result model is the same). All ``from_function`` works out of the
    signature is then the same (the output schema and model, no resolved parameters), and
    working it out again (~4-5 ms a tool) was most of the time to the first ``tools/list``.
    The metadata is copied, as each tool gets its own argument model."""
    assert not like.resolved_params and not like.resolver_plans
    return Tool(
        fn=fn, name=name, title=like.title, description=description, parameters=like.parameters,
        fn_metadata=like.fn_metadata.model_copy(), is_async=like.is_async,
        context_kwarg=like.context_kwarg, annotations=annotations, icons=like.icons,
        meta=like.meta,
    )  # fmt: skip


def _tools(*, allow_writes: bool, clusters: Sequence[str]) -> list[Tool]:
    """One tool per catalogue operation, in the catalogue's order."""
    from core.ops import catalogue

    made: dict[Any, Tool] = {}
    return [_tool(op, allow_writes=allow_writes, clusters=clusters, made=made)
            for op in catalogue().values()]  # fmt: skip


class ToolsOnFirstUse(ToolManager):
    """The SDK's tool manager, filled by ``generate`` the first time any tool is asked for.

    Generating the tools (a pydantic model and two JSON schemas for each operation, and the
    whole core imported for the operations) takes about as long as starting a bare MCP
    server; done at start-up it delayed the answer to ``initialize`` (issue #7). Clients list
    the tools right after ``initialize``, so they are generated then: the same tools, byte
    for byte (tests/test_mcp_startup.py compares them with ones generated up front).

    Every method of the manager is delegated to a plain ``ToolManager`` built on first use,
    so whatever the SDK asks of its manager (list, get, call, add, remove) sees every tool.
    """

    def __init__(
        self, generate: Callable[[], list[Tool]], *, warn_on_duplicate_tools: bool
    ) -> None:
        super().__init__(warn_on_duplicate_tools)
        self._generate = generate
        self._manager: ToolManager | None = None

    @property
    def generated(self) -> bool:
        return self._manager is not None

    def tools(self) -> ToolManager:
        """The manager holding every tool, generated on the first call."""
        if self._manager is None:
            self._manager = ToolManager(self.warn_on_duplicate_tools, tools=self._generate())
        return self._manager

    def get_tool(self, name: str) -> Tool | None:
        return self.tools().get_tool(name)

    def list_tools(self) -> list[Tool]:
        return self.tools().list_tools()

    def add_tool(self, *args: Any, **kwargs: Any) -> Tool:
        return self.tools().add_tool(*args, **kwargs)

    def remove_tool(self, name: str) -> None:
        self.tools().remove_tool(name)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[Any, Any],
        convert_result: bool = False,
    ) -> Any:
        return await self.tools().call_tool(name, arguments, context, convert_result)


# ---------------------------------------------------------------- resources


INVENTORY_URI = "labdeck://inventory"
INVENTORY_GUEST_FIELDS = ["vmid", "name", "node", "type", "status"]


async def _inventory() -> str:
    """The cluster at a glance, as compact JSON: overview, nodes and every guest."""
    state = _current_state.get()
    if state is None:
        raise ResourceError("the labdeck service is not available on this connection.")
    lab = state.lab
    try:
        overview = await lab.call("pve_cluster_overview", {})
        nodes = await lab.call("pve_list_nodes", {})
        guests = await lab.call("pve_list_guests", {"fields": INVENTORY_GUEST_FIELDS})
    except LabdeckError as exc:
        raise ResourceError(str(exc)) from None
    node_rows = [
        [
            n.node,
            n.status,
            round(n.cpu, 3),
            round(n.mem / n.maxmem, 3) if n.maxmem else None,
            n.uptime,
        ]
        for n in getattr(nodes, "nodes", [])
    ]
    inventory = {
        "overview": overview.model_dump(mode="json", by_alias=True),
        "nodes": {"columns": ["node", "status", "cpu", "mem_frac", "uptime_s"], "rows": node_rows},
        "guests": guests.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return json.dumps(inventory, separators=(",", ":"))


def _resources() -> list[Resource]:
    return [
        FunctionResource.from_function(
            _inventory,
            uri=INVENTORY_URI,
            name="inventory",
            title="Cluster inventory",
            description=(
                "Compact inventory of the Proxmox VE cluster, read live: the overview (quorum, "
                "totals), one row per node (cpu and mem as fractions) and one row per guest "
                "(vmid, name, node, type, status). Columnar JSON: columns once, then rows."
            ),
            mime_type="application/json",
            annotations=Annotations(audience=["user", "assistant"], priority=0.8),
        )
    ]


# ---------------------------------------------------------------- prompts


def health_report(
    node: Annotated[
        str,
        Field(
            pattern=r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)?$",
            max_length=63,
            description="Only report on this node (default: the whole cluster).",
        ),
    ] = "",
) -> str:
    """A health check of the cluster: what is down, stopped, full or busy, and what to look at."""
    scope = f"node {node}" if node else "the Proxmox VE cluster"
    where = f', "node": "{node}"' if node else ""
    return (
        f"Write a short health report of {scope}, using labdeck's read-only tools "
        "(change nothing).\n\n"
        "1. Call pve_cluster_overview: quorum, nodes online of total, guests running of "
        "total, CPU, memory and storage use.\n"
        "2. Call pve_list_nodes: name any node that is not online, and any with CPU above "
        "85% or memory above 90%.\n"
        f'3. Call pve_list_guests with {{"status": "stopped"{where}, '
        '"fields": ["vmid", "name", "node", "type", "tags", "template"]}: the stopped guests '
        "(leave out templates, which are always stopped).\n"
        f'4. Call pve_list_guests with {{"status": "running"{where}, '
        '"fields": ["vmid", "name", "node", "cpu", "mem", "maxmem", "lock"]}: guests near their '
        "CPU or memory limit, and any guest holding a lock.\n"
        "5. For a guest that stands out, pve_guest_status gives the details.\n\n"
        "Then summarise in a few lines: overall verdict (healthy / needs attention / "
        "degraded), then what needs attention, most urgent first, each with the guest or node "
        "it concerns. Suggest actions but do not take them. Quote numbers (percentages, "
        "counts), and say plainly when a tool call failed rather than guessing."
    )


def _prompts() -> list[Prompt]:
    return [
        Prompt.from_function(
            health_report,
            name="health_report",
            title="Cluster health report",
            description=(
                "Check the cluster's health with the read-only tools (overview, nodes, stopped "
                "and busy guests) and summarise what needs attention."
            ),
        )
    ]


_SYSTEM = {"pve": "Proxmox VE cluster", "truenas": "TrueNAS system"}

INSTRUCTIONS = (
    "labdeck: tools for one Proxmox VE cluster (pve_*) and one TrueNAS system (truenas_*). "
    "Start with pve_cluster_overview or truenas_list_pools; list guests with pve_list_guests "
    "(a compact table: filter by node/status/pool/tag/name and ask for more columns with "
    "fields rather than pulling everything). Tool errors say what to do next."
)


def build_server(
    service_factory: ServiceFactory,
    *,
    allow_writes: bool,
    clusters: Mapping[str, ServiceFactory] | None = None,
    tools_on_first_use: bool = True,
) -> MCPServer:
    """An MCP server exposing every catalogue operation as a tool.

    Besides the tools: the resource ``labdeck://inventory`` (the default cluster at a glance)
    and the prompt ``health_report`` (a guided, read-only health check).

    ``service_factory`` builds the default cluster's ``Labdeck`` (on its first use; closed at
    shutdown). ``clusters`` maps more profile names to their factories: with any, every tool
    takes an optional ``cluster`` argument naming one of them (or the default, by the name of
    its profile), each cluster under its own profile's policy. ``allow_writes`` only shapes
    the tool descriptions: each service's own policy is what refuses writes, before anything
    is sent.

    The tools are generated when a client first lists or calls one (``ToolsOnFirstUse``), so
    ``initialize`` is answered without importing the operations; ``tools_on_first_use=False``
    generates them here (a long-running HTTP server pays at start, not on a request).
    """
    from labdeck import __version__

    default, factories = _clusters(service_factory, clusters)
    mode = (
        "writes are allowed"
        if allow_writes
        else (f"read-only (the user can restart it with `{RESTART_WITH_WRITES}`)")
    )
    names = list(factories)
    instructions = f"{INSTRUCTIONS} This server is {mode}."
    if len(names) > 1:
        instructions += (
            f" It reaches {len(names)} clusters ({', '.join(names)}); every tool takes an "
            f"optional `cluster` argument, default {default}."
        )
    generate = partial(_tools, allow_writes=allow_writes, clusters=names)
    server = MCPServer(
        SERVER_NAME,
        version=__version__,
        instructions=instructions,
        tools=None if tools_on_first_use else generate(),
        resources=_resources(),
        lifespan=_lifespan(default, factories),
        middleware=[_expose_state],
    )
    if tools_on_first_use:
        # MCPServer takes tools ready-made (tools=..., generated now) or one function at a
        # time (add_tool, which regenerates the schemas that _tool replaces); it has no hook
        # to generate them on demand, so its manager (a private attribute) is swapped for
        # one that does. If a release of the SDK stops using it, the server lists no tools
        # and the MCP tests fail.
        server._tool_manager = ToolsOnFirstUse(
            generate, warn_on_duplicate_tools=server.settings.warn_on_duplicate_tools
        )
    for prompt in _prompts():
        server.add_prompt(prompt)
    return server


DEFAULT_CLUSTER = "default"


def _clusters(
    service_factory: ServiceFactory, clusters: Mapping[str, ServiceFactory] | None
) -> tuple[str, dict[str, ServiceFactory]]:
    """The default cluster's name first, then the others. The default's name is its profile's,
    given as the key whose factory *is* ``service_factory`` (else ``default``)."""
    others = dict(clusters or {})
    default = next(
        (name for name, factory in others.items() if factory is service_factory), DEFAULT_CLUSTER
    )
    others.pop(default, None)
    return default, {default: service_factory, **others}
