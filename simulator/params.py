"""Declarative parameter specs and a validator that answers like PVE does.

Each route lists its parameters with ``Param`` values; ``validate`` turns the
raw request values (form strings, JSON values, lists for repeated keys) into
typed Python values, or collects ``{name: message}`` errors in PVE's wording.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["string", "integer", "boolean", "number", "array"]
FormatCheck = Callable[[str], str | None]

VMID_MIN = 100
VMID_MAX = 999_999_999

MISSING = "property is missing and it is not optional"
UNKNOWN = "property is not defined in schema and the schema does not allow additional properties"


def _regex_check(regex: str, message: str, flags: int = 0) -> FormatCheck:
    compiled = re.compile(regex, flags)

    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else message.format(value=value)

    return check


def _storage_id(value: str) -> str | None:
    if len(value) < 2:
        return f"storage ID '{value}' cannot be shorter than 2 characters"
    if re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]", value, re.IGNORECASE):
        return None
    return f"storage ID '{value}' contains illegal characters"


def _pool_id(value: str) -> str | None:
    if value.count("/") > 2:
        return f"pool name '{value}' nested too deeply (max levels = 3)"
    if re.fullmatch(r"[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+)*", value):
        return None
    return f"pool name '{value}' contains invalid characters"


def _cidr(value: str) -> str | None:
    message = "value does not look like a valid CIDR network"
    if "/" not in value:
        return message
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return message
    return None


STORAGE_CONTENT = frozenset(
    {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import"}
)

check_node = _regex_check(
    r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?", "value does not look like a valid node name"
)
check_vmid = _regex_check(r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID")
check_configid = _regex_check(r"[a-z][a-z0-9_-]+", "invalid configuration ID '{value}'", re.I)
check_task_status = _regex_check(r"ok|error|warning|unknown", "invalid status '{value}'", re.I)


def check_storage_content(value: str) -> str | None:
    return None if value in STORAGE_CONTENT else f"invalid content type '{value}'"


_LIST_SPLIT = re.compile(r"[,;\s\0]+")


def list_of(check: FormatCheck) -> FormatCheck:
    """A ``*-list`` format: every entry must pass ``check``."""

    def check_list(value: str) -> str | None:
        for entry in _LIST_SPLIT.split(value):
            if entry:
                error = check(entry)
                if error is not None:
                    return error
        return None

    return check_list


def split_list(value: str) -> list[str]:
    return [entry for entry in _LIST_SPLIT.split(value) if entry]


@dataclass(frozen=True)
class Param:
    kind: Kind = "string"
    optional: bool = True
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    check: FormatCheck | None = None
    is_list: bool = False  # a ``*-list`` format: repeated keys are joined with commas
    max_length: int | None = None
    pattern: str | None = None
    requires: str | None = None
    items: Param | None = None  # for arrays: the spec every element must meet


# Small constructors so route tables read like the API reference.
def text(*, optional: bool = True, max_length: int | None = None) -> Param:
    return Param("string", optional=optional, max_length=max_length)


def flag() -> Param:
    return Param("boolean")


def integer(minimum: int | None = None, maximum: int | None = None) -> Param:
    return Param("integer", minimum=minimum, maximum=maximum)


def choice(*values: str, requires: str | None = None) -> Param:
    return Param("string", enum=values, requires=requires)


def node(*, optional: bool = False) -> Param:
    return Param("string", optional=optional, check=check_node)


def vmid(*, optional: bool = False) -> Param:
    return Param("integer", optional=optional, minimum=VMID_MIN, maximum=VMID_MAX, check=check_vmid)


def formatted(check: FormatCheck, *, optional: bool = True, is_list: bool = False) -> Param:
    return Param("string", optional=optional, check=list_of(check) if is_list else check,
                 is_list=is_list)  # fmt: skip


def strings(*, optional: bool = True) -> Param:
    """An array of strings; a single value (one form key) becomes a one-item array."""
    return Param("array", optional=optional, items=Param("string"))


def pattern(regex: str) -> Param:
    return Param("string", pattern=regex)


pool_id = _pool_id
storage_id = _storage_id
cidr = _cidr


def _scalar_text(value: Any) -> str | None:
    """PVE's view of a scalar as text; None for things that are never scalars."""
    if isinstance(value, bool) or isinstance(value, dict | list) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_error(kind: Kind, value: Any) -> str | None:
    if isinstance(value, dict | list):
        shape = "HASH" if isinstance(value, dict) else "ARRAY"
        return f"type check ('{kind}') failed - got {shape}"
    if isinstance(value, bool):
        if kind == "boolean":
            return None
        return f"type check ('{kind}') failed - got JSON::PP::Boolean"
    literal = _scalar_text(value) or ""
    if kind == "integer" and not re.fullmatch(r"[+-]?\d+", literal):
        return f"type check ('integer') failed - got '{literal}'"
    if kind == "number" and not re.fullmatch(
        r"[+-]?(?:\d+\.\d+|\d+\.|\.\d+|\d+)(?:[eE][+-]?\d+)?", literal
    ):
        return f"type check ('number') failed - got '{literal}'"
    if kind == "boolean" and literal not in ("0", "1"):
        return f"type check ('boolean') failed - got '{literal}'"
    return None


def _convert(kind: Kind, value: Any) -> Any:
    if kind == "boolean":
        return bool(value) if isinstance(value, bool) else _scalar_text(value) == "1"
    if kind == "integer":
        return int(_scalar_text(value) or "0")
    if kind == "number":
        return float(_scalar_text(value) or "0")
    return _scalar_text(value)


def _check_one(spec: Param, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, list):
        if spec.is_list:
            value = ",".join(str(v) for v in value)
        elif len(value) == 1:
            value = value[0]
    error = _type_error(spec.kind, value)
    if error is not None:
        return None, error
    literal = _scalar_text(value) if not isinstance(value, bool) else ("1" if value else "0")
    literal = literal or ""
    if spec.check is not None:
        problem = spec.check(literal)
        if problem is not None:
            return None, f"invalid format - {problem}"
    if spec.pattern is not None and not re.fullmatch(spec.pattern, literal):
        return None, "value does not match the regex pattern"
    if spec.max_length is not None and len(literal) > spec.max_length:
        return None, f"value may only be {spec.max_length} characters long"
    converted = _convert(spec.kind, value)
    if spec.kind in ("integer", "number"):
        if spec.maximum is not None and converted > spec.maximum:
            return None, f"value must have a maximum value of {spec.maximum}"
        if spec.minimum is not None and converted < spec.minimum:
            return None, f"value must have a minimum value of {spec.minimum}"
    if spec.enum is not None and literal not in spec.enum:
        return None, (
            f"value '{literal}' does not have a value in the enumeration '{', '.join(spec.enum)}'"
        )
    return converted, None


def _check_array(name: str, spec: Param, value: Any, errors: dict[str, str]) -> Any:
    """PVE's legacy normalisation (a true scalar becomes ``[scalar]``), then each item."""
    if not isinstance(value, list):
        if value in (None, "", "0", 0) or (isinstance(value, bool) and not value):
            errors[name] = "type check ('array') failed"
            return None
        value = [value]
    items = spec.items or Param("string")
    out: list[Any] = []
    for index, item in enumerate(value):
        if isinstance(item, list):  # a nested array is never a valid item here
            errors[f"{name}[{index}]"] = f"type check ('{items.kind}') failed - got ARRAY"
            continue
        converted, error = _check_one(items, item)
        if error is not None:
            errors[f"{name}[{index}]"] = error
        else:
            out.append(converted)
    return out


def validate(
    specs: Mapping[str, Param], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values for every given parameter, and PVE-worded errors by name."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in raw.items():
        spec = specs.get(name)
        if spec is None:
            errors[name] = UNKNOWN
            continue
        if spec.kind == "array":
            before = len(errors)
            items = _check_array(name, spec, value, errors)
            if len(errors) == before:
                values[name] = items
            continue
        converted, error = _check_one(spec, value)
        if error is not None:
            errors[name] = error
        else:
            values[name] = converted
    for name, spec in specs.items():
        if name not in raw and not spec.optional:
            errors[name] = MISSING
        if name in raw and spec.requires is not None and spec.requires not in raw:
            errors.setdefault(spec.requires, f"missing property required by '{name}'")
    return values, errors
