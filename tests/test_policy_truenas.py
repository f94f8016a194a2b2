"""Protected TrueNAS datasets, snapshots, shares and accounts: every refusal is decided before
a write reaches the simulated NAS (its method log holds no write, its state is unchanged), in
the core and through the MCP face; what is not protected still goes through."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from mcp import Client

from core.errors import ConfigError, PolicyDenied
from core.ops import catalogue
from core.policy import NasTarget, nas_protection_of
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from tests.test_truenas_ops import nas, writes_sent

KINDS = ("dataset", "snapshot", "smb", "nfs", "user", "group")


def nas_state(handle: Any) -> dict[str, Any]:
    """A deep copy of what the simulated NAS holds (read on its loop)."""
    state = nas(handle).state
    return handle.call(lambda: copy.deepcopy({k: state.items[k] for k in KINDS}))


async def refused(lab: Labdeck, op: str, params: dict[str, Any]) -> PolicyDenied:
    with pytest.raises(PolicyDenied) as info:
        await lab.call(op, params, confirmed=True)
    return info.value


# ------------------------------------------------------------------ matching rules (no I/O)


@pytest.mark.parametrize(
    ("rule", "dataset", "recursive", "protected"),
    [
        ("dataset:tank/prod", "tank/prod", False, True),
        ("dataset:tank/prod", "tank/prod/db", False, True),
        ("dataset:tank/prod", "tank/prod/db/logs", False, True),
        ("dataset:tank/prod", "tank/production", False, False),
        ("dataset:tank/prod", "tank/pro", False, False),
        ("dataset:tank/prod", "tank", False, False),
        # a recursive write on an ancestor reaches the protected dataset
        ("dataset:tank/prod", "tank", True, True),
        ("dataset:tank/prod", "tank/production", True, False),
        ("dataset:tank/prod/", "tank/prod/db", False, True),
        ("dataset: tank/prod ", "tank/prod", False, True),
        ("dataset:tank", "tankx/prod", False, False),
        ("dataset:tank", "backup/tank", False, False),
    ],
)
def test_dataset_rules_match_whole_path_components(rule, dataset, recursive, protected):
    target = NasTarget(dataset, datasets=(dataset,), recursive=recursive)
    assert (nas_protection_of((rule,), target) == rule) is protected


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        ("/mnt/tank/prod", True),
        ("/mnt/tank/prod/db", True),
        ("/mnt/tank/production", False),
        ("/mnt/tank", False),
        ("/mnt/backup/tank/prod", False),
    ],
)
def test_share_paths_under_a_protected_mountpoint_match(path, protected):
    target = NasTarget("share", paths=(path,))
    assert (nas_protection_of(("dataset:tank/prod",), target) is not None) is protected


def test_account_rules_match_exact_names_and_guest_rules_match_no_nas_target():
    rules = ("user:alice", "group:builtin_administrators", "100", "name:alice", "tag:tank")
    assert nas_protection_of(rules, NasTarget("u", users=("alice",))) == "user:alice"
    assert nas_protection_of(rules, NasTarget("u", users=("alice2",))) is None
    assert nas_protection_of(rules, NasTarget("u", users=("Alice",))) is None
    both = NasTarget("u", users=("carol",), groups=("builtin_administrators",))
    assert nas_protection_of(rules, both) == "group:builtin_administrators"
    assert nas_protection_of(rules, NasTarget("d", datasets=("tank",), recursive=True)) is None


@pytest.mark.parametrize("rule", ["datset:tank/prod", "dataset:", "prod", "user"])
def test_a_mistyped_rule_is_refused_at_start(rule, tmp_path):
    from core.config import load_settings

    path = tmp_path / "config.toml"
    path.write_text(f"[policy]\nprotected = [{json.dumps(rule)}]\n")
    with pytest.raises(ConfigError, match="not a protection rule"):
        load_settings(path)


def test_every_truenas_write_on_a_dataset_share_or_account_has_a_target():
    """A new TrueNAS write naming one of these can not slip past the rules unnoticed."""
    from core.policy import _DATASET_PARAM, _USER_OPS

    touching = {"dataset", "snapshot", "path", "username"}
    for op in catalogue().values():
        if op.backend != "truenas" or op.read_only:
            continue
        fields = set(op.params.model_fields)
        share = op.name.endswith(("_smb_share", "_nfs_share"))
        covered = op.name in _DATASET_PARAM or "snapshot" in fields or share
        covered = covered or op.name in _USER_OPS
        if fields & touching or "dataset" in op.name or "share" in op.name:
            assert covered, f"{op.name} touches a dataset/share/account but has no target"


# ------------------------------------------------------------------ the core, on the simulator

DATASET_REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("truenas_create_dataset", {"name": "tank/media/new"}),
    ("truenas_update_dataset", {"name": "tank/media/movies", "comments": "x"}),
    ("truenas_update_dataset", {"name": "tank/media", "readonly": True}),
    ("truenas_delete_dataset", {"name": "tank/media/photos"}),
    ("truenas_delete_dataset", {"name": "tank/media", "recursive": True}),
    ("truenas_create_snapshot", {"dataset": "tank/media/photos", "name": "x"}),
    ("truenas_create_snapshot", {"dataset": "tank", "name": "all", "recursive": True}),
    ("truenas_delete_snapshot", {"snapshot": "tank/media/photos@auto-2025-10-31_16-30"}),
    ("truenas_rollback_snapshot", {"snapshot": "tank/media/photos@auto-2025-10-31_16-30"}),
    ("truenas_create_smb_share", {"name": "films", "path": "/mnt/tank/media/movies"}),
    ("truenas_create_nfs_share", {"path": "/mnt/tank/media"}),
    # shares named by id: their current path is read first (smb 1 and nfs 1 are under media)
    ("truenas_update_smb_share", {"id": 1, "comment": "x"}),
    ("truenas_delete_smb_share", {"id": 1}),
    ("truenas_update_nfs_share", {"id": 1, "readonly": True}),
    ("truenas_delete_nfs_share", {"id": 1}),
    # moving an unprotected share onto a protected path
    ("truenas_update_smb_share", {"id": 2, "path": "/mnt/tank/media/photos"}),
]


@pytest.mark.parametrize(("op", "params"), DATASET_REFUSALS, ids=lambda v: str(v)[:40])
async def test_writes_under_a_protected_dataset_are_refused_before_any_write(
    op, params, fresh_sim, make_service, audit_log
):
    before = nas_state(fresh_sim)
    async with make_service(fresh_sim, allow_writes=True, protected=["dataset:tank/media"]) as lab:
        error = await refused(lab, op, params)
    assert "protected by the rule 'dataset:tank/media'" in error.message
    assert writes_sent(fresh_sim) == []
    assert nas_state(fresh_sim) == before
    last = audit_log.read()[-1]
    assert (last["operation"], last["outcome"], last["error"]) == (op, "refused", "policy")
    assert last["target"]


async def test_neighbours_of_a_protected_dataset_are_still_writable(fresh_sim, make_service):
    """``tank/media`` protects neither ``tank/mediaX`` nor a sibling nor a non-recursive
    write on its parent."""
    state = nas(fresh_sim).state
    async with make_service(fresh_sim, allow_writes=True, protected=["dataset:tank/media"]) as lab:
        await lab.call("truenas_create_dataset", {"name": "tank/mediax"})
        await lab.call("truenas_update_dataset", {"name": "tank/mediax", "comments": "ok"})
        await lab.call("truenas_create_snapshot", {"dataset": "tank", "name": "root-only"})
        await lab.call("truenas_create_smb_share", {"name": "mx", "path": "/mnt/tank/mediax"})
        await lab.call("truenas_update_nfs_share", {"id": 2, "comment": "replica"})
        await lab.call("truenas_delete_dataset", {"name": "tank/mediax"}, confirmed=True)
    assert "tank/mediax" not in state.items["dataset"]
    assert "tank@root-only" in state.items["snapshot"]
    assert {m for m in writes_sent(fresh_sim)} >= {
        "pool.dataset.create",
        "pool.dataset.update",
        "sharing.smb.create",
        "sharing.nfs.update",
        "pool.dataset.delete",
    }


async def test_a_protected_pool_root_covers_the_whole_pool(fresh_sim, make_service):
    before = nas_state(fresh_sim)
    async with make_service(fresh_sim, allow_writes=True, protected=["dataset:backup"]) as lab:
        await refused(lab, "truenas_update_nfs_share", {"id": 2, "comment": "x"})
        await refused(lab, "truenas_update_dataset", {"name": "backup/tank-replica", "quota": 1})
        # tank is another pool
        await lab.call("truenas_update_dataset", {"name": "tank/apps", "comments": "fine"})
    assert writes_sent(fresh_sim) == ["pool.dataset.update"]
    assert nas_state(fresh_sim)["nfs"] == before["nfs"]


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("truenas_update_user", {"username": "alice", "locked": True}),
        ("truenas_delete_user", {"username": "alice"}),
        ("truenas_create_user", {"username": "alice", "full_name": "A", "password": "pw-1"}),
    ],
)
async def test_a_protected_user_is_never_changed(op, params, fresh_sim, make_service):
    before = nas_state(fresh_sim)
    async with make_service(fresh_sim, allow_writes=True, protected=["user:alice"]) as lab:
        error = await refused(lab, op, params)
        assert "user alice is protected by the rule 'user:alice'" in error.message
        await lab.call("truenas_update_user", {"username": "bob", "locked": True})
    assert writes_sent(fresh_sim) == ["user.update"]
    after = nas_state(fresh_sim)
    assert after["user"][71] == before["user"][71]  # alice
    assert after["user"][72]["locked"] is True  # bob


async def test_a_protected_group_keeps_its_members(fresh_sim, make_service):
    """group:media: nobody joins or leaves it; changes to other groups go through."""
    before = nas_state(fresh_sim)
    media = 70
    async with make_service(fresh_sim, allow_writes=True, protected=["group:media"]) as lab:
        for op, params in [
            ("truenas_create_user",
             {"username": "carol", "full_name": "C", "password": "pw-1", "groups": [media]}),
            ("truenas_create_user",
             {"username": "dave", "full_name": "D", "password": "pw-1", "group": media}),
            ("truenas_update_user", {"username": "labdeck-ro", "groups": [media]}),  # joins
            ("truenas_update_user", {"username": "alice", "groups": []}),  # leaves
            ("truenas_delete_user", {"username": "alice"}),  # a member
        ]:  # fmt: skip
            error = await refused(lab, op, params)
            assert "'group:media'" in error.message
        assert writes_sent(fresh_sim) == []
        assert nas_state(fresh_sim) == before
        # membership unchanged, or another group: allowed
        await lab.call("truenas_update_user", {"username": "alice", "groups": [media]})
        await lab.call("truenas_update_user", {"username": "alice", "full_name": "Alice E."})
        await lab.call("truenas_delete_user", {"username": "labdeck-ro"}, confirmed=True)
    assert writes_sent(fresh_sim) == ["user.update", "user.update", "user.delete"]


async def test_without_truenas_rules_no_lookup_is_made(fresh_sim, make_service):
    """Resolving a share id or group members costs reads only when a rule needs them."""
    async with make_service(fresh_sim, allow_writes=True, protected=["tag:prod"]) as lab:
        await lab.call("truenas_delete_smb_share", {"id": 2}, confirmed=True)
        await lab.call("truenas_update_user", {"username": "bob", "groups": []})
    log = nas(fresh_sim).method_log
    assert "sharing.smb.delete" in log and "user.update" in log
    # the operations' own reads only: delete_share's one query, update_user's one user lookup
    assert log.count("sharing.smb.query") == 1 and log.count("user.query") == 1


async def test_preflight_refuses_a_protected_dataset_like_call(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True, protected=["dataset:tank/vms"]) as lab:
        with pytest.raises(PolicyDenied):
            await lab.preflight("truenas_delete_dataset", {"name": "tank/vms/debian-disk"})
    assert writes_sent(fresh_sim) == []


# ------------------------------------------------------------------ through the MCP face


def mcp_server_for(handle: Any, audit_log: Any, protected: list[str]) -> Any:
    profile = demo_profile(handle, allow_writes=True)
    profile.policy.protected = list(protected)

    def factory() -> Labdeck:
        return Labdeck(profile, face="mcp", allow_writes=True, audit=audit_log, audit_reads=True)

    return build_server(factory, allow_writes=True)


async def test_mcp_refuses_protected_truenas_targets_without_asking(fresh_sim, audit_log):
    before = nas_state(fresh_sim)
    asked: list[Any] = []

    async def elicit(context: Any, params: Any) -> Any:  # must never be called
        asked.append(params)
        raise AssertionError("asked about a call the policy refuses")

    server = mcp_server_for(fresh_sim, audit_log, ["dataset:tank/home", "user:bob"])
    async with Client(server, elicitation_callback=elicit) as client:
        results = [
            await client.call_tool("truenas_delete_dataset", {"name": "tank/home/alice"}),
            await client.call_tool("truenas_delete_smb_share", {"id": 2}),
            await client.call_tool("truenas_delete_user", {"username": "bob"}),
            await client.call_tool(
                "truenas_rollback_snapshot", {"snapshot": "tank/home/alice@auto-2025-10-31_16-30"}
            ),
        ]
        allowed = await client.call_tool("truenas_update_dataset",
                                         {"name": "tank/apps", "comments": "ok"})  # fmt: skip
    for result in results:
        text = "\n".join(b.text for b in result.content if b.type == "text")
        assert result.is_error and "is protected by the rule" in text, text
    assert not allowed.is_error
    assert asked == []
    assert writes_sent(fresh_sim) == ["pool.dataset.update"]
    after = nas_state(fresh_sim)
    assert {k: v for k, v in after.items() if k != "dataset"} == {
        k: v for k, v in before.items() if k != "dataset"
    }
    assert after["dataset"]["tank/home/alice"] == before["dataset"]["tank/home/alice"]
    outcomes = [(e["operation"], e["outcome"]) for e in audit_log.read() if e["access"] == "write"]
    assert outcomes.count(("truenas_delete_dataset", "refused")) == 1
    assert ("truenas_update_dataset", "ok") in outcomes
