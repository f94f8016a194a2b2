"""An independent, synchronous client (proxmoxer + requests) agrees with the simulator.

If the simulator only worked with our own client, it could share our bugs; proxmoxer is how
much of the ecosystem talks to Proxmox VE.
"""

from __future__ import annotations

import time

import pytest

proxmoxer = pytest.importorskip("proxmoxer")


def api(handle, token=None):
    token = token or handle.token
    return proxmoxer.ProxmoxAPI(
        handle.host,
        port=handle.port,
        user=token.user,
        token_name=token.token_name,
        token_value=token.secret,
        verify_ssl=handle.ca_path,
        timeout=10,
    )


def test_proxmoxer_reads_version_nodes_resources_and_pools(sim):
    pve = api(sim)
    assert pve.version.get()["version"].startswith("9.")
    nodes = pve.nodes.get()
    assert sorted(n["node"] for n in nodes) == ["pve1", "pve2", "pve3"]
    vms = pve.cluster.resources.get(type="vm")
    assert len(vms) >= 24 and {v["type"] for v in vms} == {"qemu", "lxc"}
    qemu_on_pve1 = pve.nodes("pve1").qemu.get()
    assert {v["vmid"] for v in qemu_on_pve1} == {
        v["vmid"] for v in vms if v["type"] == "qemu" and v["node"] == "pve1"
    }
    pools = pve.pools.get()
    assert len(pools) == 3


def test_proxmoxer_starts_a_guest_and_polls_its_task(fresh_sim):
    pve = api(fresh_sim)
    stopped = next(
        v
        for v in pve.cluster.resources.get(type="vm")
        if v["status"] == "stopped" and not v.get("template")
    )
    kind = getattr(pve.nodes(stopped["node"]), stopped["type"])
    upid = kind(stopped["vmid"]).status.start.post()
    assert upid.startswith(f"UPID:{stopped['node']}:")
    deadline = time.monotonic() + 10
    while True:
        task = pve.nodes(stopped["node"]).tasks(upid).status.get()
        if task["status"] == "stopped":
            break
        assert time.monotonic() < deadline, "task did not end"
        time.sleep(0.05)
    assert task["exitstatus"] == "OK"
    assert kind(stopped["vmid"]).status.current.get()["status"] == "running"


def test_proxmoxer_sees_the_same_errors_as_a_real_server(sim):
    bad = api(sim)
    with pytest.raises(proxmoxer.core.ResourceException) as info:
        bad.nodes("pve1").qemu("abc").status.current.get()
    assert info.value.status_code == 400
    assert "vmid" in str(info.value.errors)
    auditor = api(sim, sim.readonly_token)
    with pytest.raises(proxmoxer.core.ResourceException) as info:
        vm = next(v for v in auditor.cluster.resources.get(type="vm"))
        getattr(auditor.nodes(vm["node"]), vm["type"])(vm["vmid"]).status.start.post()
    assert info.value.status_code == 403
    # proxmoxer passes the reason phrase on as content: PVE puts the error there
    assert "Permission check failed" in info.value.content
    assert "VM.PowerMgmt" in info.value.content
