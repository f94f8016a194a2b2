"""User + password (ticket) login in the core client, against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from core.config import PolicySettings, Profile, PveSettings, TrueNasSettings
from core.errors import AuthError, PermissionDenied
from core.pve import PveClient
from core.service import Labdeck


def ticket_settings(handle, login=None, password: str | None = None) -> PveSettings:
    login = login or handle.login
    return PveSettings(
        host=handle.host,
        port=handle.port,
        user=login.user,
        password=SecretStr(password or login.password),
        ca_bundle=Path(handle.ca_path),
    )


def profile(settings: PveSettings) -> Profile:
    return Profile(name="t", pve=settings, truenas=TrueNasSettings(),
                   policy=PolicySettings(allow_writes=True))  # fmt: skip


async def test_password_login_reads_and_writes_with_csrf(fresh_sim):
    async with Labdeck(profile(ticket_settings(fresh_sim)), face="cli") as lab:
        inventory = await lab.inventory()
        stopped = next(g for g in inventory.guests if g.status == "stopped" and not g.template)
        result = await lab.call("pve_start_guest", {"vmid": stopped.vmid})
        assert result.status_after == "running"
        assert result.upid and result.upid.split(":")[7] == "root@pam"  # a user, not a token
        assert lab.pve.auth.logins == 1


async def test_wrong_password_is_an_auth_error_naming_the_user_only(sim):
    async with PveClient(ticket_settings(sim, password="wrong-pass-canary")) as pve:
        with pytest.raises(AuthError) as info:
            await pve.get("/version")
    assert "root@pam" in str(info.value)
    assert "wrong-pass-canary" not in str(info.value)


async def test_an_expired_ticket_is_replaced_and_the_request_retried_once(fresh_sim):
    async with PveClient(ticket_settings(fresh_sim)) as pve:
        await pve.get("/version")
        fresh_sim.call(lambda: fresh_sim.state.clock.advance(2 * 3600 + 60))
        fresh_sim.clear_request_log()
        assert (await pve.get("/version"))["version"]
        assert pve.auth.logins == 2
        paths = [path.removeprefix("/api2/json") for _, path in fresh_sim.request_log]
        assert paths == ["/version", "/access/ticket", "/version"]


async def test_an_old_ticket_is_renewed_with_itself_before_it_expires(fresh_sim, monkeypatch):
    async with PveClient(ticket_settings(fresh_sim)) as pve:
        await pve.get("/version")
        first = pve.auth._ticket
        fresh_sim.call(lambda: fresh_sim.state.clock.advance(3600))
        monkeypatch.setattr("core.pve_auth.TICKET_RENEW_AFTER_S", 0.0)  # "1 h 45 min later"
        await pve.get("/version")
        assert pve.auth.logins == 2
        assert pve.auth._ticket != first


async def test_auditor_login_gets_a_permission_error_with_the_users_acl_fix(fresh_sim):
    settings = ticket_settings(fresh_sim, fresh_sim.readonly_login)
    async with Labdeck(profile(settings), face="cli") as lab:
        guest = next(g for g in (await lab.inventory()).guests if g.status == "running")
        with pytest.raises(PermissionDenied) as info:
            await lab.call("pve_stop_guest", {"vmid": guest.vmid}, confirmed=True)
    assert "--users 'auditor@pve'" in str(info.value)
