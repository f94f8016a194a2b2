"""The embedded demo: a simulator on loopback and a profile that trusts its throwaway CA."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from core.config import PolicySettings, Profile, PveSettings, TrueNasSettings

if TYPE_CHECKING:
    from simulator.server import SimulatorHandle

DEMO_SEED = 7


def start_demo(
    *,
    guests: int = 24,
    nodes: int = 3,
    seed: int = DEMO_SEED,
    speed: float = 1.0,
    dynamic: bool = True,
) -> SimulatorHandle:
    """Start the simulator in a background thread (own event loop)."""
    from simulator import SimulatorConfig, start_in_thread

    return start_in_thread(
        SimulatorConfig(
            host="127.0.0.1", port=0, guests=guests, nodes=nodes, seed=seed, speed=speed,
            dynamic=dynamic,
        )
    )  # fmt: skip


def demo_profile(
    handle: SimulatorHandle, *, allow_writes: bool, readonly_token: bool = False
) -> Profile:
    """A profile for the running simulator: token auth, TLS verified against its CA."""
    token = handle.readonly_token if readonly_token else handle.token
    return Profile(
        name="demo",
        pve=PveSettings(
            host=handle.host,
            port=handle.port,
            user=token.user,
            token_name=token.token_name,
            token_value=SecretStr(token.secret),
            verify_ssl=True,
            ca_bundle=Path(handle.ca_path),
        ),
        truenas=TrueNasSettings(
            url=handle.truenas_url,
            api_key=SecretStr(handle.truenas_api_key) if handle.truenas_api_key else None,
            ca_bundle=Path(handle.ca_path),
        )
        if handle.truenas_url
        else TrueNasSettings(),
        policy=PolicySettings(allow_writes=allow_writes),
    )
