"""The simulator's PVE API over real HTTPS: schema conformance, auth, errors, bodies."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import socket
import ssl
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorHandle, start_in_thread
from simulator.model import Guest
from simulator.pve_routes import build_routes

PVE_API = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "pve-api"


@pytest.fixture(scope="module")
def pve_check_schema() -> ModuleType:
    if not (PVE_API / "check_schema.py").exists():
        pytest.skip("../shared/pve-api not present")
    spec = importlib.util.spec_from_file_location("pve_check_schema", PVE_API / "check_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sim_handle() -> Iterator[SimulatorHandle]:
    with start_in_thread(SimulatorConfig(seed=7, speed=50)) as handle:
        yield handle


def _client(handle: SimulatorHandle, header: str | None) -> httpx.Client:
    headers = {"Authorization": header} if header else {}
    return httpx.Client(
        base_url=f"{handle.pve_url}/api2/json", verify=_trust(handle), headers=headers, timeout=10
    )


def _trust(handle: SimulatorHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=handle.ca_path)


@pytest.fixture(scope="module")
def api(sim_handle: SimulatorHandle) -> Iterator[httpx.Client]:
    with _client(sim_handle, sim_handle.token.header) as client:
        yield client


@pytest.fixture(scope="module")
def auditor(sim_handle: SimulatorHandle) -> Iterator[httpx.Client]:
    with _client(sim_handle, sim_handle.readonly_token.header) as client:
        yield client


def _pick(handle: SimulatorHandle, kind: str, running: bool, **extra: Any) -> Guest:
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and not guest.template:
            if all(getattr(guest, key) == value for key, value in extra.items()):
                return guest
    raise AssertionError(f"no {kind} guest running={running} in the seeded cluster")


# ----------------------------------------------------------- schema conformance


def _samples(handle: SimulatorHandle) -> list[tuple[str, str, dict[str, Any]]]:
    """One real request per served route (plus a few variants)."""
    q_on = _pick(handle, "qemu", True, agent=True)
    q_off = _pick(handle, "qemu", False)
    c_on = _pick(handle, "lxc", True)
    c_off = _pick(handle, "lxc", False)
    qn, cn = f"/nodes/{q_on.node}/qemu/{q_on.vmid}", f"/nodes/{c_on.node}/lxc/{c_on.vmid}"
    pool = f"conformance{int(time.monotonic() * 1000)}"
    return [
        ("GET", "/version", {}),
        ("GET", "/cluster/status", {}),
        ("GET", "/cluster/resources", {}),
        ("GET", "/cluster/resources", {"type": "vm"}),
        ("GET", "/cluster/resources", {"type": "node"}),
        ("GET", "/cluster/resources", {"type": "storage"}),
        ("GET", "/cluster/resources", {"type": "sdn"}),
        ("GET", "/cluster/tasks", {}),
        ("GET", "/cluster/nextid", {}),
        ("GET", "/nodes", {}),
        ("GET", "/nodes/pve1/status", {}),
        ("GET", "/nodes/pve1/tasks", {"source": "all", "limit": "5"}),
        ("GET", "/nodes/pve1/storage", {}),
        ("GET", "/nodes/pve1/storage", {"content": "images"}),
        ("GET", f"/nodes/{q_on.node}/qemu", {}),
        ("GET", f"/nodes/{c_on.node}/lxc", {}),
        ("GET", f"{qn}/status/current", {}),
        ("GET", f"/nodes/{q_off.node}/qemu/{q_off.vmid}/status/current", {}),
        ("GET", f"{cn}/status/current", {}),
        ("GET", f"/nodes/{c_off.node}/lxc/{c_off.vmid}/status/current", {}),
        ("GET", f"{qn}/config", {}),
        ("GET", f"{cn}/config", {}),
        ("POST", f"{qn}/agent/ping", {}),
        ("GET", f"{qn}/agent/get-osinfo", {}),
        ("GET", f"{qn}/agent/network-get-interfaces", {}),
        ("POST", f"{qn}/agent/exec", {"command": ["uname", "-a"]}),
        ("POST", f"{qn}/agent/exec", {"command": "true", "input-data": "x"}),
        ("GET", f"{qn}/agent/exec-status", {"pid": "{pid}"}),
        ("POST", f"/nodes/{q_off.node}/qemu/{q_off.vmid}/status/start", {}),
        ("POST", f"{qn}/status/reboot", {"timeout": "60"}),
        ("POST", f"{qn}/status/shutdown", {"timeout": "60", "forceStop": "1"}),
        ("POST", f"{qn}/status/stop", {}),
        ("POST", f"/nodes/{c_off.node}/lxc/{c_off.vmid}/status/start", {}),
        ("POST", f"{cn}/status/reboot", {}),
        ("POST", f"{cn}/status/shutdown", {"timeout": "30"}),
        ("POST", f"{cn}/status/stop", {}),
        ("GET", "/pools", {}),
        ("GET", "/pools", {"poolid": "media"}),
        ("GET", "/pools", {"poolid": "prod", "type": "lxc"}),
        ("GET", "/pools/media", {}),
        ("POST", "/pools", {"poolid": pool, "comment": "conformance"}),
        ("PUT", "/pools", {"poolid": pool, "vms": str(q_off.vmid), "comment": "x",
                           "allow-move": "1"}),
        ("PUT", "/pools", {"poolid": pool, "vms": str(q_off.vmid), "delete": "1"}),
        ("DELETE", "/pools", {"poolid": pool}),
        ("GET", "/access/permissions", {}),
        ("GET", "/access/permissions", {"path": "/vms/100"}),
        ("GET", "/nodes/pve1/tasks/{upid}/status", {}),
        ("GET", "/nodes/pve1/tasks/{upid}/log", {"start": "0", "limit": "10"}),
        *_more_samples(handle, {q_on.vmid, q_off.vmid, c_on.vmid, c_off.vmid}),
    ]  # fmt: skip


def _others(handle: SimulatorHandle, kind: str, running: bool, used: set[int]) -> list[Guest]:
    return [g for g in handle.state.guests.values() if g.kind == kind and g.running == running
            and not g.template and g.vmid not in used]  # fmt: skip


def _more_samples(handle: SimulatorHandle, used: set[int]) -> list[tuple[str, str, dict[str, Any]]]:
    """Snapshots, suspend/resume/reset, RRD, storage content, vzdump, clone, migrate."""
    qemu = _others(handle, "qemu", True, used)
    lxc = _others(handle, "lxc", True, used)
    template = next(g for g in handle.state.guests.values() if g.template)
    q1, q2, q3 = qemu[:3]
    c1, c2, c3 = lxc[:3]
    path = {g.vmid: f"/nodes/{g.node}/{g.kind}/{g.vmid}" for g in (q1, q2, q3, c1, c2, c3)}
    other = {g.vmid: next(n for n in handle.state.nodes if n != g.node) for g in (q3, c3)}
    base = 800_000 + int(time.monotonic() * 1000) % 100_000
    out: list[tuple[str, str, dict[str, Any]]] = []
    for g in (q1, c1):
        snap = path[g.vmid] + "/snapshot"
        extra = {"vmstate": "1"} if g.kind == "qemu" else {}
        out += [
            ("GET", snap, {}),
            ("POST", snap, {"snapname": "conf1", "description": "conformance", **extra}),
            ("GET", f"{snap}/conf1", {}),
            ("POST", f"{snap}/conf1/rollback", {"start": "1"}),
            ("DELETE", f"{snap}/conf1", {"force": "1"}),
        ]
    out += [
        ("POST", f"{path[q2.vmid]}/status/suspend", {}),
        ("POST", f"{path[q2.vmid]}/status/resume", {}),
        ("POST", f"{path[q2.vmid]}/status/reset", {"skiplock": "1"}),
        ("POST", f"{path[c2.vmid]}/status/suspend", {}),
        ("POST", f"{path[c2.vmid]}/status/resume", {}),
        ("GET", "/nodes/pve1/rrddata", {"timeframe": "hour"}),
        ("GET", "/nodes/pve2/rrddata", {"timeframe": "day", "cf": "MAX"}),
        ("GET", f"{path[q1.vmid]}/rrddata", {"timeframe": "week"}),
        ("GET", f"{path[c1.vmid]}/rrddata", {"timeframe": "hour", "cf": "AVERAGE"}),
        ("GET", "/nodes/pve1/storage/nas-nfs/content", {}),
        ("GET", "/nodes/pve1/storage/local-lvm/content", {"content": "images"}),
        ("GET", "/nodes/pve1/storage/local/content", {"content": "iso"}),
        ("POST", f"/nodes/{c2.node}/vzdump", {"vmid": str(c2.vmid), "storage": "nas-nfs",
                                             "mode": "snapshot", "compress": "zstd"}),
        ("GET", "/nodes/pve1/storage/nas-nfs/content", {"content": "backup",
                                                       "vmid": str(c2.vmid)}),
        ("POST", f"/nodes/{template.node}/qemu/{template.vmid}/clone",
         {"newid": str(base), "name": "conformance-clone", "full": "0"}),
        ("POST", f"{path[c2.vmid]}/clone", {"newid": str(base + 1), "hostname": "ct-copy"}),
        ("POST", f"{path[q3.vmid]}/migrate", {"target": other[q3.vmid], "online": "1",
                                              "with-local-disks": "1"}),
        ("POST", f"{path[c3.vmid]}/migrate", {"target": other[c3.vmid], "restart": "1"}),
    ]  # fmt: skip
    return out


def test_every_served_route_is_a_real_pve_endpoint(pve_check_schema: ModuleType) -> None:
    for route in build_routes():
        assert pve_check_schema.endpoint(route.method, route.template) is not None, route


def test_every_served_route_answers_within_the_pve_schema(
    sim_handle: SimulatorHandle, api: httpx.Client, pve_check_schema: ModuleType
) -> None:
    schema = pve_check_schema
    pve1_task = sim_handle.state.tasks.for_node("pve1")[0]
    covered: set[tuple[str, str]] = set()
    last_pid = ""
    for method, path, params in _samples(sim_handle):
        path = path.replace("{upid}", pve1_task.upid)
        params = {k: last_pid if v == "{pid}" else v for k, v in params.items()}
        assert schema.validate_request(method, path, params) == [], (method, path)
        sent = {"params": params} if method in ("GET", "DELETE") else {"data": params}
        response = api.request(method, path, **sent)
        assert response.status_code == 200, (method, path, response.reason_phrase)
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        template = schema.match(method, path)
        body = response.json()
        assert schema.validate_returns(method, template, body["data"], strict=True) == [], (
            method,
            path,
        )
        if template.endswith("/agent/exec"):
            last_pid = str(body["data"]["pid"])
        covered.add((method, template))
    served = {(route.method, route.template) for route in build_routes()}
    assert served <= covered, f"routes without a conformance request: {served - covered}"


# ------------------------------------------------------------------------- auth


def test_missing_token_gets_401_no_ticket_with_empty_body(sim_handle: SimulatorHandle) -> None:
    with _client(sim_handle, None) as anonymous:
        response = anonymous.get("/version")
    assert response.status_code == 401
    assert response.reason_phrase == "No ticket"
    assert response.content == b""


@pytest.mark.parametrize(
    "header",
    [
        "PVEAPIToken=root@pam!labdeck=00000000-0000-4000-8000-000000000000",
        "PVEAPIToken=root@pam!nosuch=00000000-0000-4000-8000-000000000000",
        "PVEAPIToken=garbage",
    ],
)
def test_wrong_token_gets_401(sim_handle: SimulatorHandle, header: str) -> None:
    with _client(sim_handle, header) as wrong:
        response = wrong.get("/nodes")
    assert response.status_code == 401
    assert response.reason_phrase == "authentication failure"
    assert response.content == b""


def test_token_with_space_separator_is_accepted(sim_handle: SimulatorHandle) -> None:
    header = sim_handle.token.header.replace("PVEAPIToken=", "PVEAPIToken ", 1)
    with _client(sim_handle, header) as client:
        assert client.get("/version").status_code == 200


def test_auth_failure_is_delayed_when_configured() -> None:
    config = SimulatorConfig(guests=3, nodes=1, auth_fail_delay=0.3)
    with start_in_thread(config) as handle, _client(handle, "PVEAPIToken=x@pam!y=z") as client:
        began = time.monotonic()
        assert client.get("/version").status_code == 401
        assert time.monotonic() - began >= 0.3


def test_readonly_token_cannot_start_a_guest_and_is_told_which_privilege(
    sim_handle: SimulatorHandle, auditor: httpx.Client
) -> None:
    guest = _pick(sim_handle, "qemu", False)
    response = auditor.post(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start")
    assert response.status_code == 403
    assert response.reason_phrase == f"Permission check failed (/vms/{guest.vmid}, VM.PowerMgmt)"
    assert response.json()["message"].endswith("VM.PowerMgmt)\n")
    assert not sim_handle.state.guests[guest.vmid].running


def test_readonly_token_reads_everything_but_cannot_write_pools(
    auditor: httpx.Client, api: httpx.Client
) -> None:
    full = api.get("/cluster/resources").json()["data"]
    seen = auditor.get("/cluster/resources").json()["data"]
    assert {r["id"] for r in seen} == {r["id"] for r in full}
    assert auditor.get("/nodes/pve1/status").status_code == 200
    denied = auditor.post("/pools", data={"poolid": "sneaky"})
    assert denied.status_code == 403
    assert denied.reason_phrase == "Permission check failed (/pool/sneaky, Pool.Allocate)"


AUDITOR_ROLE = {
    "Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit",
    "VM.GuestAgent.Audit",
}  # fmt: skip


def test_permissions_report_the_auditor_role(auditor: httpx.Client, api: httpx.Client) -> None:
    root = auditor.get("/access/permissions", params={"path": "/"}).json()["data"]["/"]
    assert set(root) == AUDITOR_ROLE
    assert set(root.values()) == {1}
    full = api.get("/access/permissions", params={"path": "/vms/100"}).json()["data"]
    assert {"VM.PowerMgmt", "VM.Audit", "Pool.Allocate"} <= set(full["/vms/100"])
    # root may dump another user's permissions (Sys.Audit on /access).
    other = api.get("/access/permissions", params={"userid": "auditor@pve!readonly"})
    assert set(other.json()["data"]["/"]) == AUDITOR_ROLE


# ----------------------------------------------------------------------- errors


def test_unknown_path_is_501_not_implemented(api: httpx.Client) -> None:
    response = api.get("/no/such/thing")
    assert response.status_code == 501
    assert response.reason_phrase == "Method 'GET /no/such/thing' not implemented"
    assert response.json() == {
        "data": None,
        "message": "Method 'GET /no/such/thing' not implemented\n",
    }
    assert api.delete("/version").reason_phrase == "Method 'DELETE /version' not implemented"


def test_path_outside_api2_json_is_501_no_such_uri(sim_handle: SimulatorHandle) -> None:
    with httpx.Client(verify=_trust(sim_handle)) as client:
        response = client.get(f"{sim_handle.pve_url}/api2/xml/version")
    assert (response.status_code, response.reason_phrase) == (501, "no such uri")


def test_bad_vmid_is_400_with_an_errors_object(api: httpx.Client) -> None:
    response = api.get("/nodes/pve1/qemu/abc/status/current")
    assert response.status_code == 400
    assert response.reason_phrase == "Parameter verification failed."
    assert response.json() == {
        "data": None,
        "message": "Parameter verification failed.\n",
        "errors": {"vmid": "type check ('integer') failed - got 'abc'"},
    }


def test_parameter_errors_are_worded_like_pve(
    api: httpx.Client, pve_check_schema: ModuleType
) -> None:
    cases = [
        ("/cluster/resources", {"type": "disk"}),
        ("/cluster/resources", {"bogus": "1"}),
        ("/nodes/pve1/tasks", {"limit": "-1"}),
        ("/nodes/pve1/tasks", {"errors": "true"}),
        ("/cluster/nextid", {"vmid": "99"}),
        ("/pools", {"type": "qemu"}),
        ("/nodes/pve_1/status", {}),
        ("/nodes/pve1/qemu/99/config", {}),
        ("/nodes/pve1/qemu/100/config", {"snapshot": "1bad"}),
    ]
    for path, params in cases:
        response = api.get(path, params=params)
        assert response.status_code == 400, (path, params)
        expected = pve_check_schema.validate_request("GET", path, params)
        got = [f"{k}: {v}" for k, v in response.json()["errors"].items()]
        assert sorted(got) == sorted(expected), (path, params)


def test_missing_required_parameter(api: httpx.Client) -> None:
    response = api.post("/pools", data={"comment": "no id"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"poolid": "property is missing and it is not optional"}


def test_unknown_guest_is_500_naming_the_config_file(api: httpx.Client) -> None:
    response = api.get("/nodes/pve1/qemu/999/status/current")
    assert response.status_code == 500
    assert response.reason_phrase == (
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    )
    assert response.json()["message"].endswith("does not exist\n")
    lxc = api.post("/nodes/pve1/lxc/999/status/start")
    assert lxc.reason_phrase == "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"


def test_unknown_node_is_500_hostname_lookup(api: httpx.Client) -> None:
    response = api.get("/nodes/pve9/status")
    assert response.status_code == 500
    assert response.reason_phrase == (
        "hostname lookup 'pve9' failed - failed to get address info for: pve9: "
        "Name or service not known"
    )


def test_unknown_task_and_pool(api: httpx.Client) -> None:
    upid = "UPID:pve1:00001234:00ABCDEF:692C0000:qmstart:100:root@pam:"
    response = api.get(f"/nodes/pve1/tasks/{upid}/status")
    assert response.status_code == 400
    assert response.json()["errors"] == {"upid": "no such task"}
    missing = api.get("/pools/nosuchpool")
    assert (missing.status_code, missing.reason_phrase) == (500, "pool 'nosuchpool' does not exist")


def test_body_parameter_conflicting_with_the_uri_is_rejected(api: httpx.Client) -> None:
    response = api.post("/nodes/pve1/qemu/100/status/start", data={"node": "pve2"})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "node": "duplicate parameter (already defined in URI) with conflicting values!"
    }


def test_oversized_body_is_501(api: httpx.Client) -> None:
    response = api.post("/pools", data={"poolid": "big", "comment": "x" * (600 * 1024)})
    assert (response.status_code, response.reason_phrase) == (501, "for data too large")


def test_get_with_a_body_is_501(api: httpx.Client) -> None:
    response = api.request(
        "GET",
        "/version",
        content=b"x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (response.status_code, response.reason_phrase) == (501, "Unexpected content for method")


# ---------------------------------------------------------------- bodies, HTTP


def test_form_and_json_bodies_and_query_override(
    sim_handle: SimulatorHandle, api: httpx.Client
) -> None:
    stamp = int(time.monotonic() * 1000)
    form_pool, json_pool = f"form{stamp}", f"json{stamp}"
    assert api.post("/pools", data={"poolid": form_pool, "comment": "by form"}).status_code == 200
    assert api.post("/pools", json={"poolid": json_pool, "comment": "by json"}).status_code == 200
    # Query parameters win over the body, like pveproxy's merge.
    api.put("/pools", params={"comment": "from query"}, data={"poolid": form_pool, "comment": "b"})
    pools = {p["poolid"]: p["comment"] for p in api.get("/pools").json()["data"]}
    assert pools[json_pool] == "by json"
    assert pools[form_pool] == "from query"
    # A repeated form key is a list; for a *-list format it is joined.
    guests = [g.vmid for g in list(sim_handle.state.guests.values()) if g.pool is None][:2]
    response = api.put("/pools", data={"poolid": form_pool, "vms": [str(g) for g in guests]})
    assert response.status_code == 200
    members = api.get(f"/pools/{form_pool}").json()["data"]["members"]
    assert sorted(m["vmid"] for m in members) == sorted(guests)
    api.put("/pools", json={"poolid": form_pool, "vms": f"{guests[0]},{guests[1]}", "delete": 1})
    for pool in (form_pool, json_pool):
        assert api.delete("/pools", params={"poolid": pool}).status_code == 200


def test_json_boolean_true_accepted_but_form_true_rejected(api: httpx.Client) -> None:
    assert api.get("/nodes/pve1/tasks", params={"errors": "1"}).status_code == 200
    rejected = api.get("/nodes/pve1/tasks", params={"errors": "true"})
    assert rejected.json()["errors"] == {"errors": "type check ('boolean') failed - got 'true'"}


def test_keep_alive_serves_many_requests_on_one_connection(sim_handle: SimulatorHandle) -> None:
    context = ssl.create_default_context(cafile=sim_handle.ca_path)
    request = (
        f"GET /api2/json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {sim_handle.token.header}\r\n\r\n"
    ).encode()
    with socket.create_connection((sim_handle.host, sim_handle.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:  # fmt: skip
        for _ in range(5):
            tls.sendall(request)
            head, body = _read_response(tls)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert json.loads(body)["data"]["release"]


def _read_response(sock: ssl.SSLSocket) -> tuple[bytes, bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[:length]


def test_request_log_records_each_request_in_order(sim_handle: SimulatorHandle) -> None:
    sim_handle.clear_request_log()
    with _client(sim_handle, sim_handle.token.header) as client:
        for path in ("/version", "/nodes", "/cluster/resources", "/pools"):
            assert client.get(path).status_code == 200
    assert [entry[1] for entry in sim_handle.request_log][-4:] == [
        "/api2/json/version", "/api2/json/nodes", "/api2/json/cluster/resources",
        "/api2/json/pools",
    ]  # fmt: skip


def test_server_certificate_matches_the_published_fingerprint(
    sim_handle: SimulatorHandle,
) -> None:
    import hashlib

    pem = ssl.get_server_certificate((sim_handle.host, sim_handle.port))
    der = ssl.PEM_cert_to_DER_cert(pem)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert sim_handle.cert_fingerprint == ":".join(
        digest[i : i + 2] for i in range(0, len(digest), 2)
    )
