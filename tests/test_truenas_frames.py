"""Frames that are not JSON-RPC, and the per-call timeout ([truenas] timeout_s).

A frame the client cannot read may have been the answer to any call in flight, so the
connection is closed at once and its calls fail like after a drop: reads are asked again
once on a new connection, then reported as :class:`BadResponse`; a write that was in
flight is :class:`OutcomeUnknown` and never resent. Nobody waits out the call timeout.
The simulator's ``malformed`` fault sends a reply cut short; the JSON frames that are not
JSON-RPC come from a small WebSocket server in this file (no simulator sends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from core.config import TrueNasSettings, load_settings
from core.errors import BadResponse, ConfigError, OutcomeUnknown, Unreachable
from core.service import Labdeck
from core.truenas import EXCERPT_CHARS, TrueNasClient
from labdeck.demo import demo_profile
from tests.support.faults import rpc_count

KEY = "1-canaryfakekeyforaservernotasimulator"


def nas_client(handle: Any, **settings: Any) -> TrueNasClient:
    """A client on the simulator; the call timeout is the setting's (60 s by default)."""
    values = TrueNasSettings(url=handle.truenas_url, ca_bundle=Path(handle.ca_path), **settings)
    return TrueNasClient(values, secret=SecretStr(handle.truenas_api_key), reconnect_delay_s=0.05)


# ------------------------------------------------------------------ the simulator's fault


async def test_a_read_is_asked_once_more_then_reported_as_a_bad_response(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.query=malformed")
    async with nas_client(handle) as nas:
        with pytest.raises(BadResponse) as info:
            await nas.query("pool.query")
        # from the broken frame itself: a timeout would be Unreachable ("did not answer")
        assert info.value.kind == "bad_response"
        assert "sent something that is not JSON-RPC (not JSON: 25 bytes" in info.value.message
        assert "while pool.query was pending" in info.value.message
        assert info.value.hint is not None and "wss://HOST/api/current" in info.value.hint
        assert nas.reconnects == 1  # the first broken connection was replaced
        handle.faults.clear()
        assert await nas.query("pool.query")
        assert nas.reconnects == 2  # so was the second, for the next call
    assert rpc_count(handle, "pool.query") == 3  # asked, asked once more, then fine


async def test_one_broken_frame_costs_a_reconnect_not_the_read(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.query=malformedx1")
    async with nas_client(handle) as nas:
        pools = await nas.query("pool.query")
        assert nas.reconnects == 1
    assert pools and all("name" in pool for pool in pools)
    assert rpc_count(handle, "pool.query") == 2


async def test_a_write_in_flight_is_outcome_unknown_and_never_resent(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.dataset.create=malformed")
    async with nas_client(handle) as nas:
        with pytest.raises(OutcomeUnknown) as info:
            await nas.call("pool.dataset.create", {"name": "tank/garbled"})
        assert info.value.method == "pool.dataset.create"
        assert "is not JSON-RPC" in info.value.message
        assert "may or may not have been applied" in info.value.message
        assert info.value.hint is not None and "Check the current state" in info.value.hint
        # it was applied (the simulator ran it, then garbled the answer): resending would
        # have tried to create it twice
        found = await nas.query("pool.dataset.query", [["id", "=", "tank/garbled"]])
    assert [d["id"] for d in found] == ["tank/garbled"]
    assert rpc_count(handle, "pool.dataset.create") == 1


async def test_every_call_pending_on_the_broken_connection_fails_over(make_sim: Any) -> None:
    # the broken frame comes while a slow read and a slow write wait on the same connection
    handle = make_sim(faults="RPC system.info=malformedx1,RPC pool.query=slow:2x1,"
                             "RPC pool.dataset.create=slow:2")  # fmt: skip
    async with nas_client(handle) as nas:
        await nas.connect()
        read = asyncio.create_task(nas.query("pool.query"))
        write = asyncio.create_task(nas.call("pool.dataset.create", {"name": "tank/slow"}))
        broken = asyncio.create_task(nas.call("system.info"))
        outcomes = await asyncio.gather(read, write, broken, return_exceptions=True)
    pools, created, info = outcomes
    assert isinstance(pools, list) and pools  # asked again on the new connection
    assert isinstance(created, OutcomeUnknown), created  # in flight when the line broke
    assert isinstance(info, dict), info  # its own read, asked again too
    assert rpc_count(handle, "pool.query") == 2
    assert rpc_count(handle, "pool.dataset.create") == 1


# ------------------------------------------------------------------ frames no simulator sends


class OddServer:
    """A WebSocket server that logs in like TrueNAS, then answers calls with ``frame``.

    Only for what the simulator cannot do (it sends JSON-RPC or the one cut-short reply);
    ``at_login`` sends the frame in place of the login's answer.
    """

    def __init__(self, frame: str, *, at_login: bool = False) -> None:
        self.frame = frame
        self.at_login = at_login
        self.calls: list[str] = []

    async def handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client closes on the odd frame
            await self.answer(ws)

    async def answer(self, ws: ServerConnection) -> None:
        async for text in ws:
            msg = json.loads(text)
            self.calls.append(msg["method"])
            login = msg["method"] == "auth.login_with_api_key"
            answers = {"auth.login_with_api_key": True, "system.version": "TrueNAS-25.10.1"}
            if msg["method"] not in answers or (login and self.at_login):
                await ws.send(self.frame)
                continue
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                      "result": answers[msg["method"]]}))  # fmt: skip


@contextlib.asynccontextmanager
async def odd_client(server: OddServer) -> AsyncIterator[TrueNasClient]:
    async with serve(server.handler, "127.0.0.1", 0) as listening:
        port = listening.sockets[0].getsockname()[1]
        settings = TrueNasSettings(url=f"ws://127.0.0.1:{port}/api/current")
        async with TrueNasClient(settings, secret=SecretStr(KEY), allow_insecure_transport=True,
                                 reconnect_delay_s=0.01) as nas:  # fmt: skip
            yield nas


@pytest.mark.parametrize(
    ("frame", "shown"),
    [
        ("[1, 2, 3]", "JSON but not a JSON-RPC message: 9 bytes, starting '[1, 2, 3]'"),
        # the legacy /websocket API (DDP) speaks like this: a wrong url path, said so
        ('{"msg": "failed", "version": "1"}', "JSON but not a JSON-RPC message"),
        ('{"jsonrpc": "2.0", "result": 1}', "JSON but not a JSON-RPC message"),  # no id
        ("<html><body>502 Bad Gateway</body></html>", "not JSON: 41 bytes, starting '<html>"),
    ],
)
async def test_frames_that_are_not_json_rpc_are_named_briefly(frame: str, shown: str) -> None:
    server = OddServer(frame)
    async with odd_client(server) as nas:
        with pytest.raises(BadResponse) as info:
            await nas.call("pool.query")
    assert shown in info.value.message, info.value.message
    assert server.calls.count("pool.query") == 2  # once more on a new connection, no more


async def test_the_excerpt_is_short_and_escaped() -> None:
    # a frame that would retitle the terminal, followed by what must not be shown
    title = "\x1b]0;owned\x07"
    frame = title + "x" * 20 + "SECRET-PART-NEVER-SHOWN"
    server = OddServer(frame)
    async with odd_client(server) as nas:
        with pytest.raises(BadResponse) as info:
            await nas.call("pool.query")
    message = info.value.message
    assert "\x1b" not in message and "\x07" not in message
    assert "starting '\\x1b]0;owned\\x07" in message and "'..." in message
    assert "SECRET" not in message and "x" * (EXCERPT_CHARS - len(title) + 1) not in message


async def test_a_broken_frame_at_login_is_a_bad_response_not_a_retry_loop() -> None:
    server = OddServer("not json at all", at_login=True)
    with pytest.raises(BadResponse, match="not JSON-RPC while logging in"):
        async with odd_client(server):
            pytest.fail("the login cannot succeed")
    assert server.calls == ["auth.login_with_api_key"]  # the key was not sent again


async def test_a_write_is_not_resent_after_a_broken_frame() -> None:
    server = OddServer("]")
    async with odd_client(server) as nas:
        with pytest.raises(OutcomeUnknown, match="pool.dataset.create may or may not"):
            await nas.call("pool.dataset.create", {"name": "tank/x"})
    assert server.calls.count("pool.dataset.create") == 1


# ------------------------------------------------------------------ [truenas] timeout_s


async def test_the_service_s_client_waits_timeout_s(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.query=timeout:5")
    profile = demo_profile(handle, allow_writes=False)
    profile.truenas = profile.truenas.model_copy(update={"timeout_s": 0.3})
    async with Labdeck(profile, face="cli") as lab:
        with pytest.raises(Unreachable) as info:
            await lab.call("truenas_list_pools")
    assert "did not answer pool.query in time (0.3 s)" in info.value.message
    assert info.value.hint is not None and "raise [truenas] timeout_s" in info.value.hint


@pytest.mark.parametrize(
    ("value", "problem"), [("0", "greater than 0"), ("-1", "greater than 0"),
                           ("601", "less than or equal to 600"), ("soon", "number")]
)  # fmt: skip
def test_timeout_s_is_checked_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, problem: str
) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("LABDECK_TRUENAS_TIMEOUT_S", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "timeout_s" in str(info.value) and problem in str(info.value), str(info.value)


def test_timeout_s_comes_from_the_environment_or_defaults_to_a_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate(monkeypatch, tmp_path)
    assert load_settings().resolve().truenas.timeout_s == 60.0
    monkeypatch.setenv("LABDECK_TRUENAS_TIMEOUT_S", "12.5")
    assert load_settings().resolve().truenas.timeout_s == 12.5


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file and none of the person's settings variables."""
    for name in list(os.environ):
        if name.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
