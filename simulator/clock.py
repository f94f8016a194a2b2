"""Simulated time: a fixed epoch that runs ``speed`` times faster than real time."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Seconds since the Unix epoch, in simulated time.

    The clock starts at ``base_epoch`` (derived from the seed, never from the wall
    clock, so seeded data is reproducible) and advances with the monotonic clock
    multiplied by ``speed``. ``advance`` jumps ahead, for tests.
    """

    def __init__(
        self,
        base_epoch: int,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._base = base_epoch
        self._speed = speed
        self._monotonic = monotonic
        self._started = monotonic()
        self._skip = 0.0

    @property
    def base_epoch(self) -> int:
        return self._base

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._base + (self._monotonic() - self._started) * self._speed + self._skip

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds`` simulated seconds."""
        if seconds < 0:
            raise ValueError("simulated time never runs backwards")
        self._skip += seconds
