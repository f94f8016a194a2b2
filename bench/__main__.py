"""``python -m bench [--quick] [--out bench/results.json]``

Every figure at 100 / 1,000 / 5,000 guests (one `labdeck sim` subprocess per size), then the
figures that do not depend on the size: CLI start, MCP cold start, exec result delay and the
bounded load (10,000 MCP tool calls). Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SIZES = (100, 1000, 5000)
QUICK_SIZES = (100, 1000)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items() if k != "rss_samples")
    return str(value)


def _listing(name: str, form: Any) -> Any:
    """A scaling-table getter for the MCP listing of ``name`` rows (see ``bench_listings``)."""

    def get(figures: dict[str, Any]) -> str:
        listing = figures["mcp_listings"][name]
        return form(listing) if callable(form) else form.format(**listing)

    return get


def scaling_table(by_size: list[dict[str, Any]]) -> str:
    """One line per figure, one column per cluster size: how each grows."""
    rows = [
        ("list all guests in-process, ms", lambda f: f["list_guests"]["latency_s"] * 1000),
        ("  result KiB", lambda f: f["list_guests"]["bytes"] / 1024),
        ("  est. tokens", lambda f: f["list_guests"]["est_tokens"]),
        ("  requests to PVE", lambda f: f["list_guests"]["requests"]),
        *((f"MCP list {name}: fresh / cached ms", _listing(name, "{fresh_median_ms} / "
           "{cached_median_ms}")) for name in ("50", "500", "all")),
        *((f"  {name}: text KiB, tokens / wire KiB", _listing(name, lambda x: "{:.1f}, {} / {:.1f}"
           .format(x["text_bytes"] / 1024, x["est_tokens"], x["wire_bytes"] / 1024)))
          for name in ("50", "500", "all")),
        ("sim GET /cluster/resources ms", lambda f: f["sim_cluster_resources"]["median_ms"]),
        ("loop lag p99 / max, ms", lambda f: "{p99_lag_ms} / {max_lag_ms}".format(
            **f["loop_lag_during_listing"])),
        ("dashboard refresh-to-paint ms", lambda f: "{median_ms} (p95 {p95_ms})".format(
            **f["dashboard"]["refresh_to_paint"])),
        ("  of which fetch ms", lambda f: f["dashboard"]["fetch"]["median_ms"]),
        ("  API requests per refresh", lambda f: f["dashboard"]["api_requests_per_refresh"]),
        ("  table update / paint ms", lambda f: "{} / {}".format(
            f["dashboard"]["table_update"]["median_ms"], f["dashboard"]["paint"]["median_ms"])),
        ("  to the pilot's wait instead ms", lambda f: "{median_ms} (p95 {p95_ms})".format(
            **f["dashboard"]["pilot_wait"]["refresh_to_paint"])),
        ("  dashboard RSS MiB", lambda f: f["dashboard"]["rss_mib"]),
        ("  filter 'web' / clear it, ms", lambda f: "{filter_web_ms} / {clear_filter_ms}".format(
            **f["dashboard"])),
        ("MCP 200 concurrent p50/p99 ms", lambda f: "{p50_ms} / {p99_ms} ({errors} err)".format(
            **f["mcp_concurrent"])),
    ]  # fmt: skip
    width = 32
    lines = [f"{'figure':<{width}}" + "".join(f"{f['guests']:>22,}" for f in by_size)]
    for label, get in rows:
        cells = []
        for figures in by_size:
            try:
                value = get(figures)
            except (KeyError, TypeError):
                value = "-"
            cells.append(f"{value:>22.1f}" if isinstance(value, float) else f"{value!s:>22}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)


def _timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # one broken figure must not lose the others
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        print(f"bench: {name} {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs (smoke)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args()
    from bench import core_bench, mcp_bench, tui_bench

    quick = args.quick
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
        }
    }
    results["cli_help"] = _timed("cli --help", core_bench.bench_cli_help, 3 if quick else 10)
    by_size = []
    for guests in QUICK_SIZES if quick else SIZES:
        nodes, pools = core_bench.nodes_for(guests), core_bench.pools_for(guests)
        with core_bench.external_sim(guests, nodes, pools=pools) as sim:
            figures = {"guests": guests, "nodes": nodes, "pools": pools}
            figures.update(_timed(f"core @{guests}", core_bench.run_at_size, sim, guests, quick))
            figures["dashboard"] = _timed(f"dashboard @{guests}", tui_bench.bench_dashboard,
                                          sim, guests, 3 if quick else 7)  # fmt: skip
            figures["mcp_listings"] = _timed(f"mcp listings @{guests}",
                                             mcp_bench.bench_listings, sim, guests,
                                             2 if quick else 6)  # fmt: skip
            figures["mcp_concurrent"] = _timed(f"mcp 200 concurrent @{guests}",
                                               mcp_bench.bench_concurrent, sim, 200)  # fmt: skip
            if guests == 1000:
                figures["mcp_load"] = _timed(
                    "mcp load", mcp_bench.bench_load, sim, 2000 if quick else 10_000, 200
                )
                figures["mcp_cold_start"] = _timed(
                    "mcp cold start", mcp_bench.bench_cold_start, sim, 3 if quick else 7
                )
        by_size.append(figures)
    results["by_size"] = by_size
    results["exec_result_delay"] = _timed("exec delay", core_bench.run_exec_delay, quick)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(scaling_table(by_size))
    print()
    for name in ("cli_help", "exec_result_delay"):
        print(f"{name:<26} {_flat(results[name])}")
    for figures in by_size:
        for name in ("mcp_cold_start", "mcp_load"):
            if name in figures:
                print(f"{name:<26} {_flat(figures[name])}")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
