"""Async Proxmox VE API client: one shared ``httpx.AsyncClient`` per cluster.

- token auth (``PVEAPIToken=`` header), TLS verified by default (CA bundle or SHA-256 pin);
- every error mapped in one place (:func:`_raise_for_response`) to ``core.errors`` types whose
  messages say what to do — and never contain the token secret;
- idempotent GETs retried with backoff (and a 429's Retry-After) within a small budget; writes
  are never retried, and a write whose answer was lost raises :class:`OutcomeUnknown`;
- a short TTL cache with request coalescing for hot reads (``/cluster/resources``);
- UPID tasks awaited with a growing poll interval, progress callbacks and a timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from core.config import PveSettings
from core.errors import (
    BadResponse,
    InvalidInput,
    LabdeckError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ServerError,
    TaskFailed,
    TaskTimeout,
    TLSError,
    Unreachable,
)
from core.pve_auth import PveAuth, TicketAuth, TokenAuth
from core.secrets import resolve_secret
from core.tls import (
    insecure_context,
    pinned_context_for,
    plain_http_warning,
    verifying_context,
)

log = logging.getLogger("labdeck.pve")

_UPID = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-F]{8}):"
    r"(?P<pstart>[0-9A-F]{8,9}):(?P<starttime>[0-9A-F]{8}):(?P<type>[^:\s]+):"
    r"(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
_PERMISSION = re.compile(r"Permission check failed \((?P<path>[^,]+), (?P<priv>[^)]+)\)")
_NOT_FOUND_HINTS = (
    "does not exist",
    "no such",
    "hostname lookup",
    "not found",
)
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_GET_RETRIES = 2
#: the longest a GET waits in all between its attempts (backoff and a 429's Retry-After)
RETRY_BUDGET_S = 5.0
_CHECK_TASKS = (
    "labdeck never resends a write: check the task list (pve_list_tasks) and the target's state "
    "before trying again."
)
BIG_BODY = 256 * 1024

ProgressFn = Callable[[float, str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class UpidInfo:
    node: str
    type: str
    id: str
    user: str
    starttime: int


def parse_upid(upid: str) -> UpidInfo:
    m = _UPID.match(upid)
    if not m:
        raise InvalidInput(
            "not a Proxmox task id.",
            fields={"upid": "expected 'UPID:node:pid:pstart:starttime:type:id:user:'"},
        )
    return UpidInfo(
        node=m["node"],
        type=m["type"],
        id=m["id"],
        user=m["user"],
        starttime=int(m["starttime"], 16),
    )


def _message_of(response: httpx.Response) -> str:
    """PVE puts the error in the reason phrase and (since 5.2) the JSON ``message``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"].strip():
        return str(body["message"]).strip()
    return response.reason_phrase.strip() or f"HTTP {response.status_code}"


def _field_errors(response: httpx.Response) -> dict[str, str]:
    try:
        body = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        return {str(k): str(v).strip() for k, v in errors.items()}
    return {}


class PveClient:
    """One cluster. Use as ``async with PveClient(settings) as pve:``."""

    def __init__(
        self,
        settings: PveSettings,
        *,
        secret: SecretStr | None = None,
        max_concurrency: int = 8,
        cache_ttl_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.configured or settings.host is None:
            raise LabdeckError(
                "no Proxmox VE host configured.",
                hint="Set [pve] host in config.toml or PROXMOX_HOST, or run `labdeck demo`.",
            )
        self.settings = settings
        self.auth = auth_for(settings, secret)
        host = settings.host
        netloc = f"[{host}]" if ":" in host else host
        self.base_url = f"{settings.scheme}://{netloc}:{settings.port}/api2/json"
        self.token_id = self.auth.principal
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_lock = asyncio.Lock()
        self._limit = asyncio.Semaphore(max_concurrency)
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        #: number of HTTP requests sent (for benchmarks and the N+1 tests)
        self.requests_sent = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _ssl_context(self) -> ssl.SSLContext:
        """The client's TLS context. A default context loads the system's CA store, ~50 ms
        in OpenSSL (which lets go of the GIL): built in a worker thread, the event loop runs
        on meanwhile (a dashboard's first refresh, a listing's first request)."""
        s = self.settings
        assert s.host is not None
        if s.scheme == "http":  # allowed explicitly (config refuses it otherwise); unused
            log.warning("%s", plain_http_warning(self.base_url))
            return await asyncio.to_thread(verifying_context, s.ca_bundle)
        if s.fingerprint:
            return await pinned_context_for(s.host, s.port, s.fingerprint, s.timeout_s)
        if not s.verify_ssl:
            return await asyncio.to_thread(insecure_context, self.base_url)
        return await asyncio.to_thread(verifying_context, s.ca_bundle)

    async def _http(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                ctx = await self._ssl_context()
                self._client = httpx.AsyncClient(
                    base_url=self.base_url,
                    verify=ctx,
                    # Our own trust settings only: no proxies or CA files picked up by surprise.
                    trust_env=False,
                    timeout=httpx.Timeout(self.settings.timeout_s, connect=5.0),
                    limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
                    headers={
                        **self.auth.static_headers(),
                        "Accept": "application/json",
                        "User-Agent": "labdeck",
                    },
                    transport=self._transport,
                )
        return self._client

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        envelope: bool = False,
    ) -> Any:
        """Send one request and return its ``data``. Writes are sent once, never retried."""
        method = method.upper()
        clean = {k: _encode_param(v) for k, v in (params or {}).items() if v is not None}
        retries = _GET_RETRIES if method == "GET" else 0  # writes are sent once, whatever happens
        attempt, waited = 0, 0.0
        renewed = False
        while True:
            try:
                response = await self._send(method, path, clean)
                if response.status_code == 401 and not renewed:
                    # pveproxy authenticates before any handler runs, so after a 401 nothing
                    # was done: with fresh credentials (an expired ticket) one retry is safe.
                    renewed = True
                    if await self.auth.renew_after_401(await self._http()):
                        response = await self._send(method, path, clean)
            except _Transient as exc:
                pause = 0.2 * 3**attempt
                if exc.retry and attempt < retries and waited + pause <= RETRY_BUDGET_S:
                    attempt, waited = attempt + 1, waited + pause
                    await asyncio.sleep(pause)
                    continue
                raise exc.error from None
            if response.status_code in _RETRY_STATUSES and attempt < retries:
                asked = _retry_after(response) if response.status_code == 429 else None
                pause = 0.2 * 3**attempt if asked is None else asked
                if waited + pause <= RETRY_BUDGET_S:
                    attempt, waited = attempt + 1, waited + pause
                    log.info("%s %s: HTTP %s, retrying in %.1f s", method, path,
                             response.status_code, pause)  # fmt: skip
                    await asyncio.sleep(pause)
                    continue
            _raise_for_response(response, method, path, self.auth)
            try:
                if len(response.content) > BIG_BODY:
                    # A 5,000-guest listing is megabytes: decode it off the event loop.
                    body = await asyncio.to_thread(decode_big_body, response.content)
                else:
                    body = response.json()
            except ValueError:
                raise self._bad_response(response, method, path, "is not valid JSON") from None
            if not isinstance(body, dict) or "data" not in body:
                raise self._bad_response(response, method, path, "lacks the 'data' envelope")
            return body if envelope else body["data"]

    def _bad_response(
        self, response: httpx.Response, method: str, path: str, problem: str
    ) -> BadResponse:
        hint = "A proxy between labdeck and pveproxy may be altering answers; retry, and check it."
        if method != "GET":
            hint = f"The write reached the server and may have been applied; {_CHECK_TASKS}"
        return BadResponse(
            f"{method} {path}: the answer of {self.base_url} {problem} "
            f"(HTTP {response.status_code}, {len(response.content)} bytes).",
            status=response.status_code,
            hint=hint,
        )

    async def _send(self, method: str, path: str, params: dict[str, Any]) -> httpx.Response:
        client = await self._http()
        async with self._limit:
            self.requests_sent += 1
            try:
                headers = await self.auth.request_headers(client, method)
                if method in ("GET", "DELETE"):
                    return await client.request(method, path, params=params, headers=headers)
                return await client.request(method, path, data=params, headers=headers)
            except httpx.ConnectError as exc:
                error = _connect_error(exc, self.base_url, pinned=bool(self.settings.fingerprint))
                # a certificate that is refused now is refused again in a moment
                raise _Transient(error, retry=not isinstance(error, TLSError)) from None
            except (httpx.ConnectTimeout, httpx.PoolTimeout):
                raise _Transient(
                    Unreachable(
                        f"{method} {path}: could not connect to {self.base_url} in time "
                        "(nothing was sent).",
                        hint="Check host and port, that pveproxy runs, and firewalls.",
                    )
                ) from None
            except httpx.TransportError as exc:
                raise _Transient(self._lost_answer(method, path, exc)) from None

    def _lost_answer(self, method: str, path: str, exc: httpx.TransportError) -> LabdeckError:
        """The request left but no answer came (timeout, reset): for a write, unknown outcome."""
        timed_out = isinstance(exc, httpx.TimeoutException)
        what = (
            f"timed out after {self.settings.timeout_s:g} s"
            if timed_out
            else f"lost the connection to {self.base_url} ({_transport_reason(exc)})"
        )
        if method != "GET":
            # The write may have happened: say so rather than pretend it failed or resend it.
            return OutcomeUnknown(
                f"{method} {path} {what} before an answer came: the write may or may not "
                "have been applied.",
                method=f"{method} {path}",
                hint=_CHECK_TASKS,
            )
        if timed_out:
            return Unreachable(
                f"{method} {path} {what}.",
                hint="The server or network is slow; raise [pve] timeout_s or retry.",
            )
        return Unreachable(
            f"{method} {path}: {what}.", hint="Check the network and that pveproxy is running."
        )

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params)

    async def post(self, path: str, params: dict[str, Any] | None = None) -> Any:
        result = await self.request("POST", path, params)
        self.invalidate()
        return result

    async def put(self, path: str, params: dict[str, Any] | None = None) -> Any:
        result = await self.request("PUT", path, params)
        self.invalidate()
        return result

    async def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        result = await self.request("DELETE", path, params)
        self.invalidate()
        return result

    async def cached_get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET through the TTL cache; concurrent callers of the same URL share one request."""
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._cache_ttl_s:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            data = await self.get(path, params)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            self._cache[key] = (time.monotonic(), data)
            future.set_result(data)
            return data
        finally:
            self._inflight.pop(key, None)

    def invalidate(self) -> None:
        """Forget cached reads (after any write)."""
        self._cache.clear()

    # ------------------------------------------------------------------ tasks

    async def task_status(self, upid: str) -> dict[str, Any]:
        info = parse_upid(upid)
        data = await self.get(f"/nodes/{info.node}/tasks/{quote(upid, safe='')}/status")
        return dict(data)

    async def task_log(self, upid: str, *, start: int = 0, limit: int = 50) -> list[str]:
        info = parse_upid(upid)
        lines = await self.get(
            f"/nodes/{info.node}/tasks/{quote(upid, safe='')}/log",
            {"start": start, "limit": limit},
        )
        return [str(line.get("t", "")) for line in lines or []]

    async def task_log_tail(self, upid: str, lines: int = 10) -> list[str]:
        """The last ``lines`` lines of a task log (the envelope's ``total`` says where they are)."""
        info = parse_upid(upid)
        path = f"/nodes/{info.node}/tasks/{quote(upid, safe='')}/log"
        body = await self.request("GET", path, {"start": 0, "limit": lines}, envelope=True)
        total = int(body.get("total") or 0)
        if total > lines:
            body = await self.request(
                "GET", path, {"start": total - lines, "limit": lines}, envelope=True
            )
        return [str(line.get("t", "")) for line in body.get("data") or []]

    async def wait_task(
        self,
        upid: str,
        *,
        timeout_s: float = 120.0,
        progress: ProgressFn | None = None,
        raise_on_failure: bool = True,
    ) -> dict[str, Any]:
        """Poll a task until it stops. Interval grows 0.05 s -> 1 s; raises on failure/timeout."""
        interval = 0.05
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            status = await self.task_status(upid)
            if status.get("status") == "stopped":
                break
            now = time.monotonic()
            if progress is not None:
                result = progress(now - started, f"task {status.get('type', '')} running")
                if result is not None:
                    await result
            if now >= deadline:
                raise TaskTimeout(
                    f"task {upid} still running after {timeout_s:g} s; it may still finish.",
                    upid=upid,
                    hint="Check it later with pve_task_status.",
                )
            await asyncio.sleep(min(interval, max(deadline - now, 0.01)))
            interval = min(interval * 1.6, 1.0)
        exitstatus = status.get("exitstatus")
        if raise_on_failure and exitstatus != "OK" and not str(exitstatus).startswith("WARNINGS"):
            tail = await self.task_log_tail(upid)
            raise TaskFailed(
                f"task failed: {exitstatus}",
                upid=upid,
                exitstatus=str(exitstatus) if exitstatus is not None else None,
                log_tail=tail,
            )
        return status


def _same(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def decode_big_body(content: bytes) -> Any:
    """``json.loads`` with a no-op object hook, for a worker thread.

    A single C call (``json.loads``, ``pydantic_core.from_json``) holds the GIL for the
    whole body: ~35 ms for 5,000 guests, during which the event loop cannot run. The hook
    is Python code, so the interpreter may hand the GIL back to the loop between two
    objects; the parse costs about the same.
    """
    return json.loads(content, object_hook=_same)


class _Transient(Exception):
    """Internal: a transport failure that a GET may retry (unless ``retry`` is False)."""

    def __init__(self, error: LabdeckError, *, retry: bool = True) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry = retry


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed it without answering"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "connection reset"
    return exc.__class__.__name__


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _encode_param(value: Any) -> Any:
    """PVE wants booleans as 0/1 and lists as repeated keys."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, (list, tuple)):
        return [_encode_param(v) for v in value]
    return value


def _connect_error(exc: httpx.ConnectError, base_url: str, *, pinned: bool) -> LabdeckError:
    text = str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError) and pinned:
            return TLSError(
                f"the certificate of {base_url} no longer matches the configured pin "
                f"({cause.verify_message}): it changed since labdeck connected. "
                "Refusing to send credentials.",
                hint="If the certificate was renewed on purpose, update 'fingerprint' with the "
                "value `labdeck doctor` shows; otherwise treat this as an attack.",
            )
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TLSError(
                f"the certificate of {base_url} is not trusted ({cause.verify_message}).",
                hint="Set [pve] ca_bundle to the cluster CA (/etc/pve/pve-root-ca.pem) or pin it "
                "with fingerprint = '<SHA-256 from the node's Certificates panel>'.",
            )
        if isinstance(cause, ssl.SSLError):
            return TLSError(f"TLS handshake with {base_url} failed ({cause.reason}).")
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return TLSError(
            f"the certificate of {base_url} is not trusted.",
            hint="Set [pve] ca_bundle or fingerprint.",
        )
    return Unreachable(
        f"cannot connect to {base_url} ({text or exc.__class__.__name__}).",
        hint="Check host and port, that pveproxy runs, and firewalls.",
    )


def auth_for(settings: PveSettings, secret: SecretStr | None) -> PveAuth:
    """An API token when one is configured, else user + password (ticket login)."""
    if not settings.user:
        raise LabdeckError(
            "no Proxmox VE user configured.",
            hint="Set [pve] user = 'labdeck@pve' (or PROXMOX_USER) and token_name + token_file.",
        )
    if settings.token_name:
        return TokenAuth(
            settings.token_id,
            secret
            or resolve_secret(
                value=settings.token_value,
                file=settings.token_file,
                keyring_entry=settings.token_keyring,
                what="Proxmox VE token secret",
                setting_names="token_value / PROXMOX_TOKEN_VALUE, token_file, token_keyring",
            ),
        )
    if settings.password or settings.password_file or settings.password_keyring:
        return TicketAuth(
            settings.user,
            secret
            or resolve_secret(
                value=settings.password,
                file=settings.password_file,
                keyring_entry=settings.password_keyring,
                what="Proxmox VE password",
                setting_names="password_file, password_keyring or password",
            ),
        )
    raise LabdeckError(
        "no Proxmox VE credentials configured.",
        hint="Set [pve] token_name and token_file (an API token, recommended), or "
        "password_file for ticket login.",
    )


def _raise_for_response(response: httpx.Response, method: str, path: str, auth: PveAuth) -> None:
    """Map PVE's status codes and messages to our error types. The one place that does it."""
    status = response.status_code
    if status < 400:
        return
    message = _message_of(response)
    what = f"{method} {path}"
    if status == 401:
        raise auth.refused(message)
    if status == 403:
        m = _PERMISSION.search(message)
        if m:
            raise PermissionDenied(
                f"{auth.principal} lacks {m['priv']} on {m['path']}.",
                privilege=m["priv"],
                path=m["path"],
                hint=f"Grant a role with {m['priv']} on {m['path']} "
                f"(pveum acl modify {m['path']} {auth.acl_flag} --roles ROLE).",
            )
        raise PermissionDenied(f"{what}: permission denied ({message}).")
    if status == 400:
        fields = _field_errors(response)
        if "upid" in fields and "no such task" in fields["upid"]:
            raise NotFound("no such task.", hint="The task may have been rotated out of the log.")
        raise InvalidInput(f"Proxmox VE rejected the parameters of {what}.", fields=fields)
    if status == 501:
        raise ServerError(
            f"{what} is not implemented by this server ({message}).",
            status=status,
            hint="The Proxmox VE version may be too old for this operation.",
        )
    lowered = message.lower()
    # Guest agent failures quote the guest's own errors ("No such file or directory", "PID n
    # does not exist"): the VM exists, so they are server errors, not NotFound.
    from_agent = lowered.startswith("agent error:") or "qga command" in lowered
    if status == 500 and not from_agent and any(m in lowered for m in _NOT_FOUND_HINTS):
        raise NotFound(message.rstrip(".") + ".")
    if status == 500 and "guest agent is not running" in lowered:
        raise ServerError(
            f"{what} failed: {message}.",
            status=status,
            hint="The VM runs but its QEMU guest agent does not answer: start the "
            "qemu-guest-agent service inside the guest (or wait until it has booted).",
        )
    if status == 595 or status == 596:
        raise Unreachable(f"{what}: a cluster node did not answer ({message}).")
    if status == 429:
        wait = _retry_after(response)
        raise ServerError(
            f"{what}: the server is rate-limiting requests (HTTP 429 {message}).",
            status=status,
            hint=f"It asks to wait {wait:g} s; try again then."
            if wait is not None
            else "Wait a little and try again.",
            retry_after_s=wait,
        )
    if status in _RETRY_STATUSES:
        raise ServerError(
            f"{what} failed: {message} (HTTP {status}).",
            status=status,
            hint="The server or a proxy in front of it is overloaded or restarting; "
            + ("labdeck retried within its budget; " if method == "GET" else "")
            + "try again in a moment.",
        )
    internal = "The server failed internally (the node's journal says why: journalctl -u pvedaemon)"
    raise ServerError(
        f"{what} failed: {message}.",
        status=status,
        hint=f"{internal}; try again later." if method == "GET" else f"{internal}. {_CHECK_TASKS}",
    )
