"""Ticket login on the simulator, as pveproxy does it: POST /access/ticket, the
PVEAuthCookie, CSRF tokens on writes, two-hour lifetime, renewal with the ticket."""

from __future__ import annotations

import ssl

import httpx


def client(handle, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=handle.pve_url + "/api2/json",
        verify=ssl.create_default_context(cafile=handle.ca_path),
        headers=headers,
    )


def login(handle, user=None, password=None) -> httpx.Response:
    with client(handle) as anonymous:
        return anonymous.post(
            "/access/ticket",
            data={"username": user or handle.login.user,
                  "password": password or handle.login.password},
        )  # fmt: skip


def test_login_returns_ticket_and_csrf_in_the_schema(sim, pve_schema):
    response = login(sim)
    assert response.status_code == 200
    data = response.json()["data"]
    assert pve_schema.validate_returns("POST", "/access/ticket", data, strict=True) == []
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    assert len(data["CSRFPreventionToken"].split(":")[0]) == 8
    assert data["clustername"] == "labdeck-demo"


def test_wrong_password_is_401_authentication_failure(sim):
    response = login(sim, password="not-it")
    assert (response.status_code, response.reason_phrase) == (401, "authentication failure")
    response = login(sim, user="nobody@pve")
    assert response.status_code == 401


def test_ticket_reads_by_cookie_and_writes_need_csrf(fresh_sim):
    data = login(fresh_sim).json()["data"]
    cookie = {"Cookie": f"PVEAuthCookie={data['ticket']}"}
    with client(fresh_sim, **cookie) as c:
        assert c.get("/version").status_code == 200
        vm = next(v for v in c.get("/cluster/resources", params={"type": "vm"}).json()["data"]
                  if v["status"] == "stopped" and not v.get("template"))  # fmt: skip
        path = f"/nodes/{vm['node']}/{vm['type']}/{vm['vmid']}/status/start"
        refused = c.post(path)
        assert (refused.status_code, refused.reason_phrase) == (
            401,
            "Permission denied - invalid csrf token",
        )
        ok = c.post(path, headers={"CSRFPreventionToken": data["CSRFPreventionToken"]})
        assert ok.status_code == 200
        assert ok.json()["data"].split(":")[7] == "root@pam"  # the UPID's user: no token id


def test_auditor_ticket_has_auditor_privileges(sim):
    data = login(sim, sim.readonly_login.user, sim.readonly_login.password).json()["data"]
    with client(sim, Authorization=f"PVEAuthCookie={data['ticket']}",
                CSRFPreventionToken=data["CSRFPreventionToken"]) as c:  # fmt: skip
        vm = c.get("/cluster/resources", params={"type": "vm"}).json()["data"][0]
        response = c.post(f"/nodes/{vm['node']}/{vm['type']}/{vm['vmid']}/status/stop")
    assert response.status_code == 403
    assert "VM.PowerMgmt" in response.reason_phrase


def test_tickets_expire_after_two_hours_and_renew_before(fresh_sim):
    data = login(fresh_sim).json()["data"]
    fresh_sim.call(lambda: fresh_sim.state.clock.advance(3600))
    renewed = login(fresh_sim, password=data["ticket"])
    assert renewed.status_code == 200
    new_ticket = renewed.json()["data"]["ticket"]
    assert new_ticket != data["ticket"]
    fresh_sim.call(lambda: fresh_sim.state.clock.advance(3700))  # old one: 2 h 1 min old
    with client(fresh_sim, Cookie=f"PVEAuthCookie={data['ticket']}") as c:
        assert c.get("/version").status_code == 401
    with client(fresh_sim, Cookie=f"PVEAuthCookie={new_ticket}") as c:
        assert c.get("/version").status_code == 200
    assert login(fresh_sim, password=data["ticket"]).status_code == 401


def test_forged_tickets_are_refused(sim):
    ticket = login(sim).json()["data"]["ticket"]
    other_user = ticket.replace("PVE:root@pam:", "PVE:auditor@pve:")  # signature no longer fits
    stamp = ticket.split(":")[2]
    older = ticket.replace(f":{stamp}:", ":00000000:")  # backdated
    for forged in (other_user, older, "PVE:root@pam:00000000::AAAA"):
        with client(sim, Cookie=f"PVEAuthCookie={forged}") as c:
            assert c.get("/version").status_code == 401, forged
