"""Run a TrueNAS simulator on its own event loop in a daemon thread (tests, sync callers)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from simulator.truenas.server import TrueNasSimulator
from simulator.truenas.state import TrueNasState

T = TypeVar("T")
STARTUP_TIMEOUT_S = 30.0


class TrueNasHandle:
    """A running simulator. Attributes are safe to read; change state through ``call``."""

    def __init__(self, simulator: TrueNasSimulator, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread) -> None:  # fmt: skip
        self.simulator = simulator
        self._loop = loop
        self._thread = thread
        self._stopped = False

    @property
    def url(self) -> str:
        return self.simulator.url

    @property
    def ca_path(self) -> str | None:
        return self.simulator.ca_path

    @property
    def cert_fingerprint(self) -> str | None:
        return self.simulator.cert_fingerprint

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def release(self) -> str:
        return self.simulator.release

    @property
    def api_key(self) -> str:
        return self.simulator.api_key

    @property
    def readonly_api_key(self) -> str:
        return self.simulator.readonly_api_key

    @property
    def method_log(self) -> list[str]:
        return self.simulator.method_log

    @property
    def state(self) -> TrueNasState:
        return self.simulator.state

    @property
    def peak_running(self) -> int:
        return self.simulator.peak_running

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn()`` on the simulator's loop and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def drop_connections(self) -> int:
        return self.call(self.simulator.drop_connections)

    def deauthenticate_sessions(self, *, forget_subscriptions: bool = False) -> int:
        """End every session's login, sockets kept (see the simulator's method)."""
        return self.call(lambda: self.simulator.deauthenticate_sessions(
            forget_subscriptions=forget_subscriptions))  # fmt: skip

    def revoke_api_key(self, key_id: int) -> int:
        return self.call(lambda: self.simulator.revoke_api_key(key_id))

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (jobs finish sooner)."""
        self.call(lambda: self.simulator.clock.advance(seconds))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop)
            with contextlib.suppress(Exception):
                future.result(STARTUP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STARTUP_TIMEOUT_S)

    def __enter__(self) -> TrueNasHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()


def start_truenas_in_thread(**kwargs: Any) -> TrueNasHandle:
    """``TrueNasSimulator(**kwargs)`` on a fresh loop in a daemon thread; returns once listening."""
    simulator = TrueNasSimulator(**kwargs)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(simulator.start())
        except BaseException as exc:  # reported to the starting thread below
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="labdeck-truenas-sim", daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT_S):
        raise RuntimeError("the TrueNAS simulator did not start in time")
    if failure:
        raise failure[0]
    return TrueNasHandle(simulator, loop, thread)
