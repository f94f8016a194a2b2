"""SECURITY.md cannot drift from the APIs it describes: every Proxmox VE privilege it names
exists in the PVE schema's privilege list (or, for PVE 8 names, is the one PVE 9 removed),
its pveum recipes grant what the permission checks of every endpoint labdeck calls demand,
and every TrueNAS role it names exists in the TrueNAS method reference."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOC = (ROOT / "SECURITY.md").read_text(encoding="utf-8")

#: the only privilege PVE 8 has that PVE 9 does not (split into VM.GuestAgent.*)
PVE8_ONLY = {"VM.Monitor"}
#: PVE 9 privileges that PVE 8 does not have
PVE9_ONLY_PREFIX = "VM.GuestAgent."
PRIVILEGE = re.compile(
    r"\b(?:VM|Sys|Datastore|Pool|SDN|Permissions|Group|Realm|User|Mapping)\.[A-Z][A-Za-z.]*[a-z]"
)
ROLE = re.compile(r"`([A-Z][A-Z_]+_(?:READ|WRITE|DELETE|ADMIN))`")

#: the PVE endpoints labdeck calls (core/pve*.py), as the schema names them
USED_ENDPOINTS = [
    "GET /version", "GET /access/permissions", "GET /cluster/status", "GET /cluster/resources",
    "GET /cluster/tasks", "GET /cluster/nextid", "GET /nodes", "GET /nodes/{node}/rrddata",
    "GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log",
    "GET /nodes/{node}/storage/{storage}/content", "POST /nodes/{node}/vzdump",
    "GET /pools", "POST /pools", "PUT /pools", "DELETE /pools",
    *(f"{verb} /nodes/{{node}}/{kind}/{{vmid}}/{tail}"
      for kind in ("qemu", "lxc")
      for verb, tail in [
          ("GET", "status/current"), ("GET", "config"), ("GET", "rrddata"),
          ("GET", "snapshot"), ("POST", "snapshot"), ("DELETE", "snapshot/{snapname}"),
          ("POST", "snapshot/{snapname}/rollback"), ("POST", "clone"), ("POST", "migrate"),
          ("POST", "status/start"), ("POST", "status/shutdown"), ("POST", "status/stop"),
          ("POST", "status/reboot"), ("POST", "status/suspend"), ("POST", "status/resume"),
      ]),
    "POST /nodes/{node}/qemu/{vmid}/status/reset",
    "POST /nodes/{node}/qemu/{vmid}/agent/exec", "GET /nodes/{node}/qemu/{vmid}/agent/exec-status",
    "GET /nodes/{node}/qemu/{vmid}/agent/get-osinfo",
    "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
]  # fmt: skip


@pytest.fixture(scope="module")
def pve_subset() -> dict[str, Any]:
    path = SHARED / "pve-api" / "subset.json"
    if not path.exists():
        pytest.skip("../shared/pve-api not present")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def pve9(pve_subset: dict[str, Any]) -> set[str]:
    return set(pve_subset["privileges"]["names"])


def recipes() -> dict[str, set[str]]:
    """``pveum role add NAME -privs "..."`` of the doc: role name -> privileges."""
    found: dict[str, set[str]] = {}
    for line in DOC.splitlines():
        if line.startswith("pveum role add "):
            words = shlex.split(line)
            found[words[3]] = set(words[words.index("-privs") + 1].split())
    return found


def test_every_privilege_named_exists_in_pve_9_or_is_the_pve_8_one(pve9):
    named = set(PRIVILEGE.findall(DOC))
    assert len(named) >= 15, named  # the doc does name them
    unknown = named - pve9 - PVE8_ONLY
    assert not unknown, f"SECURITY.md names privileges PVE does not have: {sorted(unknown)}"
    # the PVE 8/9 difference it describes is real
    assert not PVE8_ONLY & pve9
    assert {n for n in named if n.startswith(PVE9_ONLY_PREFIX)} >= {
        "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
        "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.Unrestricted",
    }  # fmt: skip
    assert {n for n in pve9 if n.startswith(PVE9_ONLY_PREFIX)} == {
        n for n in named if n.startswith(PVE9_ONLY_PREFIX)
    }


def test_pve_9_recipes_use_pve_9_names_and_pve_8_recipes_pve_8_names(pve9):
    roles = recipes()
    assert {"LabdeckReadOnly", "LabdeckOperator", "LabdeckExec"} <= set(roles)
    assert {"LabdeckReadOnly8", "LabdeckOperator8", "LabdeckExec8"} <= set(roles)
    for name, privs in roles.items():
        if name.endswith("8"):
            assert privs <= (pve9 | PVE8_ONLY), name
            assert not [p for p in privs if p.startswith(PVE9_ONLY_PREFIX)], name
        else:
            assert privs <= pve9, (name, privs - pve9)
    # the read-only roles grant nothing that changes state or runs commands
    for name in ("LabdeckReadOnly", "LabdeckReadOnly8"):
        assert all(p.endswith(".Audit") for p in roles[name]), roles[name]


def _satisfied(check: Any, privs: set[str]) -> bool:
    """Evaluate a PVE permission check (``["perm", path, [privs], "any", 1]``, and/or)."""
    if check[0] == "and":
        return all(_satisfied(part, privs) for part in check[1:])
    if check[0] == "or":
        return any(_satisfied(part, privs) for part in check[1:])
    assert check[0] == "perm", check
    needed = check[2]
    return bool(set(needed) & privs) if "any" in check[3:] else set(needed) <= privs


def test_the_recipes_pass_the_schemas_permission_checks(pve_subset):
    endpoints = pve_subset["endpoints"]
    roles = recipes()
    operator = roles["LabdeckOperator"] | roles["LabdeckExec"]
    read_only = roles["LabdeckReadOnly"]
    checked = 0
    for key in USED_ENDPOINTS:
        assert key in endpoints, f"{key} is not in the PVE schema"
        check = endpoints[key].get("permissions", {}).get("check")
        if check is None:
            continue  # "user": "all" (filtered by what the token may see)
        checked += 1
        assert _satisfied(check, operator), f"the operator recipe cannot call {key}: {check}"
        reads_only = key.startswith("GET ") and not key.endswith("exec-status")
        if reads_only:
            assert _satisfied(check, read_only), f"the read-only recipe cannot call {key}"
        else:
            assert not _satisfied(check, read_only), f"the read-only recipe may call {key}"
    assert checked >= 30


def test_requirements_stated_only_in_descriptions_are_in_the_doc(pve_subset):
    """vzdump and clone name further privileges in prose only: the doc names them too."""
    endpoints = pve_subset["endpoints"]
    for key in ("POST /nodes/{node}/vzdump", "POST /nodes/{node}/qemu/{vmid}/clone",
                "PUT /pools"):  # fmt: skip
        text = endpoints[key]["permissions"].get("description", "")
        for privilege in {"VM.Backup", "Datastore.AllocateSpace", "SDN.Use"} & set(
            PRIVILEGE.findall(text)
        ):
            assert privilege in recipes()["LabdeckOperator"], (key, privilege)
    assert "Permissions.Modify" in DOC  # PUT /pools: "the right to modify permissions"


def test_every_truenas_role_named_exists():
    path = SHARED / "truenas-api" / "methods.json"
    if not path.exists():
        pytest.skip("../shared/truenas-api not present")
    reference = json.loads(path.read_text())
    known = set(reference["roles"])
    named = set(ROLE.findall(DOC))
    assert len(named) >= 20, named
    assert not named - known, f"unknown TrueNAS roles: {sorted(named - known)}"
    # what the table says about rollback on 25.04 is what the reference says
    assert reference["methods"]["zfs.snapshot.rollback"]["roles"] == []
    assert set(reference["methods"]["pool.snapshot.rollback"]["roles"]) == {
        "POOL_WRITE", "SNAPSHOT_WRITE",
    }  # fmt: skip
