"""The core client and the catalogue, against the simulator over real HTTPS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.audit import AuditLog
from core.config import PveSettings
from core.errors import (
    AuthError,
    ConfirmationRequired,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PolicyDenied,
    TLSError,
    Unreachable,
)
from core.models import PowerResult, Table
from core.pve import PveClient
from core.tls import sha256_fingerprint


def posts(handle) -> list[tuple[str, str]]:
    return [(m, p) for (m, p) in handle.request_log if m != "GET"]


async def first_guest(lab, **where):
    inventory = await lab.inventory()
    for guest in inventory.guests:
        if all(getattr(guest, k) == v for k, v in where.items()) and not guest.template:
            return guest
    raise AssertionError(f"the seeded cluster has no guest with {where}")


async def test_inventory_comes_from_one_cluster_resources_request(sim, make_service):
    async with make_service(sim) as lab:
        inventory = await lab.inventory()
        assert lab.pve.requests_sent == 1
        assert len(inventory.nodes) == 3
        assert len(inventory.guests) >= 24
        assert {g.kind for g in inventory.guests} == {"qemu", "lxc"}
        assert {g.status for g in inventory.guests} >= {"running", "stopped"}
        assert any(g.tags for g in inventory.guests)
        assert any(g.pool for g in inventory.guests)
        # a listing, an overview and the nodes view reuse the cached inventory
        await lab.call("pve_list_guests")
        await lab.call("pve_list_nodes")
        assert lab.pve.requests_sent == 1


async def test_concurrent_reads_of_the_same_url_are_coalesced(sim, make_service):
    async with make_service(sim) as lab:
        results = await asyncio.gather(*(lab.inventory() for _ in range(10)))
        assert lab.pve.requests_sent == 1
        assert all(r == results[0] for r in results)


async def test_list_guests_is_compact_by_default(sim, make_service):
    async with make_service(sim) as lab:
        table = await lab.call("pve_list_guests")
        assert isinstance(table, Table)
        assert table.columns == ["vmid", "name", "node", "status"]
        assert table.total == len(table.rows) >= 24
        assert table.next_cursor is None
        vmids = [row[0] for row in table.rows]
        assert vmids == sorted(vmids)
        per_guest = len(json.dumps(table.rows, separators=(",", ":"))) / len(table.rows)
        assert per_guest <= 36, f"{per_guest:.1f} characters per guest"


async def test_list_guests_filters_fields_and_pages(sim, make_service):
    async with make_service(sim) as lab:
        inventory = await lab.inventory()
        running_lxc = [
            g.vmid for g in inventory.guests if g.kind == "lxc" and g.status == "running"
        ]
        table = await lab.call("pve_list_guests", {"kind": "lxc", "status": "running"})
        assert [r[0] for r in table.rows] == running_lxc
        on_pve2 = await lab.call("pve_list_guests", {"node": "pve2", "fields": ["vmid", "type"]})
        assert on_pve2.columns == ["vmid", "type"]
        assert {r[0] for r in on_pve2.rows} == {
            g.vmid for g in inventory.guests if g.node == "pve2"
        }
        tagged = next(g for g in inventory.guests if g.tags)
        by_tag = await lab.call("pve_list_guests", {"tag": tagged.tags[0]})
        assert tagged.vmid in [r[0] for r in by_tag.rows]
        pooled = next(g for g in inventory.guests if g.pool)
        by_pool = await lab.call("pve_list_guests", {"pool": pooled.pool})
        assert {r[0] for r in by_pool.rows} == {
            g.vmid for g in inventory.guests if g.pool == pooled.pool
        }
        by_name = await lab.call("pve_list_guests", {"name": inventory.guests[0].name.upper()})
        assert inventory.guests[0].vmid in [r[0] for r in by_name.rows]

        seen: list[int] = []
        cursor = None
        while True:
            page = await lab.call("pve_list_guests", {"limit": 10, "cursor": cursor})
            assert len(page.rows) <= 10
            seen += [r[0] for r in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [g.vmid for g in inventory.guests]


@pytest.mark.parametrize(
    ("op", "params", "field"),
    [
        ("pve_list_guests", {"fields": ["vmid", "password"]}, "fields"),
        ("pve_list_guests", {"kind": "docker"}, "kind"),
        ("pve_list_guests", {"limit": 0}, "limit"),
        ("pve_list_guests", {"cursor": "abc"}, "cursor"),
        ("pve_guest_status", {"vmid": 5}, "vmid"),
        ("pve_guest_status", {"vmid": "abc"}, "vmid"),
        ("pve_guest_status", {}, "vmid"),
        ("pve_guest_status", {"vmid": 100, "node": "bad node!"}, "node"),
        ("pve_guest_status", {"vmid": 100, "colour": "red"}, "colour"),
        ("pve_task_status", {"upid": "not-a-upid"}, "upid"),
        ("pve_start_guest", {"vmid": 100, "timeout_s": -1}, "timeout_s"),
    ],
)
async def test_bad_input_is_rejected_before_any_request(sim, make_service, op, params, field):
    async with make_service(sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput) as info:
            await lab.call(op, params)
        assert field in info.value.fields
        assert lab._pve is None or lab.pve.requests_sent == 0


async def test_unknown_operation_suggests_the_catalogue(sim, make_service):
    async with make_service(sim) as lab:
        with pytest.raises(InvalidInput, match="labdeck ops|Did you mean"):
            await lab.call("pve_reboot_everything", {})


async def test_unknown_vmid_and_wrong_node_give_actionable_errors(sim, make_service):
    async with make_service(sim) as lab:
        with pytest.raises(NotFound, match="no guest with vmid 99999") as info:
            await lab.call("pve_guest_status", {"vmid": 99999})
        assert "pve_list_guests" in str(info.value)
        guest = await first_guest(lab)
        other = "pve1" if guest.node != "pve1" else "pve2"
        with pytest.raises(NotFound, match=f"is on node {guest.node}"):
            await lab.call("pve_guest_status", {"vmid": guest.vmid, "node": other})
        with pytest.raises(NotFound, match="no node named 'pve42'"):
            await lab.call("pve_guest_status", {"vmid": guest.vmid, "node": "pve42"})


async def test_guest_status_reads_the_live_status(sim, make_service):
    async with make_service(sim) as lab:
        guest = await first_guest(lab, kind="qemu", status="running")
        status = await lab.call("pve_guest_status", {"vmid": guest.vmid})
        assert (status.vmid, status.node, status.kind, status.status) == (
            guest.vmid,
            guest.node,
            "qemu",
            "running",
        )
        assert status.maxmem > 0 and status.uptime > 0


async def test_cluster_overview_adds_up(sim, make_service):
    async with make_service(sim) as lab:
        overview = await lab.call("pve_cluster_overview")
        inventory = await lab.inventory()
        assert overview.cluster_name == "labdeck-demo"
        assert overview.quorate is True
        assert overview.nodes_online == overview.nodes_total == 3
        assert overview.guests_total == len(inventory.guests)
        assert overview.qemu_total + overview.lxc_total == overview.guests_total
        assert overview.guests_running == sum(g.status == "running" for g in inventory.guests)
        assert 0 < overview.mem_used < overview.mem_total
        assert overview.version


async def test_pools_list_their_members(sim, make_service):
    async with make_service(sim) as lab:
        pools = (await lab.call("pve_list_pools")).pools
        inventory = await lab.inventory()
        assert len(pools) == 3
        for pool in pools:
            guests = {m.vmid for m in pool.members if m.type in ("qemu", "lxc")}
            assert guests == {g.vmid for g in inventory.guests if g.pool == pool.poolid}


async def test_start_waits_for_the_task_and_the_guest_really_runs(
    fresh_sim, make_service, audit_log
):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        guest = await first_guest(lab, status="stopped")
        seen_progress: list[str] = []
        result = await lab.call(
            "pve_start_guest", {"vmid": guest.vmid}, progress=lambda t, m: seen_progress.append(m)
        )
        assert isinstance(result, PowerResult)
        assert result.changed and result.waited
        assert result.exitstatus == "OK"
        assert result.status_after == "running"
        assert result.upid and result.upid.startswith(f"UPID:{guest.node}:")
        status = await lab.call("pve_guest_status", {"vmid": guest.vmid})
        assert status.status == "running"
        task = await lab.call("pve_task_status", {"upid": result.upid})
        assert task.status == "stopped" and task.ok is True
        assert task.log_tail and task.log_tail[-1] == "TASK OK"
    lines = audit_log.read()
    assert [(e["operation"], e["outcome"]) for e in lines] == [("pve_start_guest", "ok")]
    assert lines[0]["upid"] == result.upid
    assert lines[0]["target"] == f"{guest.kind}/{guest.vmid}@{guest.node}"


async def test_start_of_a_running_guest_changes_nothing(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        guest = await first_guest(lab, status="running")
        fresh_sim.clear_request_log()
        result = await lab.call("pve_start_guest", {"vmid": guest.vmid})
        assert result.changed is False and result.upid is None
        assert posts(fresh_sim) == []


async def test_shutdown_needs_confirmation_and_then_stops_the_guest(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        guest = await first_guest(lab, status="running")
        fresh_sim.clear_request_log()
        with pytest.raises(ConfirmationRequired):
            await lab.call("pve_shutdown_guest", {"vmid": guest.vmid})
        assert posts(fresh_sim) == []
        result = await lab.call("pve_shutdown_guest", {"vmid": guest.vmid}, confirmed=True)
        assert result.status_after == "stopped"


async def test_reboot_of_a_stopped_guest_is_refused_before_sending(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        guest = await first_guest(lab, status="stopped")
        fresh_sim.clear_request_log()
        with pytest.raises(InvalidInput, match="cannot be rebooted"):
            await lab.call("pve_reboot_guest", {"vmid": guest.vmid}, confirmed=True)
        assert posts(fresh_sim) == []


async def test_read_only_mode_refuses_writes_without_sending_them(
    fresh_sim, make_service, audit_log
):
    async with make_service(fresh_sim) as lab:
        guest = await first_guest(lab, status="stopped")
        fresh_sim.clear_request_log()
        with pytest.raises(PolicyDenied, match="read-only") as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
        assert "--allow-writes" in str(info.value)
    assert posts(fresh_sim) == []
    entry = audit_log.read()[-1]
    assert (entry["operation"], entry["outcome"], entry["error"]) == (
        "pve_start_guest",
        "refused",
        "policy",
    )


async def test_protected_guests_are_never_written(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as probe:
        guest = await first_guest(probe, status="stopped")
    for rule in (str(guest.vmid), f"name:{guest.name}"):
        async with make_service(fresh_sim, allow_writes=True, protected=[rule]) as lab:
            fresh_sim.clear_request_log()
            with pytest.raises(PolicyDenied, match="protected"):
                await lab.call("pve_start_guest", {"vmid": guest.vmid})
            assert posts(fresh_sim) == []


async def test_wrong_token_is_an_auth_error_without_the_secret(sim, tmp_path: Path):
    settings = PveSettings(
        host=sim.host, port=sim.port, user="root@pam", token_name="labdeck",
        token_value=SecretStr("wrong-secret-canary"), ca_bundle=Path(sim.ca_path),
    )  # fmt: skip
    async with PveClient(settings) as pve:
        with pytest.raises(AuthError) as info:
            await pve.get("/cluster/resources")
    assert "root@pam!labdeck" in str(info.value)
    assert "wrong-secret-canary" not in str(info.value)
    assert "wrong-secret-canary" not in repr(info.value.args)


async def test_auditor_token_cannot_start_and_is_told_which_privilege(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True, readonly_token=True) as lab:
        guest = await first_guest(lab, status="stopped")
        with pytest.raises(PermissionDenied) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
    assert info.value.privilege == "VM.PowerMgmt"
    assert info.value.path == f"/vms/{guest.vmid}"
    assert "pveum acl modify" in str(info.value)


async def test_server_down_is_unreachable_with_a_hint(sim, make_sim, make_service):
    handle = make_sim()
    lab = make_service(handle)
    handle.stop()  # the port is closed now (and its CA file gone: trust the shared sim's)
    lab.profile.pve.ca_bundle = Path(sim.ca_path)
    async with lab:
        with pytest.raises(Unreachable) as info:
            await lab.call("pve_list_guests")
    assert "Check host and port" in str(info.value)


async def test_untrusted_certificate_is_refused(sim, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    settings = PveSettings(
        host=sim.host, port=sim.port, user=sim.token.user, token_name=sim.token.token_name,
        token_value=SecretStr(sim.token.secret),
    )  # fmt: skip
    async with PveClient(settings) as pve:
        with pytest.raises(TLSError, match="not trusted") as info:
            await pve.get("/version")
    assert "ca_bundle" in str(info.value)


async def test_certificate_pin_is_enforced_before_credentials_are_sent(make_sim):
    handle = make_sim()
    der = Path(handle.ca_path).read_text()  # the CA, not the server cert: a wrong pin
    base = dict(
        host=handle.host, port=handle.port, user=handle.token.user,
        token_name=handle.token.token_name, token_value=SecretStr(handle.token.secret),
    )  # fmt: skip
    good = PveSettings(**base, fingerprint=handle.cert_fingerprint)
    async with PveClient(good) as pve:
        assert (await pve.get("/version"))["version"]
    handle.clear_request_log()
    wrong = PveSettings(**base, fingerprint=sha256_fingerprint(der.encode()))
    async with PveClient(wrong) as pve:
        with pytest.raises(TLSError, match="does not match the configured pin"):
            await pve.get("/version")
    assert handle.request_log == []


async def test_writes_and_refusals_all_reach_the_audit_log(fresh_sim, make_service, tmp_path):
    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        lab.audit = log
        guest = await first_guest(lab, status="stopped")
        await lab.call("pve_start_guest", {"vmid": guest.vmid})
        with pytest.raises(ConfirmationRequired):
            await lab.call("pve_stop_guest", {"vmid": guest.vmid})
        with pytest.raises(NotFound):
            await lab.call("pve_start_guest", {"vmid": 987654})
    entries = log.read()
    assert [e["outcome"] for e in entries] == ["ok", "refused", "error"]
    assert (log.path.stat().st_mode & 0o777) == 0o600
    text = log.path.read_text()
    assert fresh_sim.token.secret not in text


async def test_reads_are_audited_only_when_asked_and_bad_writes_are_audited(
    sim, make_service, audit_log
):
    async with make_service(sim) as lab:
        await lab.call("pve_list_nodes")
    assert audit_log.read() == []
    async with make_service(sim, face="mcp", audit_reads=True, allow_writes=True) as lab:
        await lab.call("pve_list_guests", {"limit": 1})
        with pytest.raises(InvalidInput):
            await lab.call("pve_stop_guest", {"vmid": "all of them"})
    read, bad = audit_log.read()
    assert (read["operation"], read["access"], read["face"], read["outcome"]) == (
        "pve_list_guests",
        "read",
        "mcp",
        "ok",
    )
    assert read["params"] == {"limit": 1}
    assert (bad["operation"], bad["access"], bad["outcome"], bad["error"]) == (
        "pve_stop_guest",
        "write",
        "error",
        "invalid_input",
    )


async def test_allow_operations_limits_writes_to_a_list(fresh_sim, make_service):
    from core.service import Labdeck
    from labdeck.demo import demo_profile

    profile = demo_profile(fresh_sim, allow_writes=True)
    profile.policy.allow_operations = ["pve_start_guest"]
    async with Labdeck(profile, face="cli") as lab:
        stopped = await first_guest(lab, status="stopped")
        running = await first_guest(lab, status="running")
        assert (await lab.call("pve_start_guest", {"vmid": stopped.vmid})).changed
        fresh_sim.clear_request_log()
        with pytest.raises(PolicyDenied, match="not in this profile's allowed write operations"):
            await lab.call("pve_stop_guest", {"vmid": running.vmid}, confirmed=True)
        assert posts(fresh_sim) == []
        assert (await lab.call("pve_list_nodes")).nodes  # reads are never limited


def test_allow_operations_with_unknown_names_is_a_config_error(sim):
    from core.errors import ConfigError
    from core.service import Labdeck
    from labdeck.demo import demo_profile

    profile = demo_profile(sim, allow_writes=True)
    profile.policy.allow_operations = ["pve_start_guest", "pve_nuke_cluster"]
    with pytest.raises(ConfigError, match="pve_nuke_cluster"):
        Labdeck(profile, face="cli")
