"""The ``X.query(filters, options)`` grammar: filters, OR groups, select, order_by, paging."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from simulator.truenas.errors import RpcError, call_error, invalid

_OPS = frozenset(
    ["=", "!=", ">", ">=", "<", "<=", "~", "in", "nin", "rin", "rnin", "^", "!^", "$", "!$"]
)
_OPTION_KEYS = frozenset(
    ["extra", "order_by", "select", "count", "get", "offset", "limit", "force_sql_filters"]
)
_MISSING = object()
MAX_OR_DEPTH = 3


def _split_path(path: str) -> list[str]:
    parts = re.split(r"(?<!\\)\.", path)
    return [part.replace("\\.", ".") for part in parts]


def lookup(item: Any, path: str) -> list[Any]:
    """Every value ``path`` names in ``item`` (``*`` fans out over a list); [] if absent."""
    values: list[Any] = [item]
    for part in _split_path(path):
        found: list[Any] = []
        for value in values:
            if part == "*" and isinstance(value, list):
                found.extend(value)
            elif isinstance(value, dict) and part in value:
                found.append(value[part])
            elif isinstance(value, list) and part.lstrip("-").isdigit():
                index = int(part)
                if -len(value) <= index < len(value):
                    found.append(value[index])
        values = found
    return values


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def _compare(op: str, x: Any, y: Any) -> bool:
    try:
        if op == "=":
            return bool(x == y)
        if op == "!=":
            return bool(x != y)
        if op in (">", ">=", "<", "<="):
            if x is None or y is None:
                return False
            return bool({">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y}[op])
        if op == "~":
            return isinstance(x, str) and re.match(str(y), x) is not None
        if op == "in":
            return x in y
        if op == "nin":
            return x not in y
        if op == "rin":
            return x is not None and y in x
        if op == "rnin":
            return x is None or y not in x
        if op in ("^", "!^"):
            hit = isinstance(x, str) and x.startswith(y)
            return hit if op == "^" else not hit
        if op in ("$", "!$"):
            hit = isinstance(x, str) and x.endswith(y)
            return hit if op == "$" else not hit
    except (TypeError, re.error):
        return False
    return False


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _condition(item: dict[str, Any], cond: list[Any]) -> bool:
    field, op, value = cond
    if not isinstance(field, str) or not isinstance(op, str):
        raise invalid("filters", f"Invalid filter {cond!r}")
    insensitive = op.startswith("C") and op[1:] in _OPS
    base = op[1:] if insensitive else op
    if base not in _OPS or (insensitive and base == "~"):
        raise invalid("filters", f"Invalid operation: {op}")
    if field.endswith(".$date"):
        if base not in ("=", "!=", ">", ">=", "<", "<="):
            raise invalid("filters", f"Invalid operation for a timestamp: {op}")
        wanted = _as_datetime(value)
        if wanted is None:
            raise invalid("filters", f"Not an ISO-8601 timestamp: {value!r}")
        stamps = [_as_datetime(v) for v in lookup(item, field[: -len(".$date")])]
        return any(s is not None and _compare(base, s, wanted) for s in stamps)
    values = lookup(item, field)
    if not values:
        values = [None]
    if insensitive:
        values, value = [_fold(v) for v in values], _fold(value)
    return any(_compare(base, v, value) for v in values)


def matches(item: dict[str, Any], filters: Iterable[Any], depth: int = 0) -> bool:
    for entry in filters:
        if not isinstance(entry, list) or not entry:
            raise invalid("filters", f"Invalid filter {entry!r}")
        if entry[0] == "OR" and len(entry) == 2:
            if depth >= MAX_OR_DEPTH:
                raise invalid("filters", "Query filters nested too deeply")
            if not isinstance(entry[1], list):
                raise invalid("filters", "OR expects a list of filters")
            if not any(_branch(item, branch, depth + 1) for branch in entry[1]):
                return False
        elif len(entry) == 3 and not isinstance(entry[0], list):
            if not _condition(item, entry):
                return False
        else:
            raise invalid("filters", f"Invalid filter {entry!r}")
    return True


def _branch(item: dict[str, Any], branch: Any, depth: int) -> bool:
    if isinstance(branch, list) and branch and isinstance(branch[0], list):
        return matches(item, branch, depth)
    return matches(item, [branch], depth)


def _sort_key(item: dict[str, Any], field: str) -> tuple[int, Any]:
    values = lookup(item, field)
    value = values[0] if values else None
    if value is None:
        return (1, "")
    if isinstance(value, bool | int | float):
        return (0, (0, float(value), ""))
    return (0, (1, 0.0, str(value)))


def _order(items: list[dict[str, Any]], order_by: list[Any]) -> list[dict[str, Any]]:
    for spec in reversed(order_by):
        if not isinstance(spec, str):
            raise invalid("options.order_by", "Input should be a valid string")
        nulls = None
        for prefix in ("nulls_first:", "nulls_last:"):
            if spec.startswith(prefix):
                nulls, spec = prefix[:-1], spec[len(prefix) :]
        desc = spec.startswith("-")
        field = spec[1:] if desc else spec
        present = [i for i in items if _sort_key(i, field)[0] == 0]
        absent = [i for i in items if _sort_key(i, field)[0] == 1]
        present.sort(key=lambda i: _sort_key(i, field)[1], reverse=desc)
        first = nulls == "nulls_first" or (nulls is None and desc)
        items = absent + present if first else present + absent
    return items


def _select(item: dict[str, Any], select: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in select:
        if isinstance(spec, list) and len(spec) == 2:
            path, alias = str(spec[0]), str(spec[1])
            values = lookup(item, path)
            if values:
                out[alias] = values[0]
            continue
        if not isinstance(spec, str):
            raise invalid("options.select", f"Invalid select entry {spec!r}")
        parts = _split_path(spec)
        values = lookup(item, spec)
        if not values:
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = values[0]
    return out


def check_options(options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise invalid("options", "Input should be a valid dictionary")
    for key in options:
        if key not in _OPTION_KEYS:
            raise invalid(f"options.{key}", "Extra inputs are not permitted")
    for key in ("offset", "limit"):
        value = options.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise invalid(f"options.{key}", "Input should be a valid non-negative integer")
    for key in ("order_by", "select"):
        if not isinstance(options.get(key, []), list):
            raise invalid(f"options.{key}", "Input should be a valid list")
    return options


def run_query(items: Iterable[dict[str, Any]], filters: Any, options: Any) -> Any:
    """Apply filters and options; returns a list, one item (``get``) or an int (``count``)."""
    if not isinstance(filters, list):
        raise invalid("filters", "Input should be a valid list")
    opts = check_options(options)
    rows = [item for item in items if matches(item, filters)]
    if opts.get("count"):
        return len(rows)
    rows = _order(rows, opts.get("order_by", []))
    offset, limit = opts.get("offset", 0), opts.get("limit", 0)
    rows = rows[offset:]
    if limit:
        rows = rows[:limit]
    if opts.get("select"):
        rows = [_select(row, opts["select"]) for row in rows]
    if opts.get("get"):
        if not rows:
            raise call_error(errno.EINVAL, "MatchNotFound()", cls="MatchNotFound")
        return rows[0]
    return rows


__all__ = ["RpcError", "lookup", "matches", "run_query"]
