"""Every operation's parameters, fuzzed: bad input is refused with a field-named error and
nothing is sent; good input of the right shape is accepted. Parameters come from each
operation's own model, so a new operation is covered without a new test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput, LabdeckError
from core.ops import catalogue
from core.service import Labdeck, parse_params
from labdeck.demo import demo_profile
from simulator import SimulatorConfig, start_in_thread
from tests.conftest import _register_canaries

OPS = sorted(catalogue().values(), key=lambda op: op.name)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["; rm -rf /", "$(reboot)", "../../etc/passwd", "100\n101", "\x00", "🔥"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_params_are_accepted_or_refused_with_a_named_field(op, data) -> None:
    names = [*op.params.model_fields, "unexpected_param"]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    raw: dict[str, Any] = {name: data.draw(junk) for name in chosen}
    try:
        parsed = parse_params(op, raw)
    except InvalidInput as error:
        assert error.fields, "a refusal must name the offending parameter(s)"
        assert set(error.fields) <= set(names) | {"params"}
        assert error.message.startswith(f"invalid parameters for {op.name}")
    else:
        assert "unexpected_param" not in raw
        # whatever was accepted is of the declared, validated shape
        assert op.params.model_validate(parsed.model_dump()) == parsed
        vmid = getattr(parsed, "vmid", None)
        assert vmid is None or 100 <= vmid <= 999_999_999
        node = getattr(parsed, "node", None)
        assert node is None or (node.replace("-", "").isalnum() and node.isascii())


@pytest.mark.parametrize(
    "name", ["pve1; reboot", "$(id)", "../etc", "pve1/../../x", "-pve1", "pve1\n", "a" * 64]
)
def test_injection_shaped_node_names_never_reach_a_url(name: str) -> None:
    op = catalogue()["pve_guest_status"]
    with pytest.raises(InvalidInput) as info:
        parse_params(op, {"vmid": 100, "node": name})
    assert "node" in info.value.fields


# ------------------------------------------------------------------ invalid by the model's schema
# Every value the operation's own JSON schema (what MCP clients are shown) declares invalid
# must be refused by a call with InvalidInput naming that parameter, and nothing may reach
# the simulator: no PVE request, no TrueNAS call. jsonschema (a dependency of the MCP SDK)
# judges validity, so the test does not trust the code it checks.

#: values pydantic's lax mode converts on purpose (CLI arguments arrive as text): a JSON-schema
#: "invalid" of this kind is accepted, so it is not offered as an invalid value
_LAX_BOOL = {0, 1, "0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}

_PROBES: list[Any] = [
    None, True, False, 0, 1, -1, 1.5, 2**70, float("inf"), "", " ", "text", "NOT_A_CHOICE",
    "$(reboot)", "; rm -rf /", "`id`", "../../etc/passwd", "a\nb", "\x00", "🔥", "x" * 5000,
    [], [1], ["$(id)"], [None], {}, {"a": 1},
]  # fmt: skip


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return defs[prop["$ref"].rsplit("/", 1)[-1]]
    return prop


def _branches(prop: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    prop = _resolve(prop, defs)
    if "anyOf" in prop:
        return [b for branch in prop["anyOf"] for b in _branches(branch, defs)]
    return [prop]


def _boundaries(branch: dict[str, Any]) -> list[Any]:
    """Values just outside one branch's limits."""
    out: list[Any] = []
    for key, delta in (("minimum", -1), ("maximum", 1), ("exclusiveMinimum", 0)):
        if key in branch:
            out.append(branch[key] + delta)
    if "exclusiveMaximum" in branch:
        out.append(branch["exclusiveMaximum"])
    if "maxLength" in branch:
        out.append("a" * (branch["maxLength"] + 1))
    if branch.get("minLength", 0) > 0:
        out.append("a" * (branch["minLength"] - 1))
    if "maxItems" in branch:
        out.append(["a"] * (branch["maxItems"] + 1))
    return out


def _lax_accepts(value: Any, branches: list[dict[str, Any]]) -> bool:
    types = {b.get("type") for b in branches}
    if types & {"integer", "number"} and isinstance(value, bool):
        return True  # True -> 1
    if "boolean" in types and isinstance(value, (int, str)) and not isinstance(value, bool):
        if value in _LAX_BOOL or (isinstance(value, str) and value.lower() in _LAX_BOOL):
            return True
    if types & {"integer", "number"} and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def invalid_values(op: Any) -> dict[str, list[Any]]:
    """For each parameter: probe and boundary values its JSON schema rejects."""
    schema = op.params.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    found: dict[str, list[Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        checker = jsonschema.Draft202012Validator({"$defs": defs, **prop})
        branches = _branches(prop, defs)
        candidates = _PROBES + [v for b in branches for v in _boundaries(b)]
        bad = [
            v for v in candidates
            if not checker.is_valid(v) and not _lax_accepts(v, branches)
            and not (v is None and name not in required)  # None means "not given"
        ]  # fmt: skip
        if bad:
            found[name] = bad
    return found


INVALID = {op.name: invalid_values(op) for op in OPS}


def test_every_operation_has_parameters_to_fuzz_or_none_at_all() -> None:
    for op in OPS:
        if op.params.model_fields:
            assert INVALID[op.name], f"{op.name}: no invalid value could be derived"


def _sent(handle: Any) -> tuple[int, int]:
    nas = handle.simulator.truenas
    return len(handle.request_log), len(nas.method_log) if nas is not None else 0


@pytest.mark.parametrize("op", [op for op in OPS if INVALID[op.name]], ids=lambda op: op.name)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(data=st.data())
def test_schema_invalid_values_are_refused_before_any_request(op, data, sim) -> None:
    field = data.draw(st.sampled_from(sorted(INVALID[op.name])), label="field")
    value = data.draw(st.sampled_from(INVALID[op.name][field]), label="value")
    profile = demo_profile(sim, allow_writes=True)

    async def call() -> None:
        async with Labdeck(profile, face="mcp", allow_writes=True) as lab:
            await lab.call(op, {field: value}, confirmed=True)

    before = _sent(sim)
    with pytest.raises(InvalidInput) as info:
        asyncio.run(call())
    assert field in info.value.fields, (field, value, info.value.fields)
    assert _sent(sim) == before, "a request was sent for invalid input"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_an_unknown_parameter_is_refused_before_any_request(op, sim) -> None:
    async def call() -> None:
        async with Labdeck(demo_profile(sim, allow_writes=True), face="mcp") as lab:
            await lab.call(op, {"unexpected_param": "x"}, confirmed=True)

    before = _sent(sim)
    with pytest.raises(InvalidInput) as info:
        asyncio.run(call())
    assert "unknown parameter" in info.value.fields["unexpected_param"]
    assert _sent(sim) == before


# ------------------------------------------------------------------ command injection
# Shell metacharacters, traversal, NUL and newlines: refused where the API would interpret
# them (names, paths, node names), passed through as inert data where data is expected.

INJECTIONS = ["a;reboot", "$(reboot)", "`reboot`", "../../etc", "a\nreboot", "a\x00b", "a|b", "a&b"]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    ("op_name", "params", "field"),
    [
        ("pve_guest_status", {"vmid": 100, "node": "{}"}, "node"),
        ("pve_create_snapshot", {"vmid": 100, "snapname": "{}"}, "snapname"),
        ("pve_clone_guest", {"vmid": 100, "newid": 900, "name": "{}"}, "name"),
        ("pve_create_pool", {"poolid": "{}"}, "poolid"),
        ("pve_task_status", {"upid": "{}"}, "upid"),
        ("truenas_create_dataset", {"name": "tank/{}"}, "name"),
        ("truenas_create_snapshot", {"dataset": "tank", "name": "{}"}, "name"),
        ("truenas_delete_snapshot", {"snapshot": "tank@{}"}, "snapshot"),
        ("truenas_create_smb_share", {"name": "{}", "path": "/mnt/tank"}, "name"),
        ("truenas_create_smb_share", {"name": "docs", "path": "/mnt/tank/{}"}, "path"),
        ("truenas_create_nfs_share", {"path": "/mnt/{}"}, "path"),
        ("truenas_create_user", {"username": "{}", "full_name": "X", "password": "p"}, "username"),
        ("truenas_update_user", {"username": "alice", "home": "/mnt/{}"}, "home"),
        ("truenas_start_app", {"name": "{}"}, "name"),
    ],
)
def test_injection_in_names_and_paths_is_refused_or_kept_literal(
    op_name, params, field, payload, scratch_sim
) -> None:
    """Refused before any request where the model forbids it; otherwise sent as plain JSON
    data, which the NAS either refuses (no such path) or stores exactly as given."""
    op = catalogue()[op_name]
    raw = {k: (v.replace("{}", payload) if isinstance(v, str) else v) for k, v in params.items()}

    async def call() -> None:
        async with Labdeck(demo_profile(scratch_sim, allow_writes=True), face="cli") as lab:
            await lab.call(op, raw, confirmed=True)

    before = _sent(scratch_sim)
    try:
        parse_params(op, raw)
    except InvalidInput:
        with pytest.raises(InvalidInput) as info:
            asyncio.run(call())
        assert field in info.value.fields
        assert _sent(scratch_sim) == before
        return
    assert op.backend == "truenas", f"{op_name}: {payload!r} would reach a PVE URL or form"
    try:
        asyncio.run(call())
    except LabdeckError as refused:
        assert refused.kind in ("invalid_input", "not_found"), refused
        return
    nas_items = scratch_sim.simulator.truenas.state.items
    assert raw[field] in json.dumps(nas_items, default=str, ensure_ascii=False)


@pytest.fixture(scope="module")
def scratch_sim() -> Any:
    """A simulator of this module's own: accepted literal data may change its state."""
    handle = start_in_thread(SimulatorConfig(seed=7, speed=50.0, dynamic=False))
    _register_canaries(handle)
    yield handle
    handle.stop()


ARGV_PAYLOADS = [
    ["echo", "a;reboot", "$(hostname)", "`id`", "../../etc/passwd", "two\nlines", "*", "$HOME"],
    ["echo", "--", "-rf", "/", "&&", "reboot", "|", "cat", ">", "/etc/passwd"],
]


@pytest.mark.parametrize("argv", ARGV_PAYLOADS, ids=["metacharacters", "operators"])
async def test_exec_argv_reaches_the_agent_exactly_as_given(argv, fresh_sim, make_service,
                                                            monkeypatch) -> None:  # fmt: skip
    # The simulator does not log request bodies; this wrapper records the argv its guest
    # agent receives and then runs it unchanged (a spy on the real simulator, not a mock).
    received: list[list[str]] = []
    agents = fresh_sim.state.agents
    real_exec = agents.exec

    def spy(guest: Any, machine: Any, got: list[str], *rest: Any) -> int:
        received.append(list(got))
        return real_exec(guest, machine, got, *rest)

    monkeypatch.setattr(agents, "exec", spy)
    async with make_service(fresh_sim, allow_writes=True) as lab:
        result = await lab.call("pve_guest_exec", {"vmid": 107, "command": argv})
    assert received == [argv]
    # echo prints its arguments: nothing was expanded, substituted or split
    assert result.stdout == " ".join(argv[1:]) + "\n"
    assert result.command == argv


async def test_a_shell_string_is_one_argument_to_sh(fresh_sim, make_service, monkeypatch) -> None:
    received: list[list[str]] = []
    agents = fresh_sim.state.agents
    real_exec = agents.exec

    def spy(guest: Any, machine: Any, got: list[str], *rest: Any) -> int:
        received.append(list(got))
        return real_exec(guest, machine, got, *rest)

    monkeypatch.setattr(agents, "exec", spy)
    line = "echo $(id); cat ../../etc/passwd\nreboot"
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("pve_guest_exec", {"vmid": 107, "command": line, "shell": True})
    assert received == [["/bin/sh", "-c", line]]


@pytest.mark.parametrize("command", [["echo", "a\x00b"], "echo a\x00b"])
async def test_nul_in_a_command_is_refused_before_any_request(command, sim) -> None:
    before = _sent(sim)
    async with Labdeck(demo_profile(sim, allow_writes=True), face="cli") as lab:
        with pytest.raises(InvalidInput) as info:
            await lab.call(
                "pve_guest_exec",
                {"vmid": 107, "command": command, "shell": isinstance(command, str)},
            )
    assert "NUL" in info.value.fields["command"]
    assert _sent(sim) == before


async def test_free_text_with_metacharacters_is_stored_as_literal_data(
    fresh_sim, make_service
) -> None:
    text = "; rm -rf / $(reboot) `id` ../../etc"
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("truenas_update_dataset", {"name": "tank/apps", "comments": text})
        await lab.call("truenas_update_smb_share", {"id": 1, "comment": text})
    state = fresh_sim.simulator.truenas.state
    assert state.items["dataset"]["tank/apps"]["comments"] == text
    assert state.items["smb"][1]["comment"] == text
