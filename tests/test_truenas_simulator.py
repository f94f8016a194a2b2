"""The TrueNAS simulator's wire protocol, query grammar and writes, spoken to directly."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from simulator.truenas import TrueNasHandle, start_truenas_in_thread
from simulator.truenas.errors import RpcError
from simulator.truenas.query import run_query


class Raw:
    """A bare JSON-RPC client: send requests, read replies and notifications."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def send(self, payload: Any) -> None:
        await self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    async def reply(self, ident: Any = ...) -> dict[str, Any]:
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if "method" in msg and "id" not in msg:
                self.events.append(msg)
                continue
            if ident is ... or msg.get("id") == ident:
                return msg

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                         "params": list(params)})  # fmt: skip
        return await self.reply(self.next_id)

    async def ok(self, method: str, *params: Any) -> Any:
        msg = await self.call(method, *params)
        assert "result" in msg, msg
        return msg["result"]


@pytest.fixture
def make_nas() -> Iterator[Callable[..., TrueNasHandle]]:
    handles: list[TrueNasHandle] = []

    def start(**kwargs: Any) -> TrueNasHandle:
        kwargs.setdefault("speed", 20.0)
        handles.append(start_truenas_in_thread(**kwargs))
        return handles[-1]

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def nas(make_nas: Callable[..., TrueNasHandle]) -> TrueNasHandle:
    return make_nas(version="25.10")


def _ssl(handle: TrueNasHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=handle.ca_path)


async def _open(handle: TrueNasHandle, path: str = "/api/current", login: bool = True,
                key: str | None = None) -> Raw:  # fmt: skip
    ws = await connect(handle.url.replace("/api/current", path), ssl=_ssl(handle),
                       max_size=None)  # fmt: skip
    raw = Raw(ws)
    if login:
        assert await raw.ok("auth.login_with_api_key", key or handle.api_key) is True
    return raw


@pytest.fixture
async def rpc(nas: TrueNasHandle) -> AsyncIterator[Raw]:
    raw = await _open(nas)
    yield raw
    await raw.ws.close()


def _data(msg: dict[str, Any]) -> dict[str, Any]:
    return dict(msg["error"]["data"])


# ---- protocol ---------------------------------------------------------------------------------
async def test_protocol_errors(rpc: Raw) -> None:
    await rpc.send("{not json")
    msg = await rpc.reply()
    assert msg["id"] is None and msg["error"]["code"] == -32700
    await rpc.send([{"jsonrpc": "2.0", "id": 1, "method": "core.ping"}])
    msg = await rpc.reply()
    assert msg["error"] == {
        "code": -32700,
        "message": "Batch messages are not supported at this time",
    }
    await rpc.send({"jsonrpc": "1.0", "id": 5, "method": "core.ping"})
    assert (await rpc.reply(5))["error"]["code"] == -32600
    await rpc.send({"jsonrpc": "2.0", "id": 6, "method": "core.ping", "params": {"a": 1}})
    assert (await rpc.reply(6))["error"]["code"] == -32600
    msg = await rpc.call("no.such.method")
    assert msg["error"] == {"code": -32601, "message": "Method does not exist"}
    msg = await rpc.call("pool.query", [], {}, "extra")
    assert msg["error"]["code"] == -32602 and msg["error"]["message"] == "Too many arguments"
    msg = await rpc.call("pool.query", [["name", "=", "nope"]], {"get": True})
    assert msg["error"]["code"] == -32001
    assert _data(msg)["error"] == 22 and _data(msg)["reason"] == "MatchNotFound()"
    msg = await rpc.call("user.update", 9999, {})
    assert _data(msg)["errname"] == "ENOENT"
    # A notification (no id) runs but gets no reply; the next reply is for the next call.
    await rpc.send({"jsonrpc": "2.0", "method": "core.ping"})
    assert await rpc.ok("core.ping") == "pong"


async def test_validation_error_layout(rpc: Raw) -> None:
    msg = await rpc.call("sharing.nfs.create", {"path": 5, "ro": "yes"})
    error = msg["error"]
    assert error["code"] == -32602 and error["message"] == "Invalid params"
    assert sorted(error["data"]["extra"]) == [
        ["data.path", "Input should be a valid string", 22],
        ["data.ro", "Input should be a valid boolean", 22],
    ]


async def test_authentication_and_roles(nas: TrueNasHandle) -> None:
    raw = await _open(nas, login=False)
    msg = await raw.call("pool.query")
    assert _data(msg)["error"] == 207 and _data(msg)["errname"] == "ENOTAUTHENTICATED"
    assert await raw.ok("core.ping") == "pong"  # allowed before login since 25.10
    assert await raw.ok("auth.login_with_api_key", nas.api_key[:-1] + "?") is False
    reply = await raw.ok(
        "auth.login_ex",
        {"mechanism": "API_KEY_PLAIN", "username": "labdeck-ro", "api_key": nas.readonly_api_key},
    )
    assert reply["response_type"] == "SUCCESS"
    assert "READONLY_ADMIN" in reply["user_info"]["privilege"]["roles"]["$set"]
    assert len(await raw.ok("pool.query")) == 2
    msg = await raw.call("pool.dataset.delete", "tank/home/bob")
    assert _data(msg)["errname"] == "EACCES" and _data(msg)["reason"] == "Not authorized"
    await raw.ws.close()


async def test_core_ping_needs_a_session_on_2504(make_nas: Callable[..., TrueNasHandle]) -> None:
    raw = await _open(make_nas(version="25.04"), login=False)
    assert _data(await raw.call("core.ping"))["errname"] == "ENOTAUTHENTICATED"
    await raw.ws.close()


async def test_prelogin_rate_limit(make_nas: Callable[..., TrueNasHandle]) -> None:
    handle = make_nas(rate_limit=3, rate_limit_delay=(0.0, 0.0))
    raw = await _open(handle, login=False)
    for _ in range(3):
        assert await raw.ok("auth.mechanism_choices")
    msg = await raw.call("auth.mechanism_choices")
    assert _data(msg)["errname"] == "EBUSY" and _data(msg)["reason"] == "Rate Limit Exceeded"
    assert await raw.ok("core.set_options", {"py_exceptions": False})  # exempt
    await raw.ws.close()


async def test_the_rate_limit_is_a_simulator_setting(sim: Any) -> None:
    """``SimulatorConfig.truenas_rate_limit`` reaches the TrueNAS endpoint: the test
    session's simulator (raised, see conftest) takes more than middlewared's 20 a minute."""
    ws = await connect(sim.truenas_url, ssl=ssl.create_default_context(cafile=sim.ca_path))
    raw = Raw(ws)
    for _ in range(25):
        assert await raw.ok("auth.mechanism_choices")
    await ws.close()


@pytest.mark.parametrize(
    ("login", "size", "code"), [(False, 9 * 1024, 1007), (True, 65 * 1024, 1009)]
)
async def test_message_size_limits(nas: TrueNasHandle, login: bool, size: int, code: int) -> None:
    raw = await _open(nas, login=login)
    await raw.send({"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": ["x" * size]})
    with pytest.raises(ConnectionClosed) as info:
        await raw.reply()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_binary_frames_close_the_socket(rpc: Raw) -> None:
    await rpc.ws.send(b"\x00\x01")
    with pytest.raises(ConnectionClosed) as info:
        await rpc.reply()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1003


async def test_concurrency_limits(make_nas: Callable[..., TrueNasHandle]) -> None:
    handle = make_nas(call_latency_s=0.3)
    raw = await _open(handle)
    for ident in range(100, 125):
        await raw.send({"jsonrpc": "2.0", "id": ident, "method": "core.ping"})
    replies = [await raw.reply() for _ in range(25)]
    refused = [r for r in replies if "error" in r]
    assert len(refused) == 5 and all(r["error"]["code"] == -32000 for r in refused)
    assert handle.peak_running == 10
    await raw.ws.close()


async def test_versioned_endpoints(make_nas: Callable[..., TrueNasHandle]) -> None:
    handle = make_nas(version="25.10")
    raw = await _open(handle, "/api/v25.04.2")
    msg = await raw.call("pool.snapshot.query")
    assert _data(msg)["error"] == 201 and _data(msg)["errname"] == "ENOMETHOD"
    assert len(await raw.ok("zfs.snapshot.query")) == 9  # private in 25.10, public in 25.04
    await raw.ws.close()
    url = handle.url.replace("wss://", "https://").replace("/api/current", "/api/versions")

    def fetch() -> Any:
        with urllib.request.urlopen(url, context=_ssl(handle)) as response:
            return json.loads(response.read())

    versions = await asyncio.to_thread(fetch)
    assert "v25.10.5" in versions and "v25.04.0" in versions and "v26.0.0" not in versions


@pytest.mark.parametrize("release", ["25.04", "25.10", "26"])
async def test_renamed_methods_are_absent(make_nas: Callable[..., TrueNasHandle],
                                          release: str) -> None:  # fmt: skip
    raw = await _open(make_nas(version=release))
    absent = {
        "25.04": ["pool.snapshot.query", "container.query", "zfs.resource.snapshot.query"],
        "25.10": ["container.query", "zpool.scrub.run"],
        "26": ["zfs.snapshot.query", "virt.instance.query", "virt.instance.start"],
    }[release]
    for name in absent:
        assert (await raw.call(name))["error"]["code"] == -32601, name
    await raw.ws.close()


async def test_jobs_legacy_and_message_ids(rpc: Raw) -> None:
    job_id = await rpc.ok("app.stop", "plex")
    assert isinstance(job_id, int)
    await rpc.ok("core.subscribe", "core.get_jobs")
    assert (await rpc.ok("core.set_options", {"legacy_jobs": False}))["legacy_jobs"] is False
    msg = await rpc.call("app.start", "plex")  # answered only when the job ends
    assert msg["result"] is None
    mine = [e for e in rpc.events if msg["id"] in e["params"]["fields"]["message_ids"]]
    assert mine and mine[-1]["params"]["fields"]["state"] == "SUCCESS"
    failed = await rpc.call("app.start", "broken-app")
    assert "Failed 'up' action" in failed["error"]["data"]["reason"]
    waited = await rpc.ok("core.get_jobs", [["id", "=", job_id]], {"get": True})
    assert waited["state"] == "SUCCESS" and waited["progress"]["percent"] == 100
    assert set(waited["time_finished"]) == {"$date"}


# ---- query grammar ----------------------------------------------------------------------------
ITEMS = [
    {"name": "tank", "size": 10, "tags": ["a", "b"], "sub": {"x": 1}, "when": None},
    {"name": "tank/media", "size": 20, "tags": ["b"], "sub": {"x": 2},
     "when": datetime(2025, 1, 2, tzinfo=UTC)},
    {"name": "backup", "size": None, "tags": [], "sub": {"x": 3},
     "when": datetime(2025, 6, 1, tzinfo=UTC)},
]  # fmt: skip


def names(filters: list[Any], **options: Any) -> Any:
    result = run_query(ITEMS, filters, options)
    return [r["name"] for r in result] if isinstance(result, list) else result


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([["name", "=", "tank"]], ["tank"]),
        ([["name", "!=", "tank"]], ["tank/media", "backup"]),
        ([["size", ">", 10]], ["tank/media"]),
        ([["size", ">=", 10]], ["tank", "tank/media"]),
        ([["size", "<", 20]], ["tank"]),
        ([["size", "<=", 20]], ["tank", "tank/media"]),
        ([["name", "^", "tank"]], ["tank", "tank/media"]),
        ([["name", "!^", "tank"]], ["backup"]),
        ([["name", "$", "media"]], ["tank/media"]),
        ([["name", "!$", "media"]], ["tank", "backup"]),
        ([["name", "~", "ta.k$"]], ["tank"]),
        ([["name", "in", ["tank", "backup"]]], ["tank", "backup"]),
        ([["name", "nin", ["tank", "backup"]]], ["tank/media"]),
        ([["tags", "rin", "a"]], ["tank"]),
        ([["tags", "rnin", "b"]], ["backup"]),
        ([["name", "C=", "TANK"]], ["tank"]),
        ([["name", "C^", "BACK"]], ["backup"]),
        ([["sub.x", ">", 1]], ["tank/media", "backup"]),
        ([["tags.0", "=", "b"]], ["tank/media"]),
        ([["tags.*", "=", "b"]], ["tank", "tank/media"]),
        ([["when.$date", ">", "2025-03-01T00:00:00Z"]], ["backup"]),
        ([["OR", [["name", "=", "tank"], ["size", "=", None]]]], ["tank", "backup"]),
        (
            [["OR", [[["name", "^", "tank"], ["size", ">", 10]], ["name", "=", "backup"]]]],
            ["tank/media", "backup"],
        ),
        ([["name", "^", "tank"], ["OR", [["size", "=", 10], ["size", "=", 30]]]], ["tank"]),
    ],
)
def test_filter_operators(filters: list[Any], expected: list[str]) -> None:
    assert names(filters) == expected


def test_query_options() -> None:
    assert names([], order_by=["-size"]) == ["backup", "tank/media", "tank"]  # nulls first
    assert names([], order_by=["nulls_last:-size"]) == ["tank/media", "tank", "backup"]
    assert names([], order_by=["name"], offset=1, limit=1) == ["tank"]
    assert names([["name", "^", "tank"]], count=True) == 2
    assert run_query(ITEMS, [["size", "=", 20]], {"get": True, "select": ["name", ["sub.x", "x"],
                                                                          "sub.x"]}) == {
        "name": "tank/media", "x": 2, "sub": {"x": 2}}  # fmt: skip
    with pytest.raises(RpcError) as info:
        run_query(ITEMS, [["name", "=", "zzz"]], {"get": True})
    assert info.value.code == -32001 and info.value.data and info.value.data["error"] == 22
    for bad_filters, bad_options in (
        ([["name", "C~", "x"]], {}),
        ([["a", "??", 1]], {}),
        ([], {"limitt": 1}),
        ([], {"limit": -1}),
    ):
        with pytest.raises(RpcError) as info:
            run_query(ITEMS, bad_filters, bad_options)
        assert info.value.code == -32602


async def test_query_over_the_wire(rpc: Raw) -> None:
    assert await rpc.ok("user.query", [["username", "in", ["alice", "bob"]]],
                        {"select": ["username"], "order_by": ["-uid"]}) == [
        {"username": "bob"}, {"username": "alice"}]  # fmt: skip
    assert await rpc.ok("pool.dataset.query", [["type", "=", "VOLUME"]], {"count": True}) == 1


# ---- writes -----------------------------------------------------------------------------------
async def test_dataset_share_and_user_writes(rpc: Raw, nas: TrueNasHandle) -> None:
    ds = await rpc.ok(
        "pool.dataset.create", {"name": "tank/projects", "quota": 2**40, "compression": "ZSTD"}
    )
    assert ds["quota"]["parsed"] == 2**40 and ds["compression"]["value"] == "ZSTD"
    ds = await rpc.ok(
        "pool.dataset.update", "tank/projects", {"comments": "work", "readonly": "ON"}
    )
    assert ds["comments"]["value"] == "work" and ds["readonly"]["parsed"] is True
    dup = await rpc.call("pool.dataset.create", {"name": "tank/projects"})
    assert dup["error"]["data"]["extra"][0][:2] == [
        "data.name",
        "Path tank/projects already exists",
    ]
    share = await rpc.ok("sharing.smb.create", {"name": "projects", "path": "/mnt/tank/projects"})
    share = await rpc.ok("sharing.smb.update", share["id"], {"comment": "team"})
    assert share["comment"] == "team" and share["path"] == "/mnt/tank/projects"
    assert "dataset" not in share  # a 26.0 field; this simulator speaks 25.10
    nfs = await rpc.ok("sharing.nfs.create", {"path": "/mnt/tank/projects", "ro": True})
    assert (await rpc.ok("sharing.nfs.update", nfs["id"], {"ro": False}))["ro"] is False
    busy = await rpc.call("pool.dataset.delete", "tank/media")
    assert "has children" in busy["error"]["data"]["reason"]
    assert await rpc.ok("sharing.smb.delete", share["id"]) is True
    assert await rpc.ok("sharing.nfs.delete", nfs["id"]) is True
    assert await rpc.ok("pool.dataset.delete", "tank/projects") is True
    user = await rpc.ok("user.create", {"username": "carol", "full_name": "Carol",
                                        "password": "s3cret-pw"})  # fmt: skip
    assert (await rpc.ok("user.update", user["id"], {"full_name": "Carol C"}))["full_name"] == \
        "Carol C"  # fmt: skip
    assert await rpc.ok("user.delete", user["id"]) == user["id"]
    assert "tank/projects" not in nas.state.items["dataset"]


@pytest.mark.parametrize("release", ["25.10", "26"])
async def test_vm_and_instance_power(make_nas: Callable[..., TrueNasHandle], release: str) -> None:
    raw = await _open(make_nas(version=release))
    assert await raw.ok("vm.start", 2) is None
    assert (await raw.ok("vm.status", 2))["state"] == "RUNNING"
    assert _data(await raw.call("vm.start", 2))["errname"] == "EINVAL"
    if release == "26":
        assert await raw.ok("container.start", 2) is None
        item = await raw.ok("container.query", [["id", "=", 2]], {"get": True})
        assert item["status"]["state"] == "RUNNING"
    else:
        job = await raw.ok("virt.instance.start", "dev01")
        waited = await raw.ok("core.job_wait", job)
        assert isinstance(waited, int)
        for _ in range(100):
            item = await raw.ok("virt.instance.query", [["id", "=", "dev01"]], {"get": True})
            if item["status"] == "RUNNING":
                break
            await asyncio.sleep(0.05)
        assert item["status"] == "RUNNING"
    await raw.ws.close()
