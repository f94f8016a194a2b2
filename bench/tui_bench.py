"""Dashboard refresh-to-paint and memory, driven by Textual's pilot against `labdeck sim`.

Each cluster size runs in its own process (``python -m bench.tui_bench --child``) so the
resident memory reported is that size's alone. One refresh is what ``LabdeckApp._refresh``
does (``fetch_snapshot`` + ``_show_snapshot``) followed by the paint: the messages settle
and the screen's compositor renders what changed (see ``_paint``). The simulator's
metrics drift with time, so every refresh brings new CPU, memory and uptime values.
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


async def _paint(pilot: Any) -> None:
    """What ``pilot.pause()`` does minus its wait for an idle CPU (a 20 ms window at best):
    handle the messages the update posted (DataTable sizes itself on idle), then run the
    screen's update: layout and the compositor rendering the changed regions."""
    await pilot._wait_for_screen()
    await asyncio.sleep(0)
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


async def _timed_paint(pilot: Any, change: Any) -> float:
    """Seconds from ``change()`` to the changed table painted."""
    started = time.perf_counter()
    change()
    await _paint(pilot)
    return time.perf_counter() - started


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
    fetch, show, paint, total, updated, requests = [], [], [], [], [], []
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
        for _ in range(refreshes):
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
            await _paint(pilot)
            painted = time.perf_counter()
            fetch.append(fetched - started)
            show.append(shown - fetched)
            paint.append(painted - shown)
            total.append(painted - started)
            updated.append(table.sync_stats["updated"] - cells_before)
        rows = table.row_count
        # the same wait and compositor pass with nothing changed: the measuring's own cost
        # (the pilot waits on every widget of the screen), included in each paint above
        idle = [await _timed_paint(pilot, lambda: None) for _ in range(5)]
        filtered = await _timed_paint(pilot, lambda: table.set_filter("web"))
        shown = table.row_count
        unfiltered = await _timed_paint(pilot, lambda: table.set_filter(""))

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
        "paint_nothing_changed": ms(idle),
        "ui_update_and_paint": ms([s + p for s, p in zip(show, paint, strict=True)]),
        "cells_redrawn_per_refresh": round(statistics.median(updated)),  # rows on screen
        "api_requests_per_refresh": max(requests),
        "filter_web_ms": round(1000 * filtered, 1),
        "filter_web_rows": shown,
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
