"""The seeded demo cluster: contents, determinism, metric drift, scale, start-up facts."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import Simulator, SimulatorConfig, SimulatorHandle, start_in_thread
from simulator.cli import serve
from simulator.state import ClusterState

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
FINGERPRINT = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _get(handle: SimulatorHandle, path: str, **params: Any) -> Any:
    with httpx.Client(
        verify=ssl.create_default_context(cafile=handle.ca_path),
        headers={"Authorization": handle.token.header},
        timeout=30,
    ) as client:
        response = client.get(f"{handle.pve_url}/api2/json{path}", params=params)
        response.raise_for_status()
        return response.json()["data"]


@pytest.fixture(scope="module")
def sim_handle() -> Iterator[SimulatorHandle]:
    with start_in_thread(SimulatorConfig(seed=7, dynamic=False)) as handle:
        yield handle


def test_demo_cluster_looks_like_a_homelab(sim_handle: SimulatorHandle) -> None:
    status = _get(sim_handle, "/cluster/status")
    cluster = status[0]
    assert (cluster["type"], cluster["name"], cluster["quorate"]) == ("cluster", "labdeck-demo", 1)
    assert [n["name"] for n in status[1:]] == ["pve1", "pve2", "pve3"]
    assert all(n["online"] == 1 for n in status[1:])

    resources = _get(sim_handle, "/cluster/resources")
    guests = [r for r in resources if r["type"] in ("qemu", "lxc")]
    assert len(guests) >= 24
    assert min(g["vmid"] for g in guests) == 100
    assert {g["type"] for g in guests} == {"qemu", "lxc"}
    assert {g["status"] for g in guests} == {"running", "stopped"}
    names = [g["name"] for g in guests]
    assert len(set(names)) == len(names)
    assert all(DNS_LABEL.fullmatch(name) for name in names)
    assert {"pihole", "nextcloud", "jellyfin", "k3s-master", "home-assistant"} <= set(names)
    assert any(";" in g.get("tags", "") for g in guests)
    assert any(g["template"] == 1 for g in guests)
    for guest in guests:
        if guest["status"] == "running":
            assert guest["cpu"] > 0 and guest["mem"] > 0 and guest["uptime"] > 0
            assert guest["netin"] > 0 and guest["netout"] > 0
        else:
            assert (guest["cpu"], guest["mem"], guest["uptime"], guest["netin"]) == (0, 0, 0, 0)

    pools = {r["pool"] for r in resources if r["type"] == "pool"}
    assert pools == {"prod", "lab", "media"}
    assert {g.get("pool") for g in guests} >= pools
    storages = {(r["node"], r["storage"]) for r in resources if r["type"] == "storage"}
    for node in ("pve1", "pve2", "pve3"):
        assert {(node, "local"), (node, "local-lvm"), (node, "nas-nfs")} <= storages
    shared = {r["storage"] for r in resources if r["type"] == "storage" and r["shared"]}
    assert shared == {"nas-nfs"}


def test_guest_configs_are_realistic(sim_handle: SimulatorHandle) -> None:
    with_agent = next(g for g in sim_handle.state.guests.values() if g.kind == "qemu" and g.agent)
    config = _get(sim_handle, f"/nodes/{with_agent.node}/qemu/{with_agent.vmid}/config")
    assert config["agent"] == "1"
    assert config["memory"] == str(with_agent.memory_mib)
    assert config["net0"].startswith("virtio=BC:24:11:") and "bridge=vmbr0" in config["net0"]
    assert config["scsi0"].startswith(f"local-lvm:vm-{with_agent.vmid}-disk-0")
    assert re.fullmatch(r"[0-9a-f]{40}", config["digest"])
    container = next(g for g in sim_handle.state.guests.values() if g.kind == "lxc")
    ct = _get(sim_handle, f"/nodes/{container.node}/lxc/{container.vmid}/config")
    assert ct["hostname"] == container.name
    assert ct["memory"] == container.memory_mib
    assert ct["rootfs"].startswith(f"local-lvm:subvol-{container.vmid}-disk-0")


def test_same_seed_same_cluster_and_other_seed_another() -> None:
    def snapshot(seed: int) -> list[dict[str, Any]]:
        with start_in_thread(SimulatorConfig(seed=seed, dynamic=False)) as handle:
            data: list[dict[str, Any]] = _get(handle, "/cluster/resources")
            return data

    first, again, other = snapshot(42), snapshot(42), snapshot(43)
    assert first == again
    assert first != other


def test_tokens_are_stable_per_seed_and_look_like_uuids() -> None:
    one, two = Simulator(SimulatorConfig(seed=5)), Simulator(SimulatorConfig(seed=5))
    assert one.token == two.token and one.readonly_token == two.readonly_token
    assert Simulator(SimulatorConfig(seed=6)).token != one.token
    assert UUID.fullmatch(one.token.secret) and UUID.fullmatch(one.readonly_token.secret)
    assert one.token.header == f"PVEAPIToken=root@pam!labdeck={one.token.secret}"
    assert one.readonly_token.header.startswith("PVEAPIToken=auditor@pve!readonly=")
    assert one.token.secret not in repr(one.token)


def test_frozen_metrics_do_not_move(sim_handle: SimulatorHandle) -> None:
    before = _get(sim_handle, "/cluster/resources", type="vm")
    sim_handle.call(lambda: sim_handle.state.clock.advance(900))
    assert _get(sim_handle, "/cluster/resources", type="vm") == before


def test_dynamic_metrics_drift_with_simulated_time() -> None:
    with start_in_thread(SimulatorConfig(seed=7, dynamic=True)) as handle:
        before = {r["id"]: r for r in _get(handle, "/cluster/resources", type="vm")}
        handle.call(lambda: handle.state.clock.advance(600))
        after = {r["id"]: r for r in _get(handle, "/cluster/resources", type="vm")}
    running = [key for key, r in before.items() if r["status"] == "running"]
    assert running
    for key in running:
        assert after[key]["uptime"] - before[key]["uptime"] in range(600, 603)
        assert after[key]["netin"] > before[key]["netin"]
        assert 0 < after[key]["cpu"] <= 1
    assert any(after[key]["cpu"] != before[key]["cpu"] for key in running)


def test_state_and_metrics_are_pure_functions_of_seed_and_time() -> None:
    a = ClusterState(cluster_name="x", node_count=3, guest_count=30, seed=9, dynamic=False)
    b = ClusterState(cluster_name="x", node_count=3, guest_count=30, seed=9, dynamic=False)
    assert [a.metrics(g) for g in a.guests.values()] == [b.metrics(g) for g in b.guests.values()]
    assert a.next_free_vmid() == 130


def test_five_thousand_guests_build_fast_and_list_in_one_call() -> None:
    began = time.perf_counter()
    ClusterState(cluster_name="x", node_count=32, guest_count=5000, seed=1)
    assert time.perf_counter() - began < 1.0
    with start_in_thread(SimulatorConfig(nodes=32, guests=5000, seed=1)) as handle:
        began = time.perf_counter()
        vms = _get(handle, "/cluster/resources", type="vm")
        elapsed = time.perf_counter() - began
        nodes = _get(handle, "/nodes")
    assert len(vms) == 5000
    assert len({vm["name"] for vm in vms}) == 5000
    assert len(nodes) == 32
    assert elapsed < 2.0


def test_handle_exposes_connection_facts(sim_handle: SimulatorHandle) -> None:
    assert sim_handle.pve_url == f"https://127.0.0.1:{sim_handle.port}"
    assert sim_handle.host == "127.0.0.1"
    assert FINGERPRINT.fullmatch(sim_handle.cert_fingerprint)
    assert FINGERPRINT.fullmatch(sim_handle.ca_fingerprint)
    assert sim_handle.cert_fingerprint != sim_handle.ca_fingerprint
    with open(sim_handle.ca_path, encoding="ascii") as pem:
        assert pem.read().startswith("-----BEGIN CERTIFICATE-----")
    node = _get(sim_handle, "/nodes")[0]
    assert node["ssl_fingerprint"] == sim_handle.cert_fingerprint


def test_stop_is_idempotent_and_closes_the_port() -> None:
    handle = start_in_thread(SimulatorConfig(guests=3, nodes=1))
    host, port, ca = handle.host, handle.port, handle.ca_path
    assert os.path.exists(ca)
    handle.stop()
    handle.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()
    assert not os.path.exists(ca)  # the throwaway CA goes away with the simulator


async def test_simulator_runs_inside_an_event_loop() -> None:
    async with Simulator(SimulatorConfig(guests=4, nodes=1)) as sim:
        context = ssl.create_default_context(cafile=sim.ca_path)
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(
                f"{sim.pve_url}/api2/json/nodes/pve1/lxc",
                headers={"Authorization": sim.token.header},
            )
        assert response.status_code == 200
        assert sim.request_log == [("GET", "/api2/json/nodes/pve1/lxc")]


async def test_cli_prints_one_line_per_fact_then_serves() -> None:
    lines: list[str] = []
    all_printed = asyncio.Event()

    def collect(line: str) -> None:
        lines.append(line)
        if len(lines) == 6:
            all_printed.set()

    task = asyncio.create_task(serve(SimulatorConfig(guests=2, nodes=1), collect))
    async with asyncio.timeout(10):
        await all_printed.wait()
    url = lines[0].removeprefix("PVE URL: ")
    ca = lines[3].removeprefix("CA certificate: ")
    token = lines[1].removeprefix("PVE token: ")
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as client:
        response = await client.get(f"{url}/version", headers={"Authorization": token})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert response.status_code == 200
    assert re.fullmatch(r"PVE URL: https://127\.0\.0\.1:\d+/api2/json", lines[0])
    assert re.fullmatch(r"PVE token: PVEAPIToken=root@pam!labdeck=\S+", lines[1])
    assert re.fullmatch(r"read-only token: PVEAPIToken=auditor@pve!readonly=\S+", lines[2])
    assert lines[3].startswith("CA certificate: /")
    assert FINGERPRINT.fullmatch(lines[4].removeprefix("CA SHA-256 fingerprint: "))
    assert FINGERPRINT.fullmatch(lines[5].removeprefix("server certificate SHA-256 fingerprint: "))
