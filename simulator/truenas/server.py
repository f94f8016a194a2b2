"""The TrueNAS JSON-RPC 2.0 server over WebSocket (``wss://HOST:PORT/api/current``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import inspect
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from simulator.clock import SimClock
from simulator.faults import (
    DEFAULT_SLOW_S,
    MALFORMED_FRAME,
    FaultInjector,
    FaultRule,
    failing_finish,
    hold,
    rpc_error,
)
from simulator.tls import TlsMaterial, make_tls
from simulator.truenas import (  # noqa: F401  (importing them registers their methods)
    methods_compute,
    methods_core,
    methods_sharing,
    methods_storage,
)
from simulator.truenas.catalog import Ctx, MethodSpec, Session, allowed, served
from simulator.truenas.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    TOO_MANY_CONCURRENT,
    RpcError,
    call_error,
    not_authenticated,
    not_authorized,
    plain,
)
from simulator.truenas.jobs import JobManager, JobPlan
from simulator.truenas.methods_core import event_keys
from simulator.truenas.state import API_VERSIONS, RELEASES, TrueNasState

log = logging.getLogger("labdeck.sim.truenas")
ANON_MAX = 8 * 1024
AUTH_MAX = 64 * 1024
RUNNING_LIMIT = 10
HARD_LIMIT = 20
TICK_S = 0.05


def ejson(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": int(value.timestamp() * 1000)}
    if isinstance(value, date):
        return {"$type": "date", "$value": value.isoformat()}
    if isinstance(value, set | frozenset):
        return {"$set": sorted(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=ejson)


#: calls remembered for tests (the oldest half is dropped past this)
METHOD_LOG_MAX = 100_000


class _Conn:
    def __init__(self, ws: ServerConnection, endpoint_release: str) -> None:
        self.ws = ws
        self.endpoint_release = endpoint_release
        peer = ws.remote_address
        self.session = Session(peer=str(peer[0]) if peer else "?")
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.running = asyncio.Semaphore(RUNNING_LIMIT)
        self.in_flight = 0
        self.active = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sources: dict[str, asyncio.Task[None]] = {}


def normalise_release(version: str) -> str:
    release = {"26.0": "26", "26.04": "26"}.get(version, version)
    if release not in RELEASES:
        raise ValueError(f"unknown TrueNAS release {version!r}; use one of {', '.join(RELEASES)}")
    return release


class TrueNasSimulator:
    """A TrueNAS middleware on loopback. ``await start()``, then use ``url`` and the keys."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 7,
                 version: str = "25.10", speed: float = 1.0, tls: TlsMaterial | None = None, *,
                 plain_ws: bool = False, auth_fail_delay: float = 0.0,
                 rate_limit: int = 20, rate_limit_delay: tuple[float, float] = (1.0, 10.0),
                 call_latency_s: float = 0.0) -> None:  # fmt: skip
        self.host, self.port = host, port
        self.release = normalise_release(version)
        self.state = TrueNasState(self.release, seed)
        self.clock = SimClock(int(self.state.now0.timestamp()), speed)
        self.jobs = JobManager(self.state, self.clock)
        self.plain_ws = plain_ws
        self.auth_fail_delay = auth_fail_delay
        self.rate_limit, self.rate_limit_delay = rate_limit, rate_limit_delay
        self.call_latency_s = call_latency_s
        self.method_log: list[str] = []
        self.peak_running = 0
        self._tls = tls
        self._own_tls = tls is None and not plain_ws
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._conns: set[_Conn] = set()
        self._hits: dict[tuple[str, str], collections.deque[float]] = {}
        self.state.listeners.append(self._on_change)
        #: fault injection (simulator.faults); the PVE simulator shares its own
        self.faults: FaultInjector | None = None
        self.on_cert_change: Callable[[], None] = self._change_certificate

    # ---- facts ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'ws' if self.plain_ws else 'wss'}://{host}:{self.port}/api/current"

    @property
    def ca_path(self) -> str | None:
        return self._tls.ca_path if self._tls else None

    @property
    def cert_fingerprint(self) -> str | None:
        return self._tls.cert_fingerprint if self._tls else None

    @property
    def api_key(self) -> str:
        return self.state.api_keys[1].raw

    @property
    def readonly_api_key(self) -> str:
        return self.state.api_keys[2].raw

    def endpoints(self) -> dict[str, str]:
        """URL path -> the release whose API it speaks."""
        paths = {"/api/current": self.release}
        for release in RELEASES[: RELEASES.index(self.release) + 1]:
            for version in API_VERSIONS[release]:
                paths[f"/api/{version}"] = release
        return paths

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None:
            return
        if self._own_tls:
            self._tls = make_tls(self.host)
        ssl_context = None if self.plain_ws or self._tls is None else self._tls.ssl_context
        self._server = await serve(self._handle, self.host, self.port, ssl=ssl_context,
                                   process_request=self._process_request,
                                   max_size=2 * 1024 * 1024 + 1024, ping_interval=None,
                                   compression=None)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._own_tls and self._tls is not None:
            self._tls.cleanup()

    async def _tick(self) -> None:
        while True:
            self.jobs.tick()
            await asyncio.sleep(TICK_S)

    def _change_certificate(self) -> None:
        """Fault ``cert-change``: serve a certificate from a new CA; drop every connection."""
        if self._tls is not None:
            self._tls.rotate()
        self.drop_connections()

    def drop_connections(self) -> int:
        """Test hook: cut every client connection without a closing handshake."""
        dropped = 0
        for conn in list(self._conns):
            conn.ws.transport.abort()
            dropped += 1
        return dropped

    def deauthenticate_sessions(self, *, forget_subscriptions: bool = False,
                                username: str | None = None) -> int:  # fmt: skip
        """Test hook: end the login of connected sessions (all, or ``username``'s); the
        sockets stay open. Returns how many sessions were logged in.

        As middlewared's session manager does when a session's credentials stop being
        valid (its next message logs the app out): calls then answer ENOTAUTHENTICATED
        until the client logs in again, and the session keeps its subscriptions.
        ``forget_subscriptions`` models a middleware restarted behind a proxy that kept the
        client's socket: the new middleware knows neither the login nor the subscriptions.
        """
        ended = 0
        for conn in list(self._conns):
            session = conn.session
            if username is not None and session.username != username:
                continue
            if session.authenticated:
                ended += 1
            session.username, session.roles = None, frozenset()
            if forget_subscriptions:
                session.subscriptions.clear()
        return ended

    def revoke_api_key(self, key_id: int) -> int:
        """Test hook: revoke an API key. Logins with it fail from now on and the sessions
        of its user lose their login (as a key revoked in the UI). Returns how many."""
        key = self.state.api_keys[key_id]
        key.revoked = True
        return self.deauthenticate_sessions(username=key.username)

    # ---- connections ---------------------------------------------------------------------
    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?")[0]
        if path == "/api/versions":
            body = json.dumps([p.removeprefix("/api/") for p in self.endpoints()
                               if p != "/api/current"])  # fmt: skip
            response = ws.respond(http.HTTPStatus.OK, body)
            response.headers["Content-Type"] = "application/json"
            return response
        if path not in self.endpoints():
            return ws.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Conn(ws, self.endpoints()[ws.request.path.split("?")[0] if ws.request else ""])
        self._conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(1003, "Binary frames are not supported")
                    break
                size = len(message.encode())
                if not conn.session.authenticated and size > ANON_MAX:
                    await ws.close(1007, "Anonymous connection max message length is 8 kB")
                    break
                if size > AUTH_MAX:
                    await ws.close(1009, "Max message length is 64 kB")
                    break
                self._dispatch(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            for task in [*conn.tasks, *conn.sources.values(), writer]:
                task.cancel()

    async def _writer(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.ws.send(await conn.outbox.get())

    def _send(self, conn: _Conn, payload: dict[str, Any]) -> None:
        conn.outbox.put_nowait(dumps({"jsonrpc": "2.0", **payload}))

    def _dispatch(self, conn: _Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._send(conn, {"id": None, "error": plain(PARSE_ERROR, "Parse error").to_json()})
            return
        if isinstance(msg, list):
            error = plain(PARSE_ERROR, "Batch messages are not supported at this time")
            self._send(conn, {"id": None, "error": error.to_json()})
            return
        ident = msg.get("id") if isinstance(msg, dict) else None
        id_ok = ident is None or (isinstance(ident, int | str) and not isinstance(ident, bool))
        if (not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not id_ok
                or not isinstance(msg.get("method"), str)
                or not isinstance(msg.get("params", []), list)):  # fmt: skip
            error = plain(INVALID_REQUEST, "Invalid Request")
            self._send(conn, {"id": ident if id_ok else None, "error": error.to_json()})
            return
        notify = "id" not in msg
        if conn.in_flight >= HARD_LIMIT:
            if not notify:
                error = plain(
                    TOO_MANY_CONCURRENT,
                    f"Maximum number of concurrent calls ({HARD_LIMIT}) has exceeded",
                )
                self._send(conn, {"id": ident, "error": error.to_json()})
            return
        conn.in_flight += 1
        task = asyncio.create_task(self._run(conn, msg, notify))
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _run(self, conn: _Conn, msg: dict[str, Any], notify: bool) -> None:
        fault = self.faults.pick_rpc(msg["method"]) if self.faults is not None else None
        try:
            async with conn.running:
                conn.active += 1
                self.peak_running = max(self.peak_running, conn.active)
                try:
                    reply = await self._answer(conn, msg, fault)
                finally:
                    conn.active -= 1
        finally:
            conn.in_flight -= 1
        if fault is not None and fault.kind == "ws-drop":
            if fault.after and reply is not None:  # the answer leaves first, then the line drops
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(dumps({"jsonrpc": "2.0", "id": msg.get("id"), **reply}))
                await asyncio.sleep(TICK_S)
            conn.ws.transport.abort()
        elif fault is not None and fault.kind == "malformed":
            conn.outbox.put_nowait(MALFORMED_FRAME)
        elif not notify and reply is not None:
            self._send(conn, {"id": msg.get("id"), **reply})

    async def _answer(self, conn: _Conn, msg: dict[str, Any],
                      fault: FaultRule | None) -> dict[str, Any] | None:  # fmt: skip
        """The reply to one call (None: a fault leaves it unanswered)."""
        self.method_log.append(msg["method"])  # also the calls a fault answers
        if len(self.method_log) > METHOD_LOG_MAX:  # a long-running demo must not grow
            del self.method_log[: METHOD_LOG_MAX // 2]
        if fault is not None:
            error = rpc_error(fault)
            if error is not None:
                return {"error": error.to_json()}
            if fault.kind == "timeout":
                await hold(fault)
                return None
            if fault.kind == "cert-change":
                self.on_cert_change()
                return None
            if fault.kind == "slow":
                await asyncio.sleep(fault.hold_s(DEFAULT_SLOW_S))
        try:
            return {"result": await self._call(conn, msg, fault)}
        except RpcError as exc:
            return {"error": exc.to_json()}
        except Exception as exc:  # a simulator bug: report it like middlewared would
            log.exception("TrueNAS simulator: %s failed", msg["method"])
            return {"error": call_error(14, f"{type(exc).__name__}: {exc}").to_json()}

    def _rate_limited(self, conn: _Conn, name: str) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault((name, conn.session.peer), collections.deque())
        while hits and now - hits[0] > 60:
            hits.popleft()
        hits.append(now)
        return len(hits) > self.rate_limit

    async def _call(self, conn: _Conn, msg: dict[str, Any], fault: FaultRule | None = None) -> Any:
        name, params = msg["method"], msg.get("params", [])
        spec: MethodSpec | None = served(self.release).get(name)
        if spec is None:
            raise plain(-32601, "Method does not exist")
        endpoint = conn.endpoint_release
        if endpoint not in spec.releases and endpoint not in spec.private_in:
            service = name.rpartition(".")[0]
            raise call_error(201, f"Method {name.rpartition('.')[2]!r} not found in {service!r}")
        if self.release in spec.private_in:
            log.warning("private method %s called over the API", name)
        session = conn.session
        auth = "session" if name == "core.ping" and self.release == "25.04" else spec.auth
        if auth == "none" and not session.authenticated and name != "core.set_options":
            if self._rate_limited(conn, name):
                low, high = self.rate_limit_delay
                await asyncio.sleep(random.uniform(low, high))
                raise call_error(16, "Rate Limit Exceeded")
        if auth != "none" and not session.authenticated:
            raise not_authenticated()
        if not allowed(spec, session):
            raise not_authorized()
        if len(params) > spec.max_args:
            raise RpcError(INVALID_PARAMS, "Too many arguments",
                           {"error": 22, "errname": "EINVAL", "reason": "Too many arguments",
                            "trace": None, "extra": []})  # fmt: skip
        if self.call_latency_s:
            await asyncio.sleep(self.call_latency_s)
        ctx = Ctx(self.state, self.jobs, session, name, msg.get("id"), self.auth_fail_delay)
        result = spec.handler(ctx, list(params))
        if inspect.isawaitable(result):
            result = await result
        if name == "core.subscribe":
            self._start_source(conn, result, session.subscriptions[result])
        if fault is not None and fault.kind == "task-fail" and self.faults is not None:
            if spec.job:
                result = replace(result, finish=failing_finish(fault))
            else:
                self.faults.unfire(fault)  # not a job method: nothing to fail
        if not spec.job:
            return result
        assert isinstance(result, JobPlan)
        job = self.jobs.submit(name, list(params), session.username or "", result, msg.get("id"))
        if self.release == "25.04" or session.legacy_jobs:
            return job.id
        await self.jobs.wait(job)
        if job.state == "SUCCESS":
            return job.result
        info = job.exc_info or {}
        raise call_error(int(info.get("errno") or 14), job.error or "Job failed", info.get("extra"))

    # ---- events --------------------------------------------------------------------------
    def _start_source(self, conn: _Conn, ident: str, name: str) -> None:
        base, _, raw = name.partition(":")
        if base not in ("reporting.realtime", "app.stats"):
            return
        try:
            interval = float(json.loads(raw).get("interval", 2)) if raw else 2.0
        except (ValueError, AttributeError):
            interval = 2.0

        async def pump() -> None:
            rng = random.Random(ident)
            while ident in conn.session.subscriptions:
                if base == "app.stats":
                    fields: Any = [{"app_name": a, "cpu_usage": rng.randint(0, 40),
                                    "memory": rng.randint(100, 900) * 2**20, "networks": [],
                                    "blkio": {"read": 0, "write": 0}}
                                   for a, item in self.state.items["app"].items()
                                   if item["state"] == "RUNNING"]  # fmt: skip
                else:
                    fields = {"cpu": {"cpu": {"usage": rng.uniform(3, 40)}},
                              "memory": {"arc_size": 24 * 2**30,
                                         "physical_memory_total": 64 * 2**30,
                                         "physical_memory_available": 30 * 2**30},
                              "disks": {"busy": rng.uniform(0, 30)}, "interfaces": {},
                              "pools": {}}  # fmt: skip
                self._send(
                    conn,
                    {
                        "method": "collection_update",
                        "params": {"msg": "added", "collection": base, "fields": fields},
                    },
                )
                await asyncio.sleep(max(interval / self.clock.speed, 0.05))

        conn.sources[ident] = asyncio.create_task(pump())

    def _on_change(self, key: str, msg: str, ident: Any, item: dict[str, Any] | None) -> None:
        names = {k: n for n, k in event_keys(self.release).items()}
        name = names.get(key)
        if name is None:
            return
        params: dict[str, Any] = {"msg": msg, "collection": name, "id": ident}
        if item is not None:
            params["fields"] = self.state.render(key, item)
        for conn in list(self._conns):
            session = conn.session
            wanted = set(session.subscriptions.values())
            if not session.authenticated or not ({name, "*"} & wanted):
                continue
            if key == "job" and not session.full_admin and item is not None \
                    and item["credentials"]["data"]["username"] != session.username:  # fmt: skip
                continue
            self._send(conn, {"method": "collection_update", "params": params})
