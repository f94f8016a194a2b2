"""TrueNasClient logs in again when the middleware ends a session's login (socket kept).

The simulator's ``deauthenticate_sessions`` does what middlewared's session manager does
when a session's credentials stop being valid: later calls on the same socket answer
ENOTAUTHENTICATED until the client logs in again. ``revoke_api_key`` also makes that
re-login fail. Everything runs over real wss sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.audit import AuditLog
from core.config import TrueNasSettings
from core.errors import AuthError
from core.truenas import TrueNasClient
from simulator.truenas import TrueNasHandle, start_truenas_in_thread

LOGIN = "auth.login_with_api_key"


def nas_client(handle: Any, **kwargs: Any) -> TrueNasClient:
    settings = TrueNasSettings(url=handle.truenas_url, ca_bundle=Path(handle.ca_path))
    kwargs.setdefault("call_timeout_s", 10.0)
    kwargs.setdefault("reconnect_delay_s", 0.05)
    return TrueNasClient(settings, secret=SecretStr(handle.truenas_api_key), **kwargs)


def methods(handle: Any) -> list[str]:
    """The TrueNAS calls the simulator received, in order (refused ones too)."""
    return list(handle.call(lambda: list(handle.simulator.truenas.method_log)))


def count(handle: Any, name: str) -> int:
    return methods(handle).count(name)


def deauthenticate(handle: Any, *, forget_subscriptions: bool = False) -> int:
    return int(handle.call(lambda: handle.simulator.truenas.deauthenticate_sessions(
        forget_subscriptions=forget_subscriptions)))  # fmt: skip


def count_dataset_events(handle: Any, name: str) -> list[str]:
    """Record the simulator's own state changes of dataset ``name`` (what really ran)."""
    seen: list[str] = []

    def listener(key: str, msg: str, ident: Any, item: Any) -> None:
        if key == "dataset" and ident == name:
            seen.append(msg)

    handle.call(lambda: handle.simulator.truenas.state.listeners.append(listener))
    return seen


async def test_read_logs_in_again_on_the_same_socket_and_succeeds(make_sim: Any) -> None:
    handle = make_sim()
    async with nas_client(handle) as nas:
        before = await nas.query("pool.query", select=["name"])
        assert deauthenticate(handle) == 1
        after = await nas.query("pool.query", select=["name"])
        assert (nas.relogins, nas.reconnects) == (1, 0)
    assert after == before == [{"name": "tank"}, {"name": "backup"}]
    assert count(handle, LOGIN) == 2
    # the refused call, the login, the resent call: nothing else
    assert methods(handle)[-3:] == ["pool.query", LOGIN, "pool.query"]


@pytest.fixture(params=["25.04", "25.10", "26"])
def release_nas(request: pytest.FixtureRequest) -> Iterator[TrueNasHandle]:
    """A TrueNAS simulator of each release, on its own (no Proxmox VE beside it)."""
    with start_truenas_in_thread(version=request.param, speed=20.0) as handle:
        yield handle


async def test_every_release_logs_in_again(release_nas: TrueNasHandle) -> None:
    settings = TrueNasSettings(url=release_nas.url, ca_bundle=Path(release_nas.ca_path or ""))
    async with TrueNasClient(settings, secret=SecretStr(release_nas.api_key)) as nas:
        assert nas.methods is not None
        snapshots = nas.methods.snapshot_query
        before = await nas.query(snapshots, select=["id"])
        assert release_nas.deauthenticate_sessions() == 1
        assert await nas.query(snapshots, select=["id"]) == before
        assert release_nas.revoke_api_key(1) == 1
        with pytest.raises(AuthError, match="refused the API key"):
            await nas.query(snapshots)
        assert nas.relogins == 1
    assert release_nas.method_log.count(LOGIN) == 3  # connect, re-login, refused re-login


async def test_write_is_resent_once_and_runs_once(make_sim: Any) -> None:
    handle = make_sim()
    ran = count_dataset_events(handle, "tank/relogin")
    async with nas_client(handle) as nas:
        await nas.connect()
        deauthenticate(handle)
        created = await nas.call("pool.dataset.create", {"name": "tank/relogin"})
        assert nas.relogins == 1
    assert created["id"] == "tank/relogin"
    assert ran == ["added"]  # the refused send changed nothing; the resent one ran once
    assert methods(handle)[-3:] == ["pool.dataset.create", LOGIN, "pool.dataset.create"]
    assert count(handle, LOGIN) == 2


async def test_dataset_op_survives_a_not_authenticated_answer(
    make_sim: Any, make_service: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="RPC pool.dataset.create=401x1")
    ran = count_dataset_events(handle, "tank/op-relogin")
    async with make_service(handle, allow_writes=True) as lab:
        result = await lab.call("truenas_create_dataset", {"name": "tank/op-relogin"})
    assert result.item is not None and result.item["name"] == "tank/op-relogin"
    assert ran == ["added"]
    assert count(handle, "pool.dataset.create") == 2  # one refused unrun, one run
    assert count(handle, LOGIN) == 2
    entry = audit_log.read()[-1]
    assert (entry["operation"], entry["outcome"]) == ("truenas_create_dataset", "ok")


@pytest.mark.parametrize("how", ["revoked", "login-fault"])
async def test_refused_relogin_is_a_clear_error_without_a_loop(make_sim: Any, how: str) -> None:
    handle = make_sim()
    async with nas_client(handle) as nas:
        await nas.connect()
        if how == "revoked":
            assert handle.call(lambda: handle.simulator.truenas.revoke_api_key(1)) == 1
        else:  # the session loses its login and logins answer "not authenticated" from now
            handle.faults.add_spec(f"RPC {LOGIN}=401")
            deauthenticate(handle)
        with pytest.raises(AuthError) as info:
            await nas.query("pool.query")
        assert count(handle, LOGIN) == 2  # exactly one attempt to log in again
        assert count(handle, "pool.query") == 1  # not resent after the refusal
        # the next call tries once more (the key may have been fixed), still no loop
        with pytest.raises(AuthError):
            await nas.call("system.info")
        assert count(handle, LOGIN) == 3 and count(handle, "system.info") == 1
        assert nas.relogins == 0
    error = info.value
    assert "refused the API key (key id 1) when logging in again" in error.message
    assert error.hint is not None and "revoked" in error.hint and "replace it" in error.hint
    secret = str(handle.truenas_api_key).split("-", 1)[1]
    assert secret not in repr(error.to_dict())


async def test_not_authenticated_again_after_relogin_is_reported_not_retried(
    make_sim: Any,
) -> None:
    handle = make_sim(faults="RPC pool.query=401")  # every pool.query: not authenticated
    async with nas_client(handle) as nas:
        with pytest.raises(AuthError, match="still says the session is not authenticated") as info:
            await nas.query("pool.query")
        assert await nas.query("disk.query")  # the connection stays usable
    assert info.value.hint is not None and "replace it" in info.value.hint
    assert count(handle, LOGIN) == 2 and count(handle, "pool.query") == 2


async def test_concurrent_calls_share_one_relogin(make_sim: Any) -> None:
    # The session loses its login; the fault makes sure each of the ten calls is refused
    # even if the server handles some after the re-login (its thread runs when it likes).
    handle = make_sim(faults="RPC pool.query=401x10")
    async with nas_client(handle) as nas:
        await nas.connect()
        deauthenticate(handle)
        results = await asyncio.gather(
            *(nas.query("pool.query", [["name", "=", "tank"]], select=["name"]) for _ in range(10))
        )
        assert nas.relogins == 1
    assert results == [[{"name": "tank"}]] * 10
    assert count(handle, LOGIN) == 2
    assert count(handle, "pool.query") == 20  # ten refused, ten resent


async def test_job_followed_across_a_relogin_completes(make_sim: Any) -> None:
    handle = make_sim(speed=2.0)  # vm.stop takes 5 simulated s = 2.5 s here
    started = asyncio.Event()
    async with nas_client(handle) as nas:
        job = asyncio.create_task(nas.run_job("vm.stop", 1, progress=lambda p, d: started.set(),
                                              timeout_s=30))  # fmt: skip
        await asyncio.wait_for(started.wait(), 10)
        assert deauthenticate(handle) == 1
        assert await asyncio.wait_for(job, 30) is None
        vm = await nas.query("vm.query", [["id", "=", 1]], get=True)
        assert (nas.relogins, nas.reconnects) == (1, 0)
    assert vm["status"]["state"] == "STOPPED"
    assert count(handle, "vm.stop") == 1  # never resubmitted
    assert count(handle, LOGIN) == 2


@pytest.mark.parametrize("forget", [False, True], ids=["middleware-kept", "middleware-forgot"])
async def test_subscription_delivers_each_event_once_after_relogin(
    make_sim: Any, forget: bool
) -> None:
    handle = make_sim()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with nas_client(handle) as nas:
        await nas.subscribe("pool.dataset.query", events.put)
        deauthenticate(handle, forget_subscriptions=forget)
        await nas.call("pool.dataset.create", {"name": "tank/after"})  # logs in again
        added = await asyncio.wait_for(events.get(), 5)
        await nas.call("pool.dataset.delete", "tank/after")
        removed = await asyncio.wait_for(events.get(), 5)
        assert events.empty()  # the renewed subscription did not double the events
        assert nas.relogins == 1
    assert (added["msg"], added["id"]) == ("added", "tank/after")
    assert (removed["msg"], removed["id"]) == ("removed", "tank/after")
    log = methods(handle)
    renewal = log[log.index(LOGIN, 1) + 1 : log.index(LOGIN, 1) + 3]
    assert renewal == ["core.unsubscribe", "core.subscribe"]


async def test_subscribe_on_a_logged_out_session_logs_in_and_subscribes(make_sim: Any) -> None:
    handle = make_sim()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with nas_client(handle) as nas:
        await nas.connect()
        deauthenticate(handle)
        await nas.subscribe("pool.dataset.query", events.put)
        await nas.call("pool.dataset.create", {"name": "tank/subscribed"})
        added = await asyncio.wait_for(events.get(), 5)
        assert nas.relogins == 1
    assert (added["msg"], added["id"]) == ("added", "tank/subscribed")
    assert count(handle, "core.subscribe") == 2  # the refused one, the renewal after login
