"""The inventory parse builds guests without validating them again: it must give exactly the
models validation gives, from the simulator's real ``/cluster/resources`` answer and from
odd items (no name, a tags string, a template, a lock, a pool, missing or textual numbers).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from pydantic import ValidationError

from core.models import Guest, Inventory
from core.service import BIG_LISTING, _guest_values, inventory_from_resources


def validated(item: dict[str, Any]) -> Guest:
    """The guest of ``item`` as validation builds it (what ``Guest(...)`` gives)."""
    return Guest(**_guest_values(item, item["type"], {}))


def assert_same_guest(fast: Guest, expected: Guest) -> None:
    """Equal field by field, and of the same types (``1 == 1.0`` would hide a float field
    holding an int), with every field set as when all were passed to ``Guest(...)``."""
    assert type(fast) is Guest
    assert fast == expected
    assert fast.model_dump_json() == expected.model_dump_json()
    assert {name: type(value) for name, value in fast.__dict__.items()} == {
        name: type(value) for name, value in expected.__dict__.items()
    }
    assert fast.model_fields_set == expected.model_fields_set == set(Guest.model_fields)
    assert Guest.model_validate(fast.model_dump()) == fast


def assert_matches_validation(inventory: Inventory, resources: list[dict[str, Any]]) -> None:
    items = sorted((i for i in resources if i.get("type") in ("qemu", "lxc")),
                   key=lambda i: int(i["vmid"]))  # fmt: skip
    assert len(inventory.guests) == len(items) > 0
    for fast, item in zip(inventory.guests, items, strict=True):
        assert_same_guest(fast, validated(item))


async def test_the_simulators_answer_gives_the_validated_guests(sim, make_service):
    async with make_service(sim) as lab:
        resources = list(await lab.pve.cached_get("/cluster/resources"))
        inventory = await lab.inventory()
    assert_matches_validation(inventory, resources)
    # the answer holds some of what the odd cases below vary: a template, pools, tags
    assert any(g.template for g in inventory.guests)
    assert any(g.pool for g in inventory.guests) and any(g.pool is None for g in inventory.guests)
    assert any(g.tags for g in inventory.guests)
    assert Inventory.model_validate(inventory.model_dump()) == inventory


async def test_a_big_listing_parsed_in_a_thread_gives_the_validated_guests(make_sim, make_service):
    handle = make_sim(guests=BIG_LISTING + 100, nodes=4, pools=20)
    async with make_service(handle) as lab:
        resources = list(await lab.pve.cached_get("/cluster/resources"))
        inventory = await lab.inventory()
        listed = await lab.call("pve_list_guests", {"fields": ["vmid", "tags", "pool", "cpu"]})
    assert_matches_validation(inventory, resources)
    assert listed.total == len(inventory.guests) == BIG_LISTING + 100
    first = inventory.guests[0]
    assert listed.rows[0] == [first.vmid, ";".join(first.tags), first.pool, round(first.cpu, 4)]


ABSENT = object()  # a change that removes the key


async def test_a_new_big_answer_replaces_the_inventory_and_lets_the_old_one_go(
    make_sim, make_service
):
    handle = make_sim(guests=BIG_LISTING + 100, nodes=4)
    async with make_service(handle) as lab:
        kept = await lab.inventory()
        kept_dump = kept.model_dump()
        lab.pve.invalidate()
        second, again = await asyncio.gather(lab.inventory(), lab.inventory())
        assert second is again is not kept and lab.pve.requests_sent == 2
        # a caller's inventory stays whole; the frozen simulator answers the same guests
        assert kept.model_dump() == kept_dump == second.model_dump()
        held_by_service_only = weakref.ref(second)
        del second, again
        lab.pve.invalidate()
        third = await lab.inventory()
        gc.collect()  # refcounting alone frees it, unless something (a cycle) still holds it
        assert held_by_service_only() is None  # let go once the next answer was parsed
        assert third.model_dump() == kept_dump
        assert await lab.inventory() is third  # cached while the answer is


def guest_items(resources: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {i["vmid"]: i for i in resources if i.get("type") in ("qemu", "lxc")}


async def test_a_new_big_answer_reuses_the_guests_whose_items_did_not_change(
    make_sim, make_service
):
    """A guest whose item is the same in the next answer is the same ``Guest`` again (a
    stopped guest's does not change); the others are made from their new items. The whole
    is what parsing the new answer alone gives."""
    handle = make_sim(guests=BIG_LISTING + 100, nodes=4, dynamic=True)  # metrics move
    async with make_service(handle) as lab:
        first = await lab.inventory()
        items_before = guest_items(list(await lab.pve.cached_get("/cluster/resources")))
        made_before = {g.vmid: g for g in first.guests}
        await asyncio.sleep(0.2)  # ~10 simulated seconds: running guests' metrics move
        lab.pve.invalidate()
        resources = list(await lab.pve.cached_get("/cluster/resources"))
        second = await lab.inventory()
    assert_matches_validation(second, resources)
    items_now = guest_items(resources)
    unchanged = {vmid for vmid, item in items_now.items() if items_before.get(vmid) == item}
    assert 0 < len(unchanged) < len(items_now)  # the stopped ones, not the running ones
    assert all(items_now[vmid]["status"] != "running" for vmid in unchanged)
    assert {g.vmid for g in second.guests if g is made_before[g.vmid]} == unchanged


def test_an_item_that_changed_in_any_field_gives_a_new_guest() -> None:
    item = {"type": "qemu", "vmid": 100, "name": "web", "node": "pve1", "status": "stopped",
            "maxmem": 1024, "tags": "a;b", "template": 0}  # fmt: skip
    first = inventory_from_resources([item])
    reuse = {100: (item, first.guests[0])}
    assert inventory_from_resources([dict(item)], reuse).guests[0] is first.guests[0]
    for field, value in [("status", "running"), ("tags", "a"), ("template", 1), ("lock", "backup"),
                         ("type", "lxc"), ("maxmem", 2048)]:  # fmt: skip
        changed = {**item, field: value}
        again = inventory_from_resources([changed], reuse).guests[0]
        assert again is not first.guests[0]
        assert_same_guest(again, validated(changed))


def test_guests_cannot_be_changed_in_place() -> None:
    """Guests are shared by the inventories of successive answers (when their items did
    not change): a guest changed in place would change an inventory parsed later."""
    guest = inventory_from_resources([{"type": "lxc", "vmid": 101, "name": "a"}]).guests[0]
    with pytest.raises(ValidationError):
        guest.status = "stopped"
    assert guest.status == "unknown"


def odd_variants(item: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(changes to a real item, the fields they must give) for every conversion the parse
    makes: defaults of missing values, tags strings, 0/1 flags, numbers as text or floats."""
    kind, vmid = item["type"], item["vmid"]
    return [
        ({"name": ABSENT}, {"name": f"{kind}-{vmid}"}),
        ({"name": None}, {"name": f"{kind}-{vmid}"}),
        ({"name": ""}, {"name": f"{kind}-{vmid}"}),
        ({"tags": "web, db;;prod,x"}, {"tags": ["web", "db", "prod", "x"]}),
        ({"tags": ""}, {"tags": []}),
        ({"tags": None}, {"tags": []}),
        ({"tags": ABSENT}, {"tags": []}),
        ({"template": 1}, {"template": True}),
        ({"template": 0}, {"template": False}),
        ({"lock": "backup"}, {"lock": "backup"}),
        ({"lock": ""}, {"lock": None}),
        ({"pool": "team-a"}, {"pool": "team-a"}),
        ({"pool": ""}, {"pool": None}),
        ({"lock": ABSENT, "pool": ABSENT}, {"lock": None, "pool": None}),
        ({"status": ABSENT, "node": ABSENT}, {"status": "unknown", "node": ""}),
        ({"status": None, "node": None}, {"status": "unknown", "node": ""}),  # not "None"
        ({"cpu": None, "mem": None, "uptime": None}, {"cpu": 0.0, "mem": 0, "uptime": 0}),
        (
            {"cpu": ABSENT, "maxmem": ABSENT, "netout": ABSENT},
            {"cpu": 0.0, "maxmem": 0, "netout": 0},
        ),
        ({"maxcpu": 4, "cpu": 1}, {"maxcpu": 4.0, "cpu": 1.0}),
        ({"mem": "1024", "vmid": str(vmid)}, {"mem": 1024, "vmid": vmid}),
        ({"mem": 2047.9, "netin": True}, {"mem": 2047, "netin": 1}),
    ]


async def test_odd_items_give_the_validated_guests(sim, make_service):
    async with make_service(sim) as lab:
        resources = list(await lab.pve.cached_get("/cluster/resources"))
    real = [i for i in resources if i.get("type") in ("qemu", "lxc")]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for base in (real[0], real[-1]):  # a container and a VM
        for changes, fields in odd_variants(base):
            item = {**base, **changes}
            cases.append(({k: v for k, v in item.items() if v is not ABSENT}, fields))
    assert {real[0]["type"], real[-1]["type"]} == {"qemu", "lxc"}
    inventory = inventory_from_resources([item for item, _ in cases])
    # guests come sorted by vmid; the sort is stable, so cases of one vmid keep their order
    cases.sort(key=lambda case: int(case[0]["vmid"]))
    assert len(inventory.guests) == len(cases)
    for fast, (item, fields) in zip(inventory.guests, cases, strict=True):
        assert_same_guest(fast, validated(item))
        assert {name: getattr(fast, name) for name in fields} == fields


async def test_guests_do_not_share_their_tag_lists(sim, make_service):
    async with make_service(sim) as lab:
        inventory = await lab.inventory()
    tagged = [g for g in inventory.guests if g.tags]
    assert len({id(g.tags) for g in tagged}) == len(tagged)
    first = tagged[0]
    same = [g for g in tagged[1:] if g.tags == first.tags]
    first.tags.append("changed-here-only")
    assert all("changed-here-only" not in g.tags for g in same)


async def test_copying_a_guest_leaves_the_others_as_they_were(sim, make_service):
    """Guests share one fields set (all fields): pydantic must never change it in place."""
    async with make_service(sim) as lab:
        inventory = await lab.inventory()
    first, other = inventory.guests[0], inventory.guests[1]
    other_before = other.model_dump()
    renamed = first.model_copy(update={"name": "renamed", "status": "stopped"})
    assert renamed.name == "renamed" != first.name and renamed.status == "stopped"
    assert other.model_dump() == other_before == other.model_dump(exclude_unset=True)
    for guest in (first, other, renamed):
        assert guest.model_fields_set == set(Guest.model_fields)


@pytest.mark.parametrize("field", ["pool", "lock"])
def test_a_pool_or_lock_that_is_not_text_fails_as_validation_does(field: str):
    item = {"type": "qemu", "vmid": 100, "name": "vm", "node": "pve1", field: 123}
    with pytest.raises(ValidationError) as fast:
        inventory_from_resources([item])
    with pytest.raises(ValidationError) as reference:
        validated(item)
    assert fast.value.errors() == reference.value.errors()


def test_a_storage_with_null_fields_is_shown_empty_not_as_none() -> None:
    inventory = inventory_from_resources([
        {"type": "storage", "id": "storage/pve1/local", "storage": "local", "node": None,
         "status": None, "plugintype": "dir", "content": "iso", "shared": 0},
    ])  # fmt: skip
    assert (inventory.storages[0].node, inventory.storages[0].status) == ("", "")
