"""core.truenas.TrueNasClient against the TrueNAS simulator, over real wss sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.config import TrueNasSettings
from core.errors import (
    AuthError,
    ConfigError,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    TLSError,
)
from core.truenas import TrueNasClient
from core.truenas_models import JobFailed
from simulator.truenas import TrueNasHandle, start_truenas_in_thread

RELEASES = ("25.04", "25.10", "26")


@pytest.fixture
def make_nas() -> Iterator[Callable[..., TrueNasHandle]]:
    handles: list[TrueNasHandle] = []

    def start(**kwargs: Any) -> TrueNasHandle:
        kwargs.setdefault("speed", 20.0)
        handle = start_truenas_in_thread(**kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def nas(make_nas: Callable[..., TrueNasHandle]) -> TrueNasHandle:
    return make_nas(version="25.10")


def client(handle: TrueNasHandle, key: str | None = None, **kwargs: Any) -> TrueNasClient:
    settings = TrueNasSettings(url=handle.url, ca_bundle=Path(handle.ca_path or ""))
    return TrueNasClient(settings, secret=SecretStr(key or handle.api_key), **kwargs)


@pytest.mark.parametrize(
    ("release", "snapshots", "instances"),
    [
        ("25.04", "zfs.snapshot.query", "virt.instance.query"),
        ("25.10", "pool.snapshot.query", "virt.instance.query"),
        ("26", "pool.snapshot.query", "container.query"),
    ],
)
async def test_release_probe_picks_method_names(
    make_nas: Callable[..., TrueNasHandle], release: str, snapshots: str, instances: str
) -> None:
    handle = make_nas(version=release)
    async with client(handle) as nas:
        assert nas.release == release
        assert nas.version is not None and nas.version.startswith("TrueNAS-")
        assert nas.methods is not None
        assert nas.methods.snapshot_query == snapshots
        assert nas.methods.instance_query == instances
        snaps = await nas.query(nas.methods.snapshot_query, [["dataset", "=", "tank/vms"]])
        assert len(snaps) == 3 and all(s["id"].startswith("tank/vms@") for s in snaps)
        assert len(await nas.query(nas.methods.instance_query)) == 2
        if release == "26":
            with pytest.raises(NotFound, match="no method zfs.snapshot.query"):
                await nas.query("zfs.snapshot.query")
    assert snapshots in handle.method_log
    assert handle.method_log[:2] == ["auth.login_with_api_key", "system.version"]


async def test_wrong_key_is_auth_error_without_the_key(
    nas: TrueNasHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = "1-" + "x" * 64
    with pytest.raises(AuthError) as info:
        await client(nas, bad).connect()
    assert "key id 1" in str(info.value)
    assert bad not in str(info.value) and "x" * 64 not in repr(info.value.to_dict())
    assert "x" * 64 not in caplog.text and nas.api_key not in caplog.text


async def test_plain_ws_refused_before_connecting(make_nas: Callable[..., TrueNasHandle]) -> None:
    handle = make_nas(plain_ws=True)
    assert handle.url.startswith("ws://")
    settings = TrueNasSettings(url=handle.url)
    with pytest.raises(ConfigError, match="refusing to send the TrueNAS API key over plain ws"):
        TrueNasClient(settings, secret=SecretStr(handle.api_key))
    assert handle.method_log == []
    # An explicit opt-in (e.g. a loopback lab) works.
    async with TrueNasClient(settings, secret=SecretStr(handle.api_key),
                             allow_insecure_transport=True) as nas:  # fmt: skip
        assert nas.release == "25.10"


async def test_untrusted_certificate_and_pin(nas: TrueNasHandle, tmp_path: Path) -> None:
    with pytest.raises(TLSError, match="not trusted"):
        settings = TrueNasSettings(url=nas.url)
        await TrueNasClient(settings, secret=SecretStr(nas.api_key)).connect()
    pinned = TrueNasSettings(url=nas.url, fingerprint=nas.cert_fingerprint)
    async with TrueNasClient(pinned, secret=SecretStr(nas.api_key)) as client_:
        assert (await client_.call("core.ping")) == "pong"
    assert nas.api_key not in (tmp_path / "none").as_posix()


async def test_validation_error_names_the_field(nas: TrueNasHandle) -> None:
    async with client(nas) as truenas:
        with pytest.raises(InvalidInput) as info:
            await truenas.call("pool.dataset.create", {"name": "tank/new", "compression": "BZIP"})
        assert set(info.value.fields) == {"data.compression"}
        assert "data.compression" in str(info.value)
        with pytest.raises(InvalidInput) as missing:
            await truenas.call("pool.dataset.create", {"comments": "x"})
        assert missing.value.fields == {"data.name": "Field required"}


async def test_query_options_and_ejson(nas: TrueNasHandle) -> None:
    async with client(nas) as truenas:
        names = await truenas.query("pool.dataset.query", [["name", "^", "tank/media"]],
                                    select=["name"], order_by=["-name"])  # fmt: skip
        assert [d["name"] for d in names] == ["tank/media/photos", "tank/media/movies",
                                              "tank/media"]  # fmt: skip
        assert await truenas.query("pool.dataset.query", [["pool", "=", "tank"]], count=True) == 10
        page = await truenas.query("user.query", [], order_by=["uid"], offset=1, limit=2,
                                   select=["username"])  # fmt: skip
        assert page == [{"username": "truenas_admin"}, {"username": "alice"}]
        tank = await truenas.query("pool.query", [["name", "=", "tank"]], get=True)
        assert tank["status"] == "ONLINE" and isinstance(tank["scan"]["start_time"], datetime)
        with pytest.raises(NotFound):
            await truenas.query("pool.query", [["name", "=", "nope"]], get=True)
        info = await truenas.call("system.info")
        assert isinstance(info["boottime"], datetime) and info["boottime"].tzinfo is not None


async def test_readonly_key_reads_but_cannot_write(nas: TrueNasHandle) -> None:
    async with client(nas, nas.readonly_api_key) as truenas:
        assert len(await truenas.query("pool.query")) == 2
        with pytest.raises(PermissionDenied, match="pool.dataset.create"):
            await truenas.call("pool.dataset.create", {"name": "tank/ro"})


async def test_job_success_reports_progress(nas: TrueNasHandle) -> None:
    seen: list[tuple[float, str]] = []
    async with client(nas) as truenas:
        result = await truenas.run_job("app.start", "jellyfin",
                                       progress=lambda p, d: seen.append((p, d)),
                                       timeout_s=30)  # fmt: skip
        assert result is None
        app = await truenas.query("app.query", [["name", "=", "jellyfin"]], get=True)
    assert app["state"] == "RUNNING"
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and percents[-1] == 100 and len(seen) >= 3
    assert any("jellyfin" in d for _, d in seen)


async def test_job_failure_raises_with_the_job_error(nas: TrueNasHandle) -> None:
    async with client(nas) as truenas:
        with pytest.raises(JobFailed) as info:
            await truenas.run_job("app.start", "broken-app", timeout_s=30)
    assert info.value.state == "FAILED" and info.value.method == "app.start"
    assert "Failed 'up' action for 'broken-app'" in str(info.value)


async def test_dropped_connection_mid_job_still_gets_result(
    make_nas: Callable[..., TrueNasHandle],
) -> None:
    handle = make_nas(speed=2.0)  # vm.stop takes 5 simulated s = 2.5 s here
    started = asyncio.Event()
    async with client(handle) as truenas:
        job = asyncio.create_task(truenas.run_job("vm.stop", 1, progress=lambda p, d: started.set(),
                                                  timeout_s=30))  # fmt: skip
        await asyncio.wait_for(started.wait(), 10)
        assert handle.drop_connections() == 1
        assert await asyncio.wait_for(job, 30) is None
        assert truenas.reconnects >= 1
        vm = await truenas.query("vm.query", [["id", "=", 1]], get=True)
    assert vm["status"]["state"] == "STOPPED"
    assert handle.method_log.count("auth.login_with_api_key") >= 2


async def test_write_in_flight_during_drop_is_outcome_unknown(
    make_nas: Callable[..., TrueNasHandle],
) -> None:
    handle = make_nas(call_latency_s=1.0)
    async with client(handle) as truenas:
        write = asyncio.create_task(truenas.call("pool.dataset.create", {"name": "tank/maybe"}))
        read = asyncio.create_task(truenas.query("pool.query", select=["name"]))
        await asyncio.sleep(0.3)
        handle.drop_connections()
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
            await write
        assert await read == [{"name": "tank"}, {"name": "backup"}]  # retried after reconnect
    assert handle.method_log.count("pool.dataset.create") == 1  # never repeated


async def test_subscription_receives_event_after_write(nas: TrueNasHandle) -> None:
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with client(nas) as truenas:
        await truenas.subscribe("pool.dataset.query", events.put)
        created = await truenas.call(
            "pool.dataset.create", {"name": "tank/media/music", "comments": "tunes"}
        )
        event = await asyncio.wait_for(events.get(), 5)
        assert event["msg"] == "added" and event["id"] == "tank/media/music"
        assert event["fields"]["comments"]["value"] == "tunes" == created["comments"]["value"]
        await truenas.call("pool.dataset.delete", "tank/media/music")
        removed = await asyncio.wait_for(events.get(), 5)
        assert removed["msg"] == "removed" and "fields" not in removed


async def test_twenty_concurrent_calls_within_the_server_limit(
    make_nas: Callable[..., TrueNasHandle],
) -> None:
    handle = make_nas(call_latency_s=0.05)
    async with client(handle) as truenas:
        results = await asyncio.gather(
            *(truenas.query("user.query", [["uid", "=", 1000]], get=True) for _ in range(20))
        )
    assert all(r["username"] == "alice" for r in results)
    assert 2 <= handle.peak_running <= 10


@pytest.mark.parametrize("release", RELEASES)
async def test_snapshot_create_rollback_delete_per_release(
    make_nas: Callable[..., TrueNasHandle], release: str
) -> None:
    handle = make_nas(version=release)
    async with client(handle) as truenas:
        m = truenas.methods
        assert m is not None
        first = await truenas.call(m.snapshot_create, {"dataset": "tank/home", "name": "one"})
        await truenas.call(m.snapshot_create, {"dataset": "tank/home", "name": "two"})
        assert first["id"] == "tank/home@one"
        with pytest.raises(Exception, match="more recent snapshots"):
            await truenas.call(m.snapshot_rollback, "tank/home@one")
        await truenas.call(m.snapshot_rollback, "tank/home@one", {"recursive": True})
        left = await truenas.query(m.snapshot_query, [["dataset", "=", "tank/home"]])
        assert [s["snapshot_name"] for s in left] == ["one"]
        assert await truenas.call(m.snapshot_delete, "tank/home@one") is True
        assert await truenas.query(m.snapshot_query, [["dataset", "=", "tank/home"]]) == []
