"""``labdeck sim``: run the simulator alone and print how to reach it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import IO

from simulator.config import SimulatorConfig
from simulator.server import Simulator


def describe(simulator: Simulator) -> list[str]:
    """One line per fact a client needs; the format is relied on by docs and tests."""
    lines = [
        f"PVE URL: {simulator.pve_url}/api2/json",
        f"PVE token: {simulator.token.header}",
        f"read-only token: {simulator.readonly_token.header}",
        f"CA certificate: {simulator.ca_path}",
        f"CA SHA-256 fingerprint: {simulator.ca_fingerprint}",
        f"server certificate SHA-256 fingerprint: {simulator.cert_fingerprint}",
    ]
    if simulator.truenas is not None:
        lines += [
            f"TrueNAS URL: {simulator.truenas_url}",
            f"TrueNAS release: {simulator.truenas.release}",
            f"TrueNAS API key: TRUENAS_API_KEY={simulator.truenas_api_key}",
            f"read-only TrueNAS API key: TRUENAS_API_KEY={simulator.truenas_readonly_api_key}",
        ]
    lines.append(f"PVE login: {simulator.login.user} password {simulator.login.password}")
    return lines


def read_facts(lines: IO[str]) -> dict[str, str]:
    """The facts ``describe`` printed, read back from a ``labdeck sim``'s output (up to its
    last line, ``PVE login``). Raises RuntimeError if the output ends first: the simulator
    exited."""
    facts: dict[str, str] = {}
    while "PVE login" not in facts:
        line = lines.readline()
        if not line:
            raise RuntimeError("labdeck sim exited before printing how to reach it")
        key, _, value = line.rstrip("\n").partition(": ")
        facts[key] = value
    return facts


async def serve(config: SimulatorConfig, print_fn: Callable[[str], object] = print) -> None:
    """Start, print the facts, and serve until cancelled."""
    simulator = Simulator(config)
    await simulator.start()
    try:
        for line in describe(simulator):
            print_fn(line)
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def run_forever(config: SimulatorConfig, print_fn: Callable[[str], object] = print) -> None:
    """Blocking entry point for ``labdeck sim``; Ctrl+C stops it cleanly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, print_fn))
