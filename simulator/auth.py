"""API-token authentication and a per-path privilege model like PVE's ACL.

Only API tokens are accepted for now. Ticket login (``POST /access/ticket`` and
``PVEAuthCookie``) will plug in as another ``authenticate`` branch that yields
the same ``Principal``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from simulator.config import DemoToken

ALL_PRIVILEGES: frozenset[str] = frozenset(
    {
        "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
        "Datastore.Audit", "Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use",
        "Permissions.Modify", "Pool.Allocate", "Pool.Audit", "Realm.Allocate",
        "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use", "Sys.AccessNetwork",
        "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
        "User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM",
        "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
        "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console",
        "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
        "VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt",
        "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback",
    }
)  # fmt: skip

# The built-in PVEAuditor role (PVE 9).
AUDITOR_PRIVILEGES: frozenset[str] = frozenset(
    {
        "Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit",
        "VM.Audit", "VM.GuestAgent.Audit",
    }
)  # fmt: skip

# Paths /access/permissions reports even without an ACL entry of their own.
OVERVIEW_PATHS = (
    "/", "/access", "/access/groups", "/mapping", "/nodes", "/pool", "/sdn", "/storage", "/vms",
)  # fmt: skip


class AuthFailure(Exception):
    """Authentication failed; ``reason`` is the 401 reason phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ancestors(path: str) -> list[str]:
    """``/vms/100`` -> ``["/vms/100", "/vms", "/"]`` (most specific first)."""
    parts = [p for p in path.split("/") if p]
    out = ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    out.append("/")
    return out


@dataclass(frozen=True)
class Principal:
    """Who is calling, with an ACL of propagating ``path -> privileges`` entries.

    As in PVE, the most specific ACL entry on the path or one of its ancestors
    decides; there is no union across levels.
    """

    userid: str
    tokenid: str | None
    acl: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _resolved: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def task_user(self) -> str:
        """The user field of a UPID: ``user@realm!tokenid`` for tokens."""
        return f"{self.userid}!{self.tokenid}" if self.tokenid else self.userid

    def privileges(self, path: str) -> frozenset[str]:
        resolved = self._resolved.get(path)
        if resolved is None:
            resolved = next(
                (self.acl[c] for c in _ancestors(path) if c in self.acl), frozenset()
            )
            self._resolved[path] = resolved
        return resolved

    def has(self, path: str, privilege: str) -> bool:
        return privilege in self.privileges(path)

    def permission_paths(self) -> list[str]:
        return sorted(set(OVERVIEW_PATHS) | set(self.acl))


@dataclass(frozen=True)
class TokenGrant:
    token: DemoToken
    acl: Mapping[str, frozenset[str]]


class Authenticator:
    """Checks ``Authorization`` headers against the known API tokens."""

    def __init__(self, grants: Iterable[TokenGrant]) -> None:
        self._grants = {grant.token.token_id: grant for grant in grants}

    def principal_for(self, userid: str) -> Principal | None:
        """The principal for a token id, or for a user (with its first token's ACL)."""
        grant = self._grants.get(userid) or next(
            (g for g in self._grants.values() if g.token.user == userid), None
        )
        if grant is None:
            return None
        tokenid = grant.token.token_name if "!" in userid else None
        return Principal(grant.token.user, tokenid, grant.acl)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        value = headers.get("authorization", "").strip()
        if not value:
            raise AuthFailure("No ticket")
        credential = _token_credential(value)
        if credential is None:
            raise AuthFailure("No ticket")
        token_id, secret = credential
        grant = self._grants.get(token_id)
        if grant is None or not hmac.compare_digest(
            secret.encode("utf-8", "replace"), grant.token.secret.encode("utf-8")
        ):
            raise AuthFailure("authentication failure")
        return Principal(grant.token.user, grant.token.token_name, grant.acl)


def _token_credential(value: str) -> tuple[str, str] | None:
    """Split ``PVEAPIToken=user@realm!id=secret`` (``=`` or space after the scheme)."""
    scheme = "PVEAPIToken"
    if not value.startswith(scheme) or len(value) <= len(scheme):
        return None
    if value[len(scheme)] not in "= ":
        return None
    rest = value[len(scheme) + 1 :].strip()
    token_id, sep, secret = rest.rpartition("=")
    if not sep or "!" not in token_id:
        return ("", "") if rest else None
    return token_id, secret


def demo_grants(full: DemoToken, readonly: DemoToken) -> list[TokenGrant]:
    return [
        TokenGrant(full, {"/": ALL_PRIVILEGES}),
        TokenGrant(readonly, {"/": AUDITOR_PRIVILEGES}),
    ]
