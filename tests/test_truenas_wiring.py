"""The embedded simulator serves TrueNAS beside PVE, and a demo profile reaches both."""

from __future__ import annotations

from core.service import Labdeck
from labdeck.demo import demo_profile


async def test_demo_profile_reaches_truenas_over_the_shared_ca(sim):
    assert sim.truenas_url.startswith("wss://127.0.0.1:")
    assert sim.truenas_url.endswith("/api/current")
    async with Labdeck(demo_profile(sim, allow_writes=False), face="cli") as lab:
        info = await lab.truenas.call("system.info")
        pools = await lab.truenas.query("pool.query", select=["name"])
        assert info["hostname"]
        assert len(pools) == 2
        assert lab.truenas.release == "25.10"


async def test_truenas_version_is_chosen_per_simulator(make_sim):
    handle = make_sim(truenas_version="26")
    async with Labdeck(demo_profile(handle, allow_writes=False), face="cli") as lab:
        await lab.truenas.call("system.info")
        assert lab.truenas.release == "26"


def test_truenas_can_be_left_out(make_sim):
    handle = make_sim(truenas=False)
    assert handle.truenas_url is None
    assert not demo_profile(handle, allow_writes=False).truenas.configured
