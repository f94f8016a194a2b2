"""A simulator on its own event loop in a daemon thread, for tests and synchronous callers.

Both simulators (Proxmox VE and TrueNAS) run this way: ``run_in_thread`` starts one and
returns once it listens; the handle runs functions on the simulator's loop (``call``) and
stops it. Each simulator's handle adds the attributes its callers read.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

T = TypeVar("T")
STARTUP_TIMEOUT_S = 30.0


class Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


class LoopThread(Generic[S]):
    """A running simulator. Attributes are safe to read; change state through ``call``."""

    def __init__(self, simulator: S, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread) -> None:  # fmt: skip
        self.simulator = simulator
        self._loop = loop
        self._thread = thread
        self._stopped = False

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn()`` on the simulator's loop (thread-safe) and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()


def run_in_thread(
    simulator: Server, *, name: str, what: str
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start ``simulator`` on a fresh event loop in a daemon thread called ``name``; returns
    the loop and the thread once it listens. ``what`` names it in the error if it does not
    start in time; an error starting it is raised here."""
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

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT_S):
        raise RuntimeError(f"{what} did not start in time")
    if failure:
        raise failure[0]
    return loop, thread
