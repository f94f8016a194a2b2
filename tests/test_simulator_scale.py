"""The simulator at the issue's scale: 32 nodes, 5,000 guests, 200 resource pools.

Pools are read as a client reads them, over real HTTPS: the list (``GET /pools``), each
pool's members (``GET /pools?poolid=``, the older ``GET /pools/{poolid}``) and the
``type=pool`` entries of ``GET /cluster/resources``, all checked against the PVE schema.
"""

from __future__ import annotations

import signal
import ssl
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from simulator import Simulator, SimulatorConfig
from simulator.cli import read_facts
from tests.support.tui import dashboard, settle, until
from tui.widgets.pool_tree import PoolTree

ROOT = Path(__file__).resolve().parents[1]
SCALE = {"nodes": 32, "guests": 5000, "pools": 200}
HOUSEHOLD = ["lab", "media", "prod"]


@contextmanager
def api(handle: Any) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{handle.pve_url}/api2/json", headers={"Authorization": handle.token.header},
        verify=ssl.create_default_context(cafile=handle.ca_path), timeout=30,
    ) as client:  # fmt: skip
        yield client


def get(client: httpx.Client, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()["data"]


def schema_errors(pve_schema: ModuleType, path: str, data: Any) -> list[str]:
    errors: list[str] = pve_schema.validate_returns(
        "GET", pve_schema.match("GET", path), data, strict=True
    )
    return errors


def members_by_pool(client: httpx.Client, poolids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each pool's members, asked the PVE 8.1+ way (one ``GET /pools?poolid=`` a pool)."""
    out = {}
    for poolid in poolids:
        [entry] = get(client, "/pools", poolid=poolid)
        assert entry["poolid"] == poolid
        out[poolid] = entry["members"]
    return out


def guest_pools(members: dict[str, list[dict[str, Any]]]) -> dict[int, str]:
    """vmid -> pool from pool members; fails if a guest is in two pools (PVE forbids it)."""
    pool_of: dict[int, str] = {}
    for poolid, entries in members.items():
        for member in entries:
            if member["type"] in ("qemu", "lxc"):
                assert member["vmid"] not in pool_of, f"{member['id']} in two pools"
                pool_of[member["vmid"]] = poolid
    return pool_of


# ------------------------------------------------------------------- 200 pools


def test_200_pools_are_listed_members_agree_with_cluster_resources_and_fit_the_schema(
    make_sim: Callable[..., Any], pve_schema: ModuleType
) -> None:
    handle = make_sim(**SCALE)
    with api(handle) as client:
        pools = get(client, "/pools")
        resources = get(client, "/cluster/resources")
        members = members_by_pool(client, [pool["poolid"] for pool in pools])
        poolid = max(members, key=lambda p: len(members[p]))
        legacy = get(client, f"/pools/{poolid}")
        only_qemu = get(client, "/pools", poolid=poolid, type="qemu")[0]["members"]
    assert schema_errors(pve_schema, "/pools", pools) == []
    assert schema_errors(pve_schema, "/cluster/resources", resources) == []
    for poolid_ in members:
        entry = [{"poolid": poolid_, "members": members[poolid_]}]
        assert schema_errors(pve_schema, "/pools", entry) == [], poolid_
    assert schema_errors(pve_schema, f"/pools/{poolid}", legacy) == []

    poolids = [pool["poolid"] for pool in pools]
    assert len(poolids) == 200 and len(set(poolids)) == 200
    assert poolids == sorted(poolids)
    assert set(HOUSEHOLD) <= set(poolids)
    assert all("members" not in pool for pool in pools)  # members only for one pool, as PVE
    # every pool is a type=pool resource; each guest's pool field matches the pool's members
    by_type = Counter(r["type"] for r in resources)
    assert by_type == {"qemu": by_type["qemu"], "lxc": by_type["lxc"], "node": 32,
                       "storage": 3 * 32, "sdn": 32, "pool": 200}  # fmt: skip
    assert by_type["qemu"] + by_type["lxc"] == 5000
    assert {r["id"]: r["pool"] for r in resources if r["type"] == "pool"} == {
        f"/pool/{p}": p for p in poolids
    }
    from_resources = {r["vmid"]: r["pool"] for r in resources if "vmid" in r and "pool" in r}
    assert guest_pools(members) == from_resources
    # a member is the guest's own resource entry (same id, node and type)
    guests = {r["id"]: r for r in resources if "vmid" in r}
    for entries in members.values():
        for member in (m for m in entries if m["type"] != "storage"):
            assert {k: guests[member["id"]][k] for k in ("node", "type", "vmid")} == {
                k: member[k] for k in ("node", "type", "vmid")
            }
    assert legacy["members"] == members[poolid]
    assert only_qemu == [m for m in members[poolid] if m["type"] == "qemu"]


def test_pools_share_the_guests_unevenly_and_some_hold_storages(
    make_sim: Callable[..., Any],
) -> None:
    handle = make_sim(**SCALE)
    with api(handle) as client:
        pools = get(client, "/pools")
        members = members_by_pool(client, [pool["poolid"] for pool in pools])
        storages = {r["storage"] for r in get(client, "/cluster/resources", type="storage")}
    sizes = sorted(
        (sum(1 for m in entries if m["type"] != "storage") for entries in members.values()),
        reverse=True,
    )
    pooled = sum(sizes)
    assert 0.3 * 5000 < pooled < 0.9 * 5000  # most guests in a pool, a good share in none
    assert sizes[0] > 10 * statistics.median(sizes)  # a few big pools, most of them small
    assert sizes[-1] <= 2
    # team pools are named <team>-<project>-<env>, most with a comment
    team = [p for p in pools if p["poolid"] not in HOUSEHOLD]
    assert all(len(p["poolid"].split("-")) >= 3 for p in team)
    assert 0.5 * len(team) < sum(1 for p in team if p.get("comment")) < len(team)
    # storages are pool members too: one entry per node that has the storage
    with_storage = {
        poolid: [m for m in entries if m["type"] == "storage"]
        for poolid, entries in members.items()
        if any(m["type"] == "storage" for m in entries)
    }
    assert "media" in with_storage and len(with_storage) > 3
    for entries in with_storage.values():
        assert {m["storage"] for m in entries} <= storages
        assert len(entries) % 32 == 0
        assert all(m["id"] == f"storage/{m['node']}/{m['storage']}" for m in entries)


def test_pools_are_a_function_of_the_seed_and_change_nothing_but_membership(
    make_sim: Callable[..., Any],
) -> None:
    size = {"nodes": 4, "guests": 600}
    first, again = make_sim(**size, pools=40), make_sim(**size, pools=40)
    household, other_seed = make_sim(**size), make_sim(**size, pools=40, seed=8)
    views = []
    for handle in (first, again, household, other_seed):
        with api(handle) as client:
            pools = get(client, "/pools")
            members = members_by_pool(client, [pool["poolid"] for pool in pools])
            vms = get(client, "/cluster/resources", type="vm")
        views.append((pools, members, vms))
    assert views[0] == views[1]
    assert [p["poolid"] for p in views[0][0]] != [p["poolid"] for p in views[3][0]]
    # the same guests, metrics and all; only their pools differ from the default three
    without_pool = [[{k: v for k, v in vm.items() if k != "pool"} for vm in vms]
                    for _, _, vms in views[:3]]  # fmt: skip
    assert without_pool[0] == without_pool[2]
    assert [p["poolid"] for p in views[2][0]] == HOUSEHOLD
    assert {vm.get("pool") for vm in views[0][2]} - {None} > set(HOUSEHOLD)


def test_zero_or_few_pools(make_sim: Callable[..., Any]) -> None:
    none, one = make_sim(guests=60, pools=0), make_sim(guests=60, pools=1)
    with api(none) as client:
        assert get(client, "/pools") == []
        resources = get(client, "/cluster/resources")
        assert not [r for r in resources if r["type"] == "pool" or "pool" in r]
    with api(one) as client:
        assert [p["poolid"] for p in get(client, "/pools")] == ["prod"]
        pooled = {r.get("pool") for r in get(client, "/cluster/resources", type="vm")}
        assert pooled == {None, "prod"}


def test_a_negative_pool_count_is_refused_before_anything_listens() -> None:
    with pytest.raises(ValueError, match="pool count must be 0 or more, not -1"):
        Simulator(SimulatorConfig(pools=-1))


# ------------------------------------------------------------------ labdeck sim


def labdeck_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdeck", "sim", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--pools", "-1"), "argument --pools: must be 0 or more, got -1"),
        (("--pools", "many"), "argument --pools: expected a whole number, got 'many'"),
        (("--nodes", "0"), "argument --nodes: must be 1 or more, got 0"),
        (("--guests", "-5"), "argument --guests: must be 0 or more, got -5"),
    ],
)
def test_sim_refuses_bad_counts_before_it_listens(args: tuple[str, ...], needle: str) -> None:
    proc = labdeck_sim("--port", "0", *args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "PVE URL" not in proc.stdout  # nothing started


def test_sim_help_describes_pools() -> None:
    proc = labdeck_sim("--help")
    assert proc.returncode == 0
    assert "--pools N" in proc.stdout
    assert "prod, lab and media" in proc.stdout


def test_sim_serves_the_pools_it_was_asked_for() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "sim", "--port", "0", "--guests", "300", "--nodes", "5",
         "--pools", "12"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        facts = read_facts(proc.stdout)
        headers = {"Authorization": facts["PVE token"]}
        trust = ssl.create_default_context(cafile=facts["CA certificate"])
        with httpx.Client(headers=headers, verify=trust, timeout=30) as client:
            pools = client.get(facts["PVE URL"] + "/pools").json()["data"]
            nodes = client.get(facts["PVE URL"] + "/nodes").json()["data"]
        assert len(pools) == 12 and HOUSEHOLD[0] in {p["poolid"] for p in pools}
        assert len(nodes) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


# ------------------------------------------------------------------- dashboard


async def test_pools_tab_lists_200_pools(make_sim: Callable[..., Any], make_service) -> None:
    handle = make_sim(nodes=4, guests=400, pools=200)
    with api(handle) as client:
        expected = [p["poolid"] for p in get(client, "/pools")]
        biggest = Counter(r["pool"] for r in get(client, "/cluster/resources", type="vm")
                          if "pool" in r).most_common(1)[0]  # fmt: skip
    app = dashboard(make_service, handle)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        tree = app.screen_stack[0].query_one(PoolTree)
        await until(pilot, lambda: len(tree.root.children) == 200)
        assert tree.has_focus
        assert [branch.data for branch in tree.root.children] == expected
        branch = next(b for b in tree.root.children if b.data == biggest[0])
        guests = [leaf for leaf in branch.children if not str(leaf.data).startswith("storage/")]
        assert len(guests) == biggest[1]
        assert f"/{biggest[1]} running" in str(branch.label)
