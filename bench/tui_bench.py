"""Dashboard refresh-to-paint and memory, driven by Textual's pilot against `labdeck sim`.

Each cluster size runs in its own process (``python -m bench.tui_bench --child``) so the
resident memory reported is that size's alone. One refresh is what ``LabdeckApp._refresh``
does (``fetch_snapshot`` + ``_show_snapshot``) followed by the paint. The simulator's
metrics drift with time, so every refresh brings new CPU, memory and uptime values.

The paint is timed as a person sees it (``FrameClock``): the app runs on its own, and the
paint ends with the last frame the screen's compositor renders for the change, encoded
for a terminal as Textual's driver would write it (headless Textual skips that step, so
the clock does it). A few more refreshes are timed the earlier way, up to the end of
``pilot.pause()``'s wait (``_pilot_paint``), which visits every widget of the screen and
adds ~20 ms of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.core_bench import ROOT, ExternalSim, percentile

TERMINAL = (160, 50)
FIRST_LOAD_TIMEOUT_S = 120.0


def _rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _pilot_paint(pilot: Any) -> None:
    """What ``pilot.pause()`` does minus its wait for an idle CPU (a 20 ms window at best):
    handle the messages the update posted (DataTable sizes itself on idle), then run the
    screen's update: layout and the compositor rendering the changed regions."""
    await pilot._wait_for_screen()
    await asyncio.sleep(0)
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


class FrameClock:
    """When each frame of the app was done: rendered by the screen's compositor (on its
    own timer, at most 60 a second) and encoded for a terminal.

    Headless Textual returns from ``App._display`` before encoding; the clock encodes the
    update as the terminal driver would (``render_segments``) and throws the text away.
    """

    def __init__(self, app: Any) -> None:
        self.frames: list[float] = []
        display, console = app._display, app.console

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(console)
                self.frames.append(time.perf_counter())

        app._display = timed_display

    def frames_since(self, started: float) -> list[float]:
        return [t for t in self.frames if t >= started]


def _settled(app: Any, table: Any, *others: Any) -> bool:
    """Nothing left to do for the screen: no message waiting in the app, the screen, the
    table or ``others`` (a widget the change went through), no idle-time sizing of the
    table pending, nothing marked for layout or repaint, no widget waiting to be
    composited."""
    screen = app.screen
    pumps = (app, screen, table, *others)
    return (
        all(p._message_queue.empty() and not p._next_callbacks for p in pumps)
        and not table._require_update_dimensions
        and not any(w._repaint_required or w._layout_required for w in (table, screen))
        and not (screen._scroll_required or screen._dirty_widgets)
    )


SETTLE_TIMEOUT_S = 10.0
#: refreshes timed the earlier way (up to the end of the pilot's wait), for comparison
PILOT_REFRESHES = 3
#: after a paint is judged done, how long the clock watches for a late frame of it
LATE_FRAME_WATCH_S = 0.1


async def _frame_paint(
    clock: FrameClock, app: Any, table: Any, since: float, *others: Any
) -> tuple[float, int]:
    """Let the app run until its screen has painted what changed after ``since`` and has
    nothing left to do, then watch ``LATE_FRAME_WATCH_S`` more: the time the last frame
    was done, and how many frames came while watching (a layout that Textual asks for
    during a layout, such as a scroll bar coming or going, is painted a frame later than
    the screen looks settled). A watch that saw frames is followed by another."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    first_end: float | None = None
    while True:
        while not (clock.frames_since(since) and _settled(app, table, *others)):
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not settle after an update")
            await asyncio.sleep(0.001)
        end = clock.frames_since(since)[-1]
        first_end = end if first_end is None else first_end
        await asyncio.sleep(LATE_FRAME_WATCH_S)
        if clock.frames[-1] == end:  # no frame while watching
            return end, sum(1 for t in clock.frames if first_end < t <= end)
        since = end


async def _measure(facts: dict[str, Any], refreshes: int, pause_s: float) -> dict[str, Any]:
    from core.service import Labdeck
    from labdeck.demo import demo_profile
    from simulator import DemoToken
    from tui.app import LabdeckApp
    from tui.data import fetch_snapshot

    handle = SimpleNamespace(
        host=facts["host"], port=facts["port"], ca_path=facts["ca_path"],
        token=DemoToken(**facts["token"]), readonly_token=DemoToken(**facts["token"]),
        truenas_url=None, truenas_api_key=None,
    )  # fmt: skip
    rss_before = _rss_mib()
    app = LabdeckApp(
        Labdeck(demo_profile(handle, allow_writes=False), face="tui"),
        refresh_interval=3600,
        freeze_when_painted=True,  # as run_dashboard (`labdeck`, `labdeck demo`) starts it
    )
    clock = FrameClock(app)
    fetch, show, paint, total, updated, requests = [], [], [], [], [], []
    pilot_paint, pilot_total = [], []
    async with app.run_test(size=TERMINAL) as pilot:
        deadline = time.monotonic() + FIRST_LOAD_TIMEOUT_S
        while app.snapshot is None:  # the refresh started on mount
            if app.error is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not load: {app.error}")
            await asyncio.sleep(0.05)
        await pilot.pause()
        assert app.dashboard is not None
        table = app.dashboard.guest_table
        first_rows = table.row_count

        late = {"refreshes": 0, "filter": 0}

        async def painted_after(since: float, what: str, *others: Any) -> float:
            end, late_here = await _frame_paint(clock, app, table, since, *others)
            late[what] += late_here
            return end

        for turn in range(refreshes + PILOT_REFRESHES):
            await asyncio.sleep(pause_s)  # simulated time passes: metrics and uptimes move
            app.service.pve.invalidate()  # what the refresh timer finds after the 2 s TTL
            cells_before = table.sync_stats["updated"]
            requests_before = app.service.pve.requests_sent
            started = time.perf_counter()
            snapshot = await fetch_snapshot(app.service, app.snapshot, **app.refresh_plan())
            fetched = time.perf_counter()
            requests.append(app.service.pve.requests_sent - requests_before)
            app.snapshot = snapshot
            app._show_snapshot(snapshot)
            shown = time.perf_counter()
            if turn >= refreshes:  # the earlier measure, for comparison
                await _pilot_paint(pilot)
                painted = time.perf_counter()
                pilot_paint.append(painted - shown)
                pilot_total.append(painted - started)
                continue
            painted = await painted_after(shown, "refreshes")
            fetch.append(fetched - started)
            show.append(shown - fetched)
            paint.append(painted - shown)
            total.append(painted - started)
            updated.append(table.sync_stats["updated"] - cells_before)
        rows = table.row_count
        # a filter typed in the guest filter (the whole word at once), then cleared
        field = app.dashboard.query_one("#guest-filter")
        since = time.perf_counter()
        field.value = "web"
        filtered = await painted_after(since, "filter", field) - since
        shown_rows = table.row_count
        since = time.perf_counter()
        field.value = ""
        unfiltered = await painted_after(since, "filter", field) - since

    def ms(values: list[float]) -> dict[str, float]:
        return {"median_ms": round(1000 * statistics.median(values), 1),
                "p95_ms": round(1000 * percentile(values, 95), 1)}  # fmt: skip

    return {
        "rows": rows,
        "first_load_rows": first_rows,
        "refreshes": refreshes,
        "refresh_to_paint": ms(total),
        "fetch": ms(fetch),
        "table_update": ms(show),
        "paint": ms(paint),
        "late_frames": late,
        "pilot_wait": {
            "refreshes": PILOT_REFRESHES,
            "refresh_to_paint": ms(pilot_total),
            "paint": ms(pilot_paint),
        },
        "ui_update_and_paint": ms([s + p for s, p in zip(show, paint, strict=True)]),
        "cells_redrawn_per_refresh": round(statistics.median(updated)),  # rows on screen
        "api_requests_per_refresh": max(requests),
        "filter_web_ms": round(1000 * filtered, 1),
        "filter_web_rows": shown_rows,
        "clear_filter_ms": round(1000 * unfiltered, 1),
        "rss_before_app_mib": rss_before,
        "rss_mib": _rss_mib(),
        "peak_rss_mib": _rss_mib("VmHWM"),
    }


def bench_dashboard(sim: ExternalSim, guests: int, refreshes: int,
                    pause_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Run the dashboard for one cluster size in a fresh process; returns its figures."""
    facts = {
        "host": sim.host, "port": sim.port, "ca_path": sim.ca_path,
        "token": {"user": sim.readonly_token.user, "token_name": sim.readonly_token.token_name,
                  "secret": sim.readonly_token.secret},
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bench.tui_bench", "--refreshes", str(refreshes),
         "--pause", str(pause_s)],
        input=json.dumps(facts), capture_output=True, text=True, cwd=ROOT, timeout=600,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"dashboard bench failed for {guests} guests:\n{done.stderr[-2000:]}")
    return {"guests": guests, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> int:
    """Child: read the simulator facts on stdin (never argv: a secret), print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.tui_bench")
    parser.add_argument("--refreshes", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0)
    args = parser.parse_args()
    facts = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_measure(facts, args.refreshes, args.pause))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
