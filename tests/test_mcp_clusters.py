"""Several clusters behind one MCP server: every tool takes an optional ``cluster`` argument.

Two simulators stand for two clusters (different names and seeds). Each cluster keeps its
own profile's policy, and a call naming an unknown cluster is refused before any request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from core.audit import AuditLog
from core.config import Profile
from core.ops import catalogue
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from tests.test_mcp_stdio import ROOT, isolated_env, labdeck_command


def _profile(handle: Any, name: str, *, allow_writes: bool) -> Profile:
    return demo_profile(handle, allow_writes=allow_writes).model_copy(update={"name": name})


def _server(audit: AuditLog, *profiles: Profile) -> Any:
    def factory_for(profile: Profile) -> Any:
        def factory() -> Labdeck:
            return Labdeck(profile, face="mcp", audit=audit, audit_reads=True)

        return factory

    factories = {p.name: factory_for(p) for p in profiles}
    return build_server(
        factories[profiles[0].name],
        allow_writes=any(p.policy.allow_writes for p in profiles),
        clusters=factories,
    )


def _posts(handle: Any) -> list[str]:
    return [path for method, path in _requests(handle) if method == "POST"]


def _requests(handle: Any) -> list[tuple[str, str]]:
    return list(handle.request_log)


async def test_every_tool_publishes_the_cluster_argument(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha")
    beta = make_sim(cluster_name="beta", seed=11)
    server = _server(
        audit_log,
        _profile(alpha, "alpha", allow_writes=False),
        _profile(beta, "beta", allow_writes=False),
    )
    async with Client(server) as client:
        instructions = client.instructions or ""
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == set(catalogue())
    for name, tool in tools.items():
        cluster = tool.input_schema["properties"]["cluster"]
        assert cluster["enum"] == ["alpha", "beta"], name
        assert "default: alpha" in cluster["description"]
        assert "cluster" not in tool.input_schema.get("required", [])
    assert "2 clusters (alpha, beta)" in instructions


async def test_one_cluster_publishes_no_cluster_argument(sim, audit_log):
    server = _server(audit_log, _profile(sim, "solo", allow_writes=False))
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        refused = await client.call_tool("pve_cluster_overview", {"cluster": "solo"})
    assert all("cluster" not in tool.input_schema.get("properties", {}) for tool in tools)
    assert refused.is_error and "unknown parameter" in refused.content[0].text


async def test_calls_reach_the_named_cluster(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha")
    beta = make_sim(cluster_name="beta", seed=11)
    server = _server(
        audit_log,
        _profile(alpha, "alpha", allow_writes=False),
        _profile(beta, "beta", allow_writes=False),
    )
    async with Client(server) as client:
        default = await client.call_tool("pve_cluster_overview", {})
        named = await client.call_tool("pve_cluster_overview", {"cluster": "beta"})
        explicit = await client.call_tool("pve_cluster_overview", {"cluster": "alpha"})
    assert default.structured_content["cluster_name"] == "alpha"
    assert named.structured_content["cluster_name"] == "beta"
    assert explicit.structured_content["cluster_name"] == "alpha"
    profiles = [e["profile"] for e in audit_log.read() if e["operation"] == "pve_cluster_overview"]
    assert profiles == ["alpha", "beta", "alpha"]


async def test_unknown_cluster_is_refused_before_any_request(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha")
    beta = make_sim(cluster_name="beta", seed=11)
    server = _server(
        audit_log,
        _profile(alpha, "alpha", allow_writes=True),
        _profile(beta, "beta", allow_writes=True),
    )
    alpha.clear_request_log()
    beta.clear_request_log()
    async with Client(server) as client:
        for bad in ("gamma", 3, ["alpha"]):
            result = await client.call_tool("pve_start_guest", {"vmid": 100, "cluster": bad})
            assert result.is_error
            text = result.content[0].text
            assert "not a configured cluster" in text and "known: alpha, beta" in text
    assert _requests(alpha) == [] and _requests(beta) == []


async def test_each_cluster_keeps_its_own_policy(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha")
    beta = make_sim(cluster_name="beta", seed=11)
    server = _server(
        audit_log,
        _profile(alpha, "alpha", allow_writes=False),
        _profile(beta, "beta", allow_writes=True),
    )
    beta_stopped = beta.call(
        lambda: next(g.vmid for g in beta.state.guests.values() if g.status == "stopped")
    )
    alpha.clear_request_log()
    async with Client(server) as client:
        refused = await client.call_tool("pve_start_guest", {"vmid": beta_stopped})
        started = await client.call_tool(
            "pve_start_guest", {"vmid": beta_stopped, "cluster": "beta"}
        )
    assert refused.is_error and "read-only" in refused.content[0].text
    assert _posts(alpha) == []
    assert not started.is_error, started.content[0].text
    assert any(path.endswith("/status/start") for path in _posts(beta))
    starts = [e for e in audit_log.read() if e["operation"] == "pve_start_guest"]
    outcomes = [(e["profile"], e["outcome"]) for e in starts]
    assert outcomes == [("alpha", "refused"), ("beta", "ok")]


def _write_config(tmp_path: Path, alpha: Any, beta: Any) -> Path:
    """A real config file: the default profile is alpha, ``[profiles.beta]`` is beta; the
    token secrets live in 0600 files, as the docs tell people to keep them."""
    lines: list[str] = []
    for section, handle in (("pve", alpha), ("profiles.beta.pve", beta)):
        secret = tmp_path / f"{handle.port}.token"
        secret.write_text(handle.token.secret)
        os.chmod(secret, 0o600)
        lines += [
            f"[{section}]",
            f'host = "{handle.host}"',
            f"port = {handle.port}",
            f'user = "{handle.token.user}"',
            f'token_name = "{handle.token.token_name}"',
            f'token_file = "{secret}"',
            f'ca_bundle = "{handle.ca_path}"',
            "",
        ]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines))
    return config


async def test_labdeck_mcp_serves_every_configured_profile(make_sim, tmp_path: Path):
    alpha = make_sim(cluster_name="alpha", truenas=False)
    beta = make_sim(cluster_name="beta", seed=11, truenas=False)
    config = _write_config(tmp_path, alpha, beta)
    command, args = labdeck_command("--config", str(config), "mcp")
    params = StdioServerParameters(
        command=command, args=args, env=isolated_env(tmp_path), cwd=str(ROOT)
    )
    with (tmp_path / "stderr.txt").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            schema = tools["pve_list_guests"].input_schema["properties"]["cluster"]
            assert schema["enum"] == ["default", "beta"]
            beta_view = await client.call_tool("pve_cluster_overview", {"cluster": "beta"})
            alpha_view = await client.call_tool("pve_cluster_overview", {})
    assert beta_view.structured_content["cluster_name"] == "beta"
    assert alpha_view.structured_content["cluster_name"] == "alpha"
    audit = (tmp_path / "state" / "labdeck" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["profile"] for line in audit] == ["beta", "default"]
