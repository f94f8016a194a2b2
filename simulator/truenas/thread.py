"""Run a TrueNAS simulator on its own event loop in a daemon thread (tests, sync callers)."""

from __future__ import annotations

from typing import Any

from simulator.loop_thread import LoopThread, run_in_thread
from simulator.truenas.server import TrueNasSimulator
from simulator.truenas.state import TrueNasState


class TrueNasHandle(LoopThread[TrueNasSimulator]):
    """A running simulator. Attributes are safe to read; change state through ``call``."""

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


def start_truenas_in_thread(**kwargs: Any) -> TrueNasHandle:
    """``TrueNasSimulator(**kwargs)`` on a fresh loop in a daemon thread; returns once listening."""
    simulator = TrueNasSimulator(**kwargs)
    loop, thread = run_in_thread(
        simulator, name="labdeck-truenas-sim", what="the TrueNAS simulator"
    )
    return TrueNasHandle(simulator, loop, thread)
