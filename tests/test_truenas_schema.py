"""The simulator against ../shared/truenas-api/methods.json (loaded at run time, per release).

- every method the simulator serves exists in methods.json for that release (public, or
  private where the simulator serves it only as a private method), with the same job flag;
- results of query methods carry the item fields methods.json lists, with loosely matching
  JSON types.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from simulator.truenas import TrueNasHandle, start_truenas_in_thread
from simulator.truenas.catalog import served

METHODS_JSON = Path(__file__).resolve().parents[2] / "shared" / "truenas-api" / "methods.json"
RELEASES = {"25.04": "25.04", "25.10": "25.10", "26": "26.0"}


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if not METHODS_JSON.exists():
        pytest.skip("../shared/truenas-api/methods.json not present")
    return dict(json.loads(METHODS_JSON.read_text()))


@pytest.fixture(scope="module", params=list(RELEASES))
def nas(request: pytest.FixtureRequest) -> Iterator[TrueNasHandle]:
    handle = start_truenas_in_thread(version=request.param, speed=20.0)
    yield handle
    handle.stop()


@pytest.mark.parametrize("release", list(RELEASES))
def test_served_methods_exist_in_reference(reference: dict[str, Any], release: str) -> None:
    key = RELEASES[release]
    methods = reference["methods"]
    for name, spec in served(release).items():
        assert name in methods, f"{name} is not in methods.json"
        status = methods[name]["present_in"][key]
        expected = "private" if release in spec.private_in else "public"
        assert status == expected, f"{name} on {release}: methods.json says {status}"
        job = methods[name]["per_version"].get(key, {}).get("job", methods[name]["job"])
        assert spec.job == job, f"{name}: job flag differs"


def _item_spec(entry: dict[str, Any], key: str) -> dict[str, Any] | None:
    spec = entry.get("per_version", {}).get(key, {}).get("item", entry.get("item"))
    return spec if isinstance(spec, dict) else None


_SIMPLE = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict,
           "list": list, "null": type(None)}  # fmt: skip


def _alternatives(text: str) -> list[str]:
    depth, parts, current = 0, [], ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def type_ok(value: Any, spec: Any, legacy: bool = False) -> bool:
    """Loose check of one JSON value against a methods.json type.

    Legacy (25.04 ``middlewared.schema``) renderings drop the nullability of nested objects,
    so there a nested object may also be null.
    """
    if isinstance(spec, dict):
        if legacy and value is None:
            return True
        if "anyOf" in spec:
            return any(type_ok(value, alt) for alt in spec["anyOf"])
        if "list_of" in spec:
            return isinstance(value, list)
        if "dict_of" in spec:
            return isinstance(value, dict)
        return isinstance(value, dict)
    text = str(spec)
    for alt in _alternatives(text):
        if alt in ("any", "secret str"):
            return True
        if alt == "datetime":
            if isinstance(value, dict) and set(value) == {"$date"}:
                return True
            continue
        if alt.startswith("enum["):
            choices = json.loads(alt[4:])
            if value in choices:
                return True
            continue
        if alt.startswith("list["):
            if isinstance(value, list):
                return True
            continue
        if alt.startswith("dict["):
            if isinstance(value, dict):
                return True
            continue
        if re.fullmatch(r'".*"', alt):
            if value == json.loads(alt):
                return True
            continue
        if alt == "int" and isinstance(value, bool):
            continue
        if alt in _SIMPLE and isinstance(value, _SIMPLE[alt]):
            return True
    return False


async def _results(handle: TrueNasHandle, names: list[str]) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=handle.ca_path)
    out: dict[str, Any] = {}
    async with connect(handle.url, ssl=context, max_size=None) as ws:

        async def call(ident: int, method: str, *params: Any) -> Any:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method,
                                      "params": list(params)}))  # fmt: skip
            reply = json.loads(await ws.recv())
            assert "result" in reply, (method, reply)
            return reply["result"]

        assert await call(0, "auth.login_with_api_key", handle.api_key) is True
        await call(1, "app.stop", "plex")  # so core.get_jobs has an item
        for ident, name in enumerate(names, start=2):
            out[name] = await call(ident, name)
    return out


def test_query_results_have_reference_fields(nas: TrueNasHandle,
                                             reference: dict[str, Any]) -> None:  # fmt: skip
    key = RELEASES[nas.release]
    methods = reference["methods"]
    names = [n for n, spec in served(nas.release).items()
             if spec.read_only and n in methods and _item_spec(methods[n], key)
             and nas.release not in spec.private_in]  # fmt: skip
    assert {"pool.query", "pool.dataset.query", "user.query", "core.get_jobs"} <= set(names)
    results = asyncio.run(_results(nas, names))
    checked = 0
    for name in names:
        spec = _item_spec(methods[name], key)
        assert spec is not None
        legacy = "legacy" in methods[name]["per_version"].get(key, {}).get("schema_kind", "")
        items = results[name]
        assert isinstance(items, list) and items, f"{name} returned no items"
        for item in items:
            for field, kind in spec.items():
                assert field in item, f"{name} ({nas.release}): item lacks {field!r}"
                assert type_ok(item[field], kind, legacy), (
                    f"{name} ({nas.release}): {field}={item[field]!r} is not {kind}"
                )
                checked += 1
    assert checked > 500


def test_alert_and_system_results(nas: TrueNasHandle, reference: dict[str, Any]) -> None:
    methods = reference["methods"]
    results = asyncio.run(_results(nas, ["alert.list", "system.info", "auth.me"]))
    alert_spec = methods["alert.list"]["result"]["list_of"]
    for alert in results["alert.list"]:
        assert set(alert_spec) <= set(alert)
        assert all(type_ok(alert[k], t) for k, t in alert_spec.items())
    for name in ("system.info", "auth.me"):
        spec = methods[name]["result"]
        assert all(k in results[name] and type_ok(results[name][k], t) for k, t in spec.items())
