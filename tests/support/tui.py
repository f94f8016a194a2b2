"""What the dashboard tests share: a frozen clock, an app on a simulator, and waits.

Waits are bounded: ``until`` fails the test after ``within_s`` rather than hanging, and is
not a timing assertion (it only bounds how long a condition may take on a loaded machine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, TabbedContent, Tabs

from core.service import Labdeck
from tui.app import LabdeckApp

FROZEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
WIDE = (120, 40)
NARROW = (80, 24)


def dashboard_app(service: Labdeck, **kwargs: Any) -> LabdeckApp:
    """The dashboard on ``service``, with a frozen clock and no refresh during a test."""
    kwargs.setdefault("refresh_interval", 3600.0)
    kwargs.setdefault("clock", lambda: FROZEN)
    app = LabdeckApp(service, **kwargs)
    # No animations: a tab underline caught mid-slide made snapshots differ under load.
    app.animation_level = "none"
    return app


def dashboard(
    make_service: Callable[..., Labdeck], sim: object, *, allow_writes: bool = False
) -> LabdeckApp:
    """The dashboard as a person starts it (face tui) on the simulator ``sim``."""
    return dashboard_app(make_service(sim, allow_writes=allow_writes, face="tui"))


async def settle(pilot: Pilot[None], rounds: int = 2) -> None:
    """Let every refresh/load/action worker finish and their results reach the screen."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def loaded(pilot: Pilot[None]) -> None:
    """Before a snapshot: under load a table's columns are sized a few message cycles after
    its rows arrive, so let workers, queued messages and animations settle three times."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
    # A tab's underline follows a relabel ("Guests" -> "Guests (28)") one refresh later,
    # which a loaded machine may not have reached: put it where a person sees it settle.
    for tabs in pilot.app.screen.query(Tabs):
        tabs._highlight_active(animate=False)
    await pilot.pause(0.1)


#: a step's "done" test: true once what its keys started is on screen
Ready = Callable[[LabdeckApp], bool]


def shown(app: LabdeckApp) -> bool:
    """A step whose keys start nothing to wait for beyond ``loaded``."""
    return True


def viewing(view: str) -> Ready:
    """A step that switches the dashboard to tab ``view``."""
    return lambda app: app.screen.query_one("#views", TabbedContent).active == view


def showing(screen: type[Screen[Any]]) -> Ready:
    """A step that opens a ``screen`` (a modal, the help) over the dashboard."""
    return lambda app: isinstance(app.screen, screen)


def pressing(
    *steps: tuple[str | list[str], Ready],
    first: Callable[[Pilot[None]], Awaitable[None]] | None = None,
) -> Callable[[Pilot[None]], Awaitable[None]]:
    """A snapshot's ``run_before``: ``first`` (default ``loaded``), then each step's keys,
    each followed by a wait until its ``ready`` holds and the screen has settled.

    ``snap_compare``'s own ``press`` comes after ``run_before`` and is followed by two
    pauses only: a view a key opens may still be loading its rows (a worker) when the
    screenshot is taken (CI caught the Activity view half loaded), and a key pressed before
    rows arrived would land elsewhere. A focused Input's cursor stops blinking (a timer:
    screenshots would differ).
    """

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, LabdeckApp)
        await (first or loaded)(pilot)
        for keys, ready in steps:
            await pilot.press(*([keys] if isinstance(keys, str) else keys))
            await until(pilot, lambda: ready(app))
            await loaded(pilot)
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


async def until(pilot: Pilot[Any], condition: Callable[[], bool], within_s: float = 15.0) -> None:
    """Pause until ``condition()`` holds; a TimeoutError (a failed test) after ``within_s``."""
    async with asyncio.timeout(within_s):
        while not condition():
            await pilot.pause(0.02)
