"""Run the simulator: in a running event loop, or in a thread for sync code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os

from simulator.auth import Authenticator, demo_grants, demo_users
from simulator.config import DemoLogin, DemoToken, SimulatorConfig, demo_logins, demo_tokens
from simulator.faults import FaultInjector, FaultyPveApi
from simulator.guest_sheet import refresh_if_watched
from simulator.http import HttpServer
from simulator.loop_thread import LoopThread, run_in_thread
from simulator.pve_api import PveApi
from simulator.routing import ServerFacts
from simulator.state import ClusterState
from simulator.tls import TlsMaterial, make_tls
from simulator.truenas import TrueNasSimulator

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # how often running tasks are checked for completion (real time)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


#: requests remembered for tests (the oldest half is dropped past this)
REQUEST_LOG_MAX = 100_000


class Simulator:
    """A Proxmox VE API on loopback HTTPS. ``await start()``, then use its attributes."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.token, self.readonly_token = demo_tokens(self.config.seed)
        self.login, self.readonly_login = demo_logins(self.config.seed)
        self.state = ClusterState(
            cluster_name=self.config.cluster_name,
            node_count=self.config.nodes,
            guest_count=self.config.guests,
            pool_count=self.config.pools,
            seed=self.config.seed,
            speed=self.config.speed,
            dynamic=self.config.dynamic,
        )
        self.request_log: list[tuple[str, str]] = []
        #: fault injection rules (simulator.faults); thread-safe, also ``handle.faults``
        self.faults = FaultInjector(self.config.seed, self.config.faults)
        self.host = self.config.host
        self.port = self.config.port
        self._tls: TlsMaterial | None = None
        self._http: HttpServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._status_daemon: asyncio.Task[None] | None = None
        self.truenas: TrueNasSimulator | None = None

    # Facts available once started.
    @property
    def pve_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.port}"

    @property
    def ca_path(self) -> str:
        return self._started_tls().ca_path

    @property
    def cert_fingerprint(self) -> str:
        return self._started_tls().cert_fingerprint

    @property
    def ca_fingerprint(self) -> str:
        return self._started_tls().ca_fingerprint

    @property
    def truenas_url(self) -> str | None:
        """``wss://host:port/api/current``, or None when TrueNAS is off."""
        return self.truenas.url if self.truenas else None

    @property
    def truenas_api_key(self) -> str | None:
        return self.truenas.api_key if self.truenas else None

    @property
    def truenas_readonly_api_key(self) -> str | None:
        return self.truenas.readonly_api_key if self.truenas else None

    def _started_tls(self) -> TlsMaterial:
        if self._tls is None:
            raise RuntimeError("the simulator is not started")
        return self._tls

    def clear_request_log(self) -> None:
        self.request_log.clear()

    def _record(self, method: str, path: str) -> None:
        self.request_log.append((method, path))
        if len(self.request_log) > REQUEST_LOG_MAX:  # a long-running demo must not grow
            del self.request_log[: REQUEST_LOG_MAX // 2]

    async def start(self) -> None:
        if self._http is not None:
            return
        self._tls = make_tls(self.host)
        authenticator = Authenticator(
            demo_grants(self.token, self.readonly_token),
            demo_users(self.login, self.readonly_login),
            clock=self.state.now,
            key=os.urandom(32),
        )
        api = PveApi(
            self.state,
            authenticator,
            facts=ServerFacts(self._tls.cert_fingerprint, authenticator.principal_for),
            auth_fail_delay=self.config.auth_fail_delay,
        )
        # every request is recorded, also those a fault answers before the API sees them
        front = FaultyPveApi(api, self.faults, self._record, self._change_certificate)
        self._http = HttpServer(front.handle, self.host, self.port, self._tls.ssl_context)
        try:
            await self._http.start()
        except BaseException:
            self._tls.cleanup()
            self._http = None
            raise
        self.port = self._http.port
        if self.config.truenas:
            self.truenas = TrueNasSimulator(
                self.host,
                seed=self.config.seed,
                version=self.config.truenas_version,
                speed=self.config.speed,
                tls=self._tls,
                rate_limit=self.config.truenas_rate_limit,
            )
            self.truenas.faults = self.faults
            self.truenas.on_cert_change = self._change_certificate
            await self.truenas.start()
        self._ticker = asyncio.create_task(self._tick())
        if self.state.dynamic and self.state.clock.speed <= 1:
            self._status_daemon = asyncio.create_task(self._update_status())

    def _change_certificate(self) -> None:
        """Fault ``cert-change``: a new certificate from a new CA, as after a reinstall;
        every open connection drops (as pveproxy restarts) so clients must handshake anew."""
        self._started_tls().rotate()
        if self._http is not None:
            self._http.drop_connections()
        if self.truenas is not None:
            self.truenas.drop_connections()

    async def _tick(self) -> None:
        # Tasks also finish on every request; the ticker makes state changes visible
        # to code that reads ``state`` directly between requests.
        while True:
            self.state.advance()
            await asyncio.sleep(TICK_SECONDS)

    async def _update_status(self) -> None:
        """What each node's pvestatd does: the guests' metrics brought up to date as each
        metric second begins, while a client reads them (``refresh_if_watched``). Only
        when metrics move and a metric second lasts a real second or more (``speed`` 1 or
        less): faster, the work would outrun its use."""
        while True:
            clock = self.state.clock  # read anew: tests may swap it
            now = clock.now()
            await asyncio.sleep((math.floor(now) + 1 - now) / clock.speed + 0.001)
            try:
                refresh_if_watched(self.state)
            except Exception:  # said, and tried again next second: requests still work
                log.exception("updating the guests' metrics failed")

    async def stop(self) -> None:
        for task in (self._ticker, self._status_daemon):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._status_daemon = None
        if self.truenas is not None:
            await self.truenas.stop()
            self.truenas = None
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self._tls is not None:
            self._tls.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SimulatorHandle(LoopThread[Simulator]):
    """A simulator running on its own event loop in a daemon thread."""

    @property
    def pve_url(self) -> str:
        return self.simulator.pve_url

    @property
    def host(self) -> str:
        return self.simulator.host

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def ca_path(self) -> str:
        return self.simulator.ca_path

    @property
    def cert_fingerprint(self) -> str:
        return self.simulator.cert_fingerprint

    @property
    def ca_fingerprint(self) -> str:
        return self.simulator.ca_fingerprint

    @property
    def token(self) -> DemoToken:
        return self.simulator.token

    @property
    def readonly_token(self) -> DemoToken:
        return self.simulator.readonly_token

    @property
    def truenas_url(self) -> str | None:
        return self.simulator.truenas_url

    @property
    def truenas_api_key(self) -> str | None:
        return self.simulator.truenas_api_key

    @property
    def truenas_readonly_api_key(self) -> str | None:
        return self.simulator.truenas_readonly_api_key

    @property
    def login(self) -> DemoLogin:
        """User + password of the full-privilege demo user (ticket login)."""
        return self.simulator.login

    @property
    def readonly_login(self) -> DemoLogin:
        return self.simulator.readonly_login

    @property
    def state(self) -> ClusterState:
        return self.simulator.state

    @property
    def request_log(self) -> list[tuple[str, str]]:
        return self.simulator.request_log

    @property
    def faults(self) -> FaultInjector:
        """Add and clear fault rules from any thread: ``handle.faults.add("503", ...)``."""
        return self.simulator.faults

    def clear_request_log(self) -> None:
        self.call(self.simulator.clear_request_log)


def start_in_thread(config: SimulatorConfig | None = None) -> SimulatorHandle:
    """Start a simulator on a fresh event loop in a daemon thread; returns once it listens."""
    simulator = Simulator(config)
    loop, thread = run_in_thread(simulator, name="labdeck-simulator", what="the simulator")
    return SimulatorHandle(simulator, loop, thread)
