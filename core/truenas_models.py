"""TrueNAS wire helpers: per-release method names, ejson, and JSON-RPC error mapping."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from core.errors import (
    AuthError,
    ConfigError,
    InvalidInput,
    LabdeckError,
    NotFound,
    PermissionDenied,
    ServerError,
    TLSError,
    Unreachable,
)

RELEASES = ("25.04", "25.10", "26")

ProgressFn = Callable[[float, str], Awaitable[None] | None]
EventFn = Callable[[dict[str, Any]], Awaitable[None] | None]

# errnos the middleware uses in ``error.data.error``
EACCES, EBUSY, EINVAL, ENOENT, EEXIST = 13, 16, 22, 2, 17
ENOMETHOD, ENOTAUTHENTICATED = 201, 207


class JobFailed(LabdeckError):
    """A TrueNAS job ended FAILED or ABORTED."""

    kind = "job_failed"

    def __init__(
        self,
        message: str,
        *,
        job_id: int,
        method: str,
        state: str,
        error: str | None,
        errno: int | None = None,
        exc_type: str | None = None,
        fields: dict[str, str] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.job_id, self.method, self.state, self.error = job_id, method, state, error
        self.errno, self.exc_type = errno, exc_type
        self.fields = dict(fields or {})

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "job_id": self.job_id, "method": self.method,
                "state": self.state, "job_error": self.error, "fields": self.fields}  # fmt: skip


class NotAuthenticated(AuthError):
    """The middleware answered a call with ENOTAUTHENTICATED: the session's login ended.

    It checks a session's login before it runs a method, so the method did not run.
    :class:`core.truenas.TrueNasClient` logs in again and resends the call once; this
    error reaches callers only when that did not help.
    """


class JobTimeout(LabdeckError):
    """We stopped waiting for a job; it may still be running on the server."""

    kind = "job_timeout"

    def __init__(self, message: str, *, job_id: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class MethodNames:
    """The method names a release uses for things that were renamed between releases."""

    release: str
    snapshot_query: str
    snapshot_create: str
    snapshot_delete: str
    snapshot_rollback: str
    instance_query: str
    instance_start: str
    instance_stop: str
    instance_start_is_job: bool
    scrub: str


def methods_for(release: str) -> MethodNames:
    if release == "25.04":
        snap = "zfs.snapshot"
    else:  # 25.10 made pool.snapshot.* public; 26 keeps it (zfs.resource.snapshot is low-level)
        snap = "pool.snapshot"
    instance = "container" if release == "26" else "virt.instance"
    return MethodNames(
        release=release,
        snapshot_query=f"{snap}.query",
        snapshot_create=f"{snap}.create",
        snapshot_delete=f"{snap}.delete",
        snapshot_rollback=f"{snap}.rollback",
        instance_query=f"{instance}.query",
        instance_start=f"{instance}.start",
        instance_stop=f"{instance}.stop",
        instance_start_is_job=release != "26",
        scrub="zpool.scrub.run" if release == "26" else "pool.scrub.scrub",
    )


_VERSION = re.compile(r"(\d+)\.(\d+)")


def release_of(version: str) -> str:
    """``TrueNAS-25.10.6`` -> ``25.10``; newer unknown releases map to the newest we know."""
    match = _VERSION.search(version)
    if not match:
        raise ServerError(f"cannot read the TrueNAS version from {version[:40]!r}.")
    major, minor = int(match[1]), int(match[2])
    if (major, minor) < (25, 4):
        raise ServerError(
            f"TrueNAS {major}.{minor:02d} is older than 25.04, the first release with the "
            "JSON-RPC API labdeck speaks.",
            hint="Upgrade TrueNAS to 25.04 or newer.",
        )
    if major >= 26:
        return "26"
    return "25.10" if (major, minor) >= (25, 10) else "25.04"


_READ_METHODS = frozenset({
    "core.get_jobs", "core.ping", "auth.me", "auth.mechanism_choices", "system.info",
    "system.version", "system.version_short", "system.ready", "system.state", "alert.list",
    "vm.status", "pool.dataset.details", "reporting.get_data", "reporting.netdata_get_data",
    "zfs.resource.query", "zpool.query",
})  # fmt: skip


def is_read(method: str) -> bool:
    """Reads may be retried after a reconnect; anything else may have changed state."""
    return method.endswith((".query", ".get_instance")) or method in _READ_METHODS


# ---- ejson -----------------------------------------------------------------------------------
def decode(value: Any) -> Any:
    """``{"$date": ms}`` -> aware datetime; ``$type`` date, ``$time``, ``$set`` likewise."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        if "$date" in value and isinstance(value["$date"], int | float):
            return datetime.fromtimestamp(value["$date"] / 1000, UTC)
        if "$time" in value and isinstance(value["$time"], str):
            return time.fromisoformat(value["$time"])
        if "$set" in value and isinstance(value["$set"], list):
            return [decode(v) for v in value["$set"]]
    if value.get("$type") == "date" and isinstance(value.get("$value"), str) and len(value) == 2:
        return date.fromisoformat(value["$value"])
    return {k: decode(v) for k, v in value.items()}


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"$date": int(stamp.timestamp() * 1000)}
    if isinstance(value, date):
        return {"$type": "date", "$value": value.isoformat()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, set | frozenset):
        return {"$set": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


# ---- errors ----------------------------------------------------------------------------------
def field_errors(extra: Any) -> dict[str, str]:
    """``[[attribute, message, errno], ...]`` -> ``{attribute: message}``."""
    fields: dict[str, str] = {}
    if isinstance(extra, list):
        for entry in extra:
            if isinstance(entry, list | tuple) and len(entry) >= 2:
                fields[str(entry[0]) or "params"] = str(entry[1])
    return fields


def map_error(method: str, error: Any, *, release: str | None) -> LabdeckError:
    """A JSON-RPC ``error`` object -> the labdeck error people and agents act on."""
    if not isinstance(error, dict):
        return ServerError(f"TrueNAS answered {method} with a malformed error.")
    code = error.get("code")
    raw_data = error.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    number = data.get("error")
    reason = str(data.get("reason") or error.get("message") or "unknown error").strip()
    where = f"TrueNAS {release}" if release else "TrueNAS"
    if code == -32601 or number == ENOMETHOD:
        return NotFound(
            f"{where} has no method {method}.",
            hint="The method may have been renamed in this release; labdeck picks names by "
            "release, so report this if you did not call it by hand.",
        )
    if code == -32602:
        fields = field_errors(data.get("extra"))
        summary = error.get("message") if not fields else "invalid parameters"
        return InvalidInput(f"{where} rejected the parameters of {method}: {summary}.",
                            fields=fields)  # fmt: skip
    if code == -32000:
        return ServerError(
            f"{where} refused {method}: too many concurrent calls on one connection.",
            hint="Lower the client's max_in_flight (10 is safe).",
        )
    if code in (-32700, -32600, -32603):
        return ServerError(f"{where} could not process the {method} request ({reason}).")
    if number == ENOTAUTHENTICATED:
        return NotAuthenticated(
            f"{where} says the session is not authenticated (calling {method}).",
            hint="The API key may have been revoked or have expired: check it in TrueNAS "
            "and replace it if needed.",
        )
    if number == EACCES:
        return PermissionDenied(
            f"{where} refused {method}: the API key's user lacks a role for it ({reason}).",
            privilege=method,
            hint="Give the key's user a privilege with the needed role (READONLY_ADMIN for "
            "reads, e.g. DATASET_WRITE for dataset changes), or use another key.",
        )
    if number == EBUSY and "rate limit" in reason.lower():
        return ServerError(
            f"{where} rate-limited {method} (too many unauthenticated calls).",
            hint="Wait a minute before retrying the login.",
        )
    fields = field_errors(data.get("extra"))
    if fields:
        return InvalidInput(f"{where} rejected {method}: {reason}", fields=fields)
    if number == ENOENT or (number == EINVAL and "MatchNotFound" in reason):
        return NotFound(f"{where}: {reason if number == ENOENT else 'no match'} ({method}).")
    if number in (EINVAL, EEXIST):
        return InvalidInput(f"{where} rejected {method}: {reason}")
    hint = "TrueNAS failed internally; its log (/var/log/middlewared.log) says why."
    if not is_read(method):
        hint += " labdeck never resends a change: check the current state before retrying."
    return ServerError(f"{where} failed {method}: {reason}", hint=hint)


def job_error(fields: dict[str, Any]) -> JobFailed:
    raw_info = fields.get("exc_info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    job_id, method = int(fields.get("id", 0)), str(fields.get("method", "?"))
    state = str(fields.get("state", "FAILED"))
    error = fields.get("error")
    text = str(error).strip() if error else state.lower()
    return JobFailed(
        f"TrueNAS job {job_id} ({method}) {state.lower()}: {text}",
        job_id=job_id, method=method, state=state, error=None if error is None else str(error),
        errno=info.get("errno"), exc_type=info.get("type"), fields=field_errors(info.get("extra")),
    )  # fmt: skip


# ---- connection plumbing (used by core.truenas) ----------------------------------------------
class Dropped(Exception):
    """The connection went away; ``sent`` says whether our request had left."""

    def __init__(self, sent: bool) -> None:
        super().__init__("connection dropped")
        self.sent = sent


class RpcErrorReply(Exception):
    """A JSON-RPC error object, raised inside the client and mapped by :func:`map_error`."""

    def __init__(self, error: Any) -> None:
        super().__init__("json-rpc error")
        self.error = error


@dataclass
class Connection:
    ws: ClientConnection
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    authenticated: bool = False
    closed: bool = False
    #: login attempts after the first (a call that saw "not authenticated" compares it
    #: with the value it sent at, so concurrent calls share one re-login)
    relogins: int = 0
    auth_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Subscription:
    collection: str
    callback: EventFn
    server_id: str | None = None


def normalise_url(url: str) -> str:
    """``host``, ``https://host`` or ``wss://host`` -> ``wss://host/api/current``."""
    text = url.strip()
    if "://" not in text:
        text = f"wss://{text}"
    parts = urlsplit(text)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ConfigError(f"TrueNAS url must start with wss:// (got {parts.scheme}://).")
    path = parts.path if parts.path not in ("", "/") else "/api/current"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def connect_error(exc: BaseException, host: str, port: int, path: str) -> LabdeckError:
    """Why opening the WebSocket failed, as a labdeck error that says what to do."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(
            f"the certificate of {host}:{port} is not trusted ({exc.verify_message}).",
            hint="Set [truenas] ca_bundle to the CA that signed it, or fingerprint to pin it.",
        )
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return ServerError(
            f"{host} answered HTTP {status} instead of opening {path}.",
            status=status,
            hint="TrueNAS 25.04 or newer serves /api/current; check the url.",
        )
    return Unreachable(
        f"cannot reach TrueNAS at {host}:{port} ({type(exc).__name__}).",
        hint="Check the url, that the host is up and that the port is open.",
    )
