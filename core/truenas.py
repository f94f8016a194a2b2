"""Async TrueNAS client: JSON-RPC 2.0 over one WebSocket (``wss://HOST/api/current``).

- TLS verified by default (CA bundle or SHA-256 pin); an API key is never sent over plain
  ``ws://`` unless the caller explicitly allows it (TrueNAS revokes keys used that way);
- one reader task matches responses to calls by id and dispatches ``collection_update``
  notifications; at most 10 calls in flight (the server runs 10 per connection at once);
- JSON-RPC errors mapped to ``core.errors`` types (validation errors name the field);
- ``{"$date": ms}`` decoded to aware datetimes;
- reconnect with re-login after a drop: reads are retried, writes are not (an in-flight
  write raises :class:`OutcomeUnknown`); jobs are then re-read from ``core.get_jobs``;
- a frame that is not JSON-RPC (cut short, a proxy's page) breaks the connection: we cannot
  tell which call it answered, so it is closed and treated like a drop (reads retried once
  on a new connection, then :class:`BadResponse`; an in-flight write is OutcomeUnknown);
- re-login on the same connection when the middleware says a session is no longer
  authenticated (key re-validated, session expired, middleware restarted behind a proxy
  that kept the socket): the call is then resent once, writes too (see :meth:`_send`);
- the release is probed at login (``system.version``) and ``self.methods`` holds the
  method names of that release.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from core.config import TrueNasSettings
from core.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    LabdeckError,
    NotFound,
    OutcomeUnknown,
    ServerError,
    Unreachable,
)
from core.secrets import resolve_secret
from core.textsafe import printable
from core.tls import insecure_context, pinned_context_for, verifying_context
from core.truenas_models import (
    Connection,
    Dropped,
    EventFn,
    JobTimeout,
    MethodNames,
    NotAuthenticated,
    ProgressFn,
    RpcErrorReply,
    Subscription,
    connect_error,
    decode,
    encode,
    is_read,
    job_error,
    map_error,
    methods_for,
    normalise_url,
    release_of,
)

log = logging.getLogger("labdeck.truenas")

ANON_MAX_MESSAGE = 8 * 1024
MAX_MESSAGE = 64 * 1024
MAX_IN_FLIGHT = 10
FINAL_JOB_STATES = frozenset({"SUCCESS", "FAILED", "ABORTED"})
#: calls resent after a frame that is not JSON-RPC (a server that sent one may well again)
BAD_FRAME_RETRIES = 1
#: characters of such a frame shown in the error (escaped); enough to tell HTML from JSON
EXCERPT_CHARS = 24
BAD_FRAME_HINT = (
    "A proxy between labdeck and TrueNAS may be cutting or rewriting WebSocket frames, or "
    "[truenas] url may not point at the JSON-RPC API (wss://HOST/api/current); check the url "
    "and /var/log/middlewared.log on the system."
)


class BadFrame(Dropped):
    """The connection was closed because TrueNAS sent a frame that is not JSON-RPC.

    ``detail`` says what the frame was (size, a short escaped excerpt), never all of it.
    """

    def __init__(self, detail: str, *, sent: bool = True) -> None:
        super().__init__(sent)
        self.detail = detail


def describe_frame(raw: str | bytes, why: str) -> str:
    """``not JSON: 24 bytes, starting '{"jsonrpc": ...'``: enough to recognise, no more.

    The excerpt is cut short and its control characters escaped: the frame is the server's
    (or a proxy's) text, may hold anything, and is shown in terminals.
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
    start = data[: EXCERPT_CHARS * 4].decode("utf-8", "replace")  # 4: the longest character
    more = "..." if len(start) > EXCERPT_CHARS or len(data) > EXCERPT_CHARS * 4 else ""
    head = printable(start[:EXCERPT_CHARS], multiline=False)
    return f"{why}: {len(data)} bytes, starting '{head}'{more}"


def rpc_message(raw: str | bytes) -> dict[str, Any] | str:
    """The JSON-RPC message (an answer or a notification) in a frame, or why it is not one."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return describe_frame(raw, "not JSON")
    if isinstance(msg, dict) and (
        isinstance(msg.get("method"), str) or ("id" in msg and ("result" in msg or "error" in msg))
    ):
        return msg
    return describe_frame(raw, "JSON but not a JSON-RPC message")


class TrueNasClient:
    """One TrueNAS system. Use as ``async with TrueNasClient(settings) as nas:``."""

    def __init__(
        self,
        settings: TrueNasSettings,
        *,
        secret: SecretStr | None = None,
        allow_insecure_transport: bool = False,
        connect_timeout_s: float = 10.0,
        call_timeout_s: float | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        reconnect_attempts: int = 3,
        reconnect_delay_s: float = 0.2,
    ) -> None:
        if not settings.url:
            raise ConfigError("no TrueNAS url configured.",
                              hint="Set [truenas] url or TRUENAS_URL.")  # fmt: skip
        self.url = normalise_url(settings.url)
        parts = urlsplit(self.url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        if parts.scheme == "ws" and not allow_insecure_transport:
            raise ConfigError(
                f"refusing to send the TrueNAS API key over plain ws:// to {self.host}: "
                "TrueNAS revokes a key that arrives over an insecure transport, and anyone on "
                "the path could read it.",
                hint="Use wss:// (with ca_bundle or fingerprint for a self-signed certificate).",
            )
        self._settings = settings
        self._secret = secret
        self._connect_timeout = connect_timeout_s
        #: seconds to wait for one answer ([truenas] timeout_s unless the caller says)
        self._call_timeout = settings.timeout_s if call_timeout_s is None else call_timeout_s
        self._reconnect_attempts = max(1, reconnect_attempts)
        self._reconnect_delay = reconnect_delay_s
        self._slots = asyncio.Semaphore(max(1, min(max_in_flight, MAX_IN_FLIGHT)))
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._conn: Connection | None = None
        self._subs: dict[str, Subscription] = {}
        self._jobs: dict[int, dict[str, Any]] = {}
        self._job_events: dict[int, asyncio.Event] = {}
        self._jobs_handle: str | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.version: str | None = None
        self.release: str | None = None
        self.methods: MethodNames | None = None
        self.reconnects = 0
        self.relogins = 0

    # ---- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> TrueNasClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Open the connection, log in and probe the release (no-op when connected)."""
        await self._ensure()

    async def aclose(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._shutdown(conn)
        for task in list(self._callbacks):
            task.cancel()

    async def _shutdown(self, conn: Connection) -> None:
        conn.closed = True
        with contextlib.suppress(Exception):
            await conn.ws.close()
        if conn.reader is not None:
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader
        self._fail_pending(conn)

    def _resolve_secret(self) -> SecretStr:
        if self._secret is None:
            s = self._settings
            self._secret = resolve_secret(
                value=s.api_key, file=s.api_key_file, keyring_entry=s.api_key_keyring,
                what="TrueNAS API key",
                setting_names="[truenas] api_key_file, api_key_keyring, api_key or TRUENAS_API_KEY",
            )  # fmt: skip
        return self._secret

    async def _ssl_context(self) -> ssl.SSLContext | None:
        """As ``PveClient._ssl_context``: a context that loads CA certificates (~50 ms in
        OpenSSL, which lets go of the GIL) is built in a worker thread, off the loop."""
        if urlsplit(self.url).scheme != "wss":
            return None
        s = self._settings
        if s.fingerprint:
            return await pinned_context_for(self.host, self.port, s.fingerprint,
                                            self._connect_timeout)  # fmt: skip
        if not s.verify_ssl:
            return await asyncio.to_thread(insecure_context, self.url)
        return await asyncio.to_thread(verifying_context, s.ca_bundle)

    async def _ensure(self) -> Connection:
        if self._closed:
            raise ConfigError("this TrueNAS client is closed.")
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            last: Exception | None = None
            for attempt in range(self._reconnect_attempts):
                if attempt:
                    await asyncio.sleep(self._reconnect_delay * 2 ** (attempt - 1))
                try:
                    return await self._open()
                except Unreachable as exc:
                    last = exc
            assert last is not None
            raise last

    async def _open(self) -> Connection:
        secret = self._resolve_secret()
        context = await self._ssl_context()
        try:
            ws = await asyncio.wait_for(
                connect(self.url, ssl=context, max_size=None, open_timeout=None,
                        compression=None, proxy=None, ping_interval=20, ping_timeout=20),
                self._connect_timeout,
            )  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError) as exc:
            raise connect_error(exc, self.host, self.port, urlsplit(self.url).path) from None
        conn = Connection(ws)
        conn.reader = asyncio.create_task(self._read(conn))
        try:
            await self._login(conn, secret)
            self.version = str(await self._request(conn, "system.version", []))
            self.release = release_of(self.version)
            self.methods = methods_for(self.release)
            await self._renew_subscriptions(conn, replace=False)
        except BadFrame as exc:
            await self._shutdown(conn)
            raise BadResponse(
                f"TrueNAS at {self.host} sent something that is not JSON-RPC while logging in "
                f"({exc.detail}); the connection was closed.",
                hint=BAD_FRAME_HINT,
            ) from None
        except Dropped:
            await self._shutdown(conn)
            raise Unreachable(
                f"TrueNAS at {self.host} closed the connection while logging in.",
                hint="Check the server's logs; retry in a moment.",
            ) from None
        except BaseException:
            await self._shutdown(conn)
            raise
        if self._conn is not None:  # replacing a dropped connection
            self.reconnects += 1
        self._conn = conn
        log.info("connected to %s (%s)", self.host, self.version)
        return conn

    async def _login(self, conn: Connection, secret: SecretStr, *, again: bool = False) -> None:
        try:
            ok = await self._request(conn, "auth.login_with_api_key", [secret.get_secret_value()])
        except NotAuthenticated:  # a login answered "not authenticated" refused the key too
            ok = False
        if ok is not True:
            raise self._key_refused(secret, again=again)
        conn.authenticated = True

    def _key_refused(self, secret: SecretStr, *, again: bool) -> AuthError:
        head = secret.get_secret_value().partition("-")[0]
        key_id = head if head.isdigit() else "?"
        when = " when logging in again after the session's login ended" if again else ""
        return AuthError(
            f"TrueNAS at {self.host} refused the API key (key id {key_id}){when}.",
            hint="Check that the key is current (not revoked or expired) and its user is "
            "enabled, and replace it if not; keys used over plain http/ws are revoked by "
            "TrueNAS and must be re-issued.",
        )

    async def _relogin(self, conn: Connection, seen: int) -> None:
        """Log in again on ``conn``: once for all the calls that saw the login end together.

        ``seen`` is ``conn.relogins`` when the caller sent its call; if it moved on since,
        another call has logged in again (or been refused) and this one shares the outcome.
        Only a finished attempt counts: after a drop or a timeout the next caller tries.
        """
        async with conn.auth_lock:
            secret = self._resolve_secret()
            if conn.relogins != seen:
                if not conn.authenticated:
                    raise self._key_refused(secret, again=True)
                return
            conn.authenticated = False
            log.warning("TrueNAS at %s ended the session's login; logging in again", self.host)
            try:
                async with self._slots:
                    await self._login(conn, secret, again=True)
            except AuthError:
                conn.relogins += 1
                raise
            conn.relogins += 1
            self.relogins += 1
            await self._renew_subscriptions(conn, replace=True)

    async def _log_in_again(self, conn: Connection, seen: int, method: str) -> None:
        """:meth:`_relogin` for a call to ``method`` that did not run, its errors made clear."""
        try:
            await self._relogin(conn, seen)
        except BadFrame as exc:
            raise BadFrame(exc.detail, sent=False) from None  # the call did not run either
        except Dropped:
            raise Dropped(sent=False) from None  # the call did not run: a reconnect may resend it
        except TimeoutError:
            raise Unreachable(
                f"TrueNAS at {self.host} did not answer the login in time ({method} did not run).",
                hint="The system may be busy; retry later.",
            ) from None
        except NotAuthenticated:  # renewing the subscriptions right after the login
            raise self._still_refused(method) from None

    def _still_refused(self, method: str) -> AuthError:
        return AuthError(
            f"TrueNAS at {self.host} still says the session is not authenticated (calling "
            f"{method}) after logging in again with the API key.",
            hint="The key may have been revoked or have expired: check it in TrueNAS "
            "(Credentials > Users > API keys) and replace it if needed.",
        )

    async def _renew_subscriptions(self, conn: Connection, *, replace: bool) -> None:
        """Subscribe ``conn`` to every collection we follow (after a reconnect or re-login).

        ``replace``: the session may still hold the old subscriptions (middlewared keeps them
        when only the login ended; a middleware restarted behind a proxy has forgotten them),
        so each old id is dropped first (unknown ids are ignored) to get every event once.
        """
        for sub in list(self._subs.values()):
            if replace and sub.server_id is not None:
                await self._request(conn, "core.unsubscribe", [sub.server_id])
            sub.server_id = None
            sub.server_id = str(await self._request(conn, "core.subscribe", [sub.collection]))

    # ---- wire ----------------------------------------------------------------------------
    async def _read(self, conn: Connection) -> None:
        bad: str | None = None
        try:
            async for raw in conn.ws:
                msg = rpc_message(raw)
                if isinstance(msg, str):  # whose answer was it? Only a new connection is sure
                    bad = msg
                    log.warning("TrueNAS at %s sent a frame that is %s; closing the connection",
                                self.host, msg)  # fmt: skip
                    break
                self._dispatch(conn, msg)
        except ConnectionClosed:
            pass
        finally:
            conn.closed = True
            self._fail_pending(conn, bad)
            if bad is None and not self._closed:
                log.warning("connection to TrueNAS at %s dropped", self.host)
        if bad is not None:
            with contextlib.suppress(Exception):
                await conn.ws.close(1003, "not JSON-RPC")

    def _dispatch(self, conn: Connection, msg: dict[str, Any]) -> None:
        if "result" in msg or "error" in msg:
            ident = msg.get("id")
            future = conn.pending.pop(ident, None) if isinstance(ident, int) else None
            if future is not None and not future.done():
                if "error" in msg:
                    future.set_exception(RpcErrorReply(msg["error"]))
                else:
                    future.set_result(msg.get("result"))
        elif msg.get("method") == "collection_update":
            self._on_event(msg.get("params"))
        elif msg.get("method") == "notify_unsubscribed":
            log.warning("TrueNAS ended a subscription: %s", msg.get("params"))

    def _fail_pending(self, conn: Connection, bad: str | None = None) -> None:
        """Fail the calls waiting on ``conn``: dropped, or broken by the frame ``bad``."""
        pending, conn.pending = conn.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(Dropped(sent=True) if bad is None else BadFrame(bad))

    async def _request(self, conn: Connection, method: str, params: list[Any],
                       timeout_s: float | None = None) -> Any:  # fmt: skip
        ident = next(self._ids)
        text = json.dumps({"jsonrpc": "2.0", "id": ident, "method": method,
                           "params": encode(params)})  # fmt: skip
        limit = MAX_MESSAGE if conn.authenticated else ANON_MAX_MESSAGE
        if len(text.encode()) > limit:
            raise ServerError(
                f"the {method} request is {len(text.encode())} bytes; TrueNAS accepts at most "
                f"{limit} bytes per message and would close the connection.",
                hint="Send less data per call (e.g. split the change).",
            )
        if conn.closed:
            raise Dropped(sent=False)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.pending[ident] = future
        try:
            await conn.ws.send(text)
        except ConnectionClosed:
            conn.pending.pop(ident, None)
            raise Dropped(sent=False) from None
        log.debug("-> %s (id %s)", method, ident)
        try:
            async with asyncio.timeout(timeout_s or self._call_timeout):
                result = await future
        except RpcErrorReply as exc:
            raise map_error(method, exc.error, release=self.release) from None
        finally:
            conn.pending.pop(ident, None)
        return decode(result)

    async def _send(self, conn: Connection, method: str, params: list[Any],
                    timeout_s: float | None) -> Any:  # fmt: skip
        """One call on ``conn``; if the session's login ended, log in again and resend once.

        Resending is safe for writes too: middlewared checks a session's login before it
        runs a method, so a "not authenticated" answer means the method did not run. A
        second such answer right after a fresh login is reported, never retried again.
        """
        seen = conn.relogins
        try:
            async with self._slots:
                return await self._request(conn, method, params, timeout_s)
        except NotAuthenticated:
            log.debug("%s: session not authenticated", method)
        await self._log_in_again(conn, seen, method)
        try:
            async with self._slots:
                return await self._request(conn, method, params, timeout_s)
        except NotAuthenticated:
            raise self._still_refused(method) from None

    async def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """Call ``method``; reads survive a reconnect, writes never run twice."""
        read = is_read(method)
        bad_frames = 0
        for attempt in range(self._reconnect_attempts):
            conn = await self._ensure()
            try:
                return await self._send(conn, method, list(params), timeout_s)
            except Dropped as exc:
                bad_frames += isinstance(exc, BadFrame)
                retry = attempt + 1 < self._reconnect_attempts and bad_frames <= BAD_FRAME_RETRIES
                if (read or not exc.sent) and retry:
                    await asyncio.sleep(self._reconnect_delay)
                    continue
                raise self._lost(method, exc, ran=exc.sent and not read) from None
            except TimeoutError:
                raise self._unanswered(method, timeout_s or self._call_timeout, read=read) from None
        raise Unreachable(f"cannot reach TrueNAS at {self.host}.")

    def _lost(self, method: str, exc: Dropped, *, ran: bool) -> LabdeckError:
        """The error of a call whose connection went away; ``ran``: a write that was sent."""
        if isinstance(exc, BadFrame):
            what = (
                f"TrueNAS at {self.host} sent something that is not JSON-RPC ({exc.detail}) "
                f"while {method} was {'in flight' if ran else 'pending'}, so labdeck closed "
                "that connection"
            )
            if ran:
                return OutcomeUnknown(
                    f"{what}: {method} may or may not have been applied.",
                    method=method,
                    hint=f"Check the current state before retrying. {BAD_FRAME_HINT}",
                )
            return BadResponse(f"{what}.", hint=BAD_FRAME_HINT)
        if ran:
            return OutcomeUnknown(
                f"the connection to TrueNAS at {self.host} dropped while {method} was in "
                "flight: it may or may not have been applied.",
                method=method,
                hint="Check the current state before retrying.",
            )
        return Unreachable(
            f"lost the connection to TrueNAS at {self.host} (calling {method}).",
            hint="Check that TrueNAS is up and reachable; retry in a moment.",
        )

    def _unanswered(self, method: str, timeout_s: float, *, read: bool) -> LabdeckError:
        """The error of a call that got no answer within its timeout."""
        late = f"TrueNAS at {self.host} did not answer {method} in time ({timeout_s:g} s)"
        if read:
            return Unreachable(
                f"{late}.",
                hint="The system may be busy; retry later, or raise [truenas] timeout_s.",
            )
        return OutcomeUnknown(
            f"{late}: it may or may not have been applied.",
            method=method,
            hint="Check the current state before retrying.",
        )

    async def query(self, method: str, filters: list[Any] | None = None,
                    **options: Any) -> Any:  # fmt: skip
        """``X.query(filters, options)``: e.g. ``query("pool.query", [["name", "=", "tank"]])``."""
        return await self.call(method, filters or [], options)

    # ---- events --------------------------------------------------------------------------
    def _on_event(self, params: Any) -> None:
        if not isinstance(params, dict):
            return
        event = decode(params)
        collection = event.get("collection")
        if collection == "core.get_jobs" and isinstance(event.get("id"), int):
            job_id = event["id"]
            if isinstance(event.get("fields"), dict):
                self._jobs[job_id] = event["fields"]
            waiter = self._job_events.get(job_id)
            if waiter is not None:
                waiter.set()
        for sub in list(self._subs.values()):
            if sub.collection in (collection, "*") or (
                isinstance(collection, str) and sub.collection.startswith(collection + ":")
            ):
                self._run_callback(sub.callback, event)

    def _run_callback(self, callback: EventFn, event: dict[str, Any]) -> None:
        try:
            result = callback(event)
        except Exception:
            log.exception("TrueNAS event callback failed")
            return
        if inspect.isawaitable(result):

            async def run(awaitable: Awaitable[None]) -> None:
                try:
                    await awaitable
                except Exception:
                    log.exception("TrueNAS event callback failed")

            task = asyncio.create_task(run(result))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    async def subscribe(self, collection: str, callback: EventFn) -> str:
        """Receive ``collection_update`` events of ``collection``; renewed on (re)login."""
        handle = str(uuid.uuid4())
        sub = Subscription(collection, callback)
        conn = await self._ensure()
        self._subs[handle] = sub
        try:
            await self._subscribe_on(conn, sub)
        except Dropped:
            pass  # renewed by the reconnect that follows
        except BaseException:
            self._subs.pop(handle, None)
            raise
        return handle

    async def _subscribe_on(self, conn: Connection, sub: Subscription) -> None:
        seen = conn.relogins
        try:
            async with self._slots:
                sub.server_id = str(await self._request(conn, "core.subscribe", [sub.collection]))
        except NotAuthenticated:  # the re-login renews ``sub`` with the other subscriptions
            await self._log_in_again(conn, seen, "core.subscribe")

    async def unsubscribe(self, handle: str) -> None:
        sub = self._subs.pop(handle, None)
        if sub is None or sub.server_id is None:
            return
        with contextlib.suppress(Unreachable, OutcomeUnknown):
            await self.call("core.unsubscribe", sub.server_id)

    # ---- jobs ----------------------------------------------------------------------------
    async def _watch_jobs(self) -> None:
        if self._jobs_handle is None:
            self._jobs_handle = await self.subscribe("core.get_jobs", lambda event: None)

    async def run_job(self, method: str, *params: Any, progress: ProgressFn | None = None,
                      timeout_s: float = 600.0) -> Any:  # fmt: skip
        """Start a job method and wait for its end: its result, or :class:`JobFailed`."""
        await self._watch_jobs()
        job_id = await self.call(method, *params)
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise ServerError(f"TrueNAS answered {method} with {type(job_id).__name__}, "
                              "not a job id.")  # fmt: skip
        return await self.wait_job(job_id, progress=progress, timeout_s=timeout_s)

    async def wait_job(self, job_id: int, *, progress: ProgressFn | None = None,
                       timeout_s: float = 600.0, poll_s: float = 2.0) -> Any:  # fmt: skip
        """Follow a job by events, re-reading it from ``core.get_jobs`` now and then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiter = self._job_events.setdefault(job_id, asyncio.Event())
        seen: tuple[Any, Any] | None = None
        fresh = False
        try:
            while True:
                waiter.clear()
                fields = self._jobs.get(job_id)
                if fields is None or not fresh:
                    rows = await self.call("core.get_jobs", [["id", "=", job_id]])
                    if not rows:
                        raise NotFound(f"TrueNAS has no job {job_id} (or it is not ours).")
                    fields = rows[0]
                    self._jobs[job_id] = fields
                state = fields.get("state")
                bar = fields.get("progress") or {}
                if progress is not None and (bar.get("percent"), bar.get("description")) != seen:
                    seen = (bar.get("percent"), bar.get("description"))
                    outcome = progress(float(seen[0] or 0), str(seen[1] or state))
                    if inspect.isawaitable(outcome):
                        await outcome
                if state in FINAL_JOB_STATES:
                    if state == "SUCCESS":
                        return fields.get("result")
                    raise job_error(fields)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise JobTimeout(
                        f"TrueNAS job {job_id} ({fields.get('method')}) is still {state} after "
                        f"{timeout_s:.0f}s; stopped waiting (it keeps running).",
                        job_id=job_id,
                        hint="Check it later with core.get_jobs.",
                    )
                try:
                    async with asyncio.timeout(min(poll_s, remaining)):
                        await waiter.wait()
                    fresh = True
                except TimeoutError:
                    fresh = False
        finally:
            self._job_events.pop(job_id, None)
            self._jobs.pop(job_id, None)
