"""Authentication (API tokens and tickets) and a per-path privilege model like PVE's ACL.

Tickets follow PVE's shape and rules: ``PVE:<userid>:<HEX8 time>::<signature>``, valid for
two hours of (simulated) time, renewed by posting a valid ticket as the password; writes
authenticated by a ticket need a matching ``CSRFPreventionToken`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from simulator.config import DemoLogin, DemoToken

TICKET_LIFETIME = 2 * 3600
# PVE accepts tickets made up to 5 minutes "in the future" (clock skew between nodes).
TICKET_SKEW = 300

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
            resolved = next((self.acl[c] for c in _ancestors(path) if c in self.acl), frozenset())
            self._resolved[path] = resolved
        return resolved

    def has(self, path: str, privilege: str) -> bool:
        return privilege in self.privileges(path)

    def has_everywhere_below(self, parent: str, privilege: str) -> bool:
        """Whether ``privilege`` holds on ``parent`` and on every path below it: it holds on
        the parent and no more specific ACL entry below takes it away. Lets a listing of
        thousands of objects (``/vms/<vmid>``) skip the check per object."""
        prefix = parent.rstrip("/") + "/"
        below = (privs for path, privs in self.acl.items() if path.startswith(prefix))
        return self.has(parent, privilege) and all(privilege in privs for privs in below)

    def permission_paths(self) -> list[str]:
        return sorted(set(OVERVIEW_PATHS) | set(self.acl))


@dataclass(frozen=True)
class TokenGrant:
    token: DemoToken
    acl: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class UserGrant:
    login: DemoLogin
    acl: Mapping[str, frozenset[str]]


class Authenticator:
    """Checks API tokens and tickets; issues tickets for user + password."""

    def __init__(
        self,
        grants: Iterable[TokenGrant],
        users: Iterable[UserGrant] = (),
        *,
        clock: Callable[[], float] | None = None,
        key: bytes = b"labdeck-simulator",
    ) -> None:
        self._grants = {grant.token.token_id: grant for grant in grants}
        self._users = {user.login.user: user for user in users}
        self._clock = clock or (lambda: 0.0)
        self._key = key

    def principal_for(self, userid: str) -> Principal | None:
        """The principal for a token id, or for a user (with its first token's ACL)."""
        grant = self._grants.get(userid) or next(
            (g for g in self._grants.values() if g.token.user == userid), None
        )
        if grant is None:
            user = self._users.get(userid)
            return None if user is None else Principal(userid, None, user.acl)
        tokenid = grant.token.token_name if "!" in userid else None
        return Principal(grant.token.user, tokenid, grant.acl)

    def authenticate(self, headers: Mapping[str, str], method: str = "GET") -> Principal:
        value = headers.get("authorization", "").strip()
        ticket = _cookie_ticket(headers.get("cookie", ""))
        if value.startswith("PVEAuthCookie="):
            ticket = value.removeprefix("PVEAuthCookie=")
        if ticket is not None:
            return self._ticket_principal(ticket, headers, method)
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

    # ---------------------------------------------------------------- tickets

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    def _now(self) -> int:
        return int(self._clock())

    def issue(self, userid: str) -> dict[str, str]:
        stamp = f"{self._now():08X}"
        plain = f"PVE:{userid}:{stamp}"
        csrf_plain = f"{stamp}:{userid}"
        return {
            "username": userid,
            "ticket": f"{plain}::{self._sign(plain)}",
            "CSRFPreventionToken": f"{stamp}:{self._sign(csrf_plain)}",
        }

    def verify_ticket(self, ticket: str) -> str | None:
        """The user a valid, unexpired ticket belongs to, or None."""
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE":
            return None
        if not hmac.compare_digest(signature, self._sign(plain)):
            return None
        try:
            issued = int(parts[2], 16)
        except ValueError:
            return None
        age = self._now() - issued
        if age > TICKET_LIFETIME or age < -TICKET_SKEW:
            return None
        return parts[1]

    def _ticket_principal(self, ticket: str, headers: Mapping[str, str], method: str) -> Principal:
        userid = self.verify_ticket(ticket)
        user = self._users.get(userid or "")
        if userid is None or user is None:
            raise AuthFailure("authentication failure")
        if method != "GET":
            csrf = headers.get("csrfpreventiontoken", "")
            stamp, _, signature = csrf.partition(":")
            if not signature or not hmac.compare_digest(signature, self._sign(f"{stamp}:{userid}")):
                raise AuthFailure("Permission denied - invalid csrf token")
        return Principal(userid, None, user.acl)

    def login(self, username: str, password: str, realm: str | None = None) -> dict[str, str]:
        """``POST /access/ticket``: a password, or a valid ticket to renew."""
        userid = username if "@" in username else f"{username}@{realm or 'pam'}"
        user = self._users.get(userid)
        if user is None:
            raise AuthFailure("authentication failure")
        if password.startswith("PVE:"):
            if self.verify_ticket(password) != userid:
                raise AuthFailure("authentication failure")
        elif not hmac.compare_digest(password.encode(), user.login.password.encode()):
            raise AuthFailure("authentication failure")
        return self.issue(userid)


def _cookie_ticket(cookie_header: str) -> str | None:
    for part in cookie_header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == "PVEAuthCookie":
            from urllib.parse import unquote

            return unquote(value)
    return None


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


def demo_users(full: DemoLogin, readonly: DemoLogin) -> list[UserGrant]:
    return [
        UserGrant(full, {"/": ALL_PRIVILEGES}),
        UserGrant(readonly, {"/": AUDITOR_PRIVILEGES}),
    ]
