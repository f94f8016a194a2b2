"""The one catalogue of operations. The MCP tools, ``labdeck call`` and the dashboard's
actions are all generated from or bound to the entries registered here.

An operation is a typed async function ``handler(ctx, params) -> result`` plus the flags
that drive the safety policy and the MCP ``ToolAnnotations``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.service import OpContext

Backend = Literal["pve", "truenas"]
P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
Handler = Callable[["OpContext", Any], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    summary: str
    description: str
    params: type[BaseModel]
    result: type[BaseModel]
    handler: Handler
    read_only: bool
    destructive: bool = False
    idempotent: bool = False
    backend: Backend = "pve"
    #: a person must confirm each call (defaults to ``destructive``)
    confirm: bool = False

    @property
    def access(self) -> str:
        if self.read_only:
            return "read"
        return "write!" if self.confirm else "write"


_CATALOGUE: dict[str, Operation] = {}


def columns_of(value: list[str] | None, available: Sequence[str]) -> list[str] | None:
    """Validate a listing's ``fields`` argument (for use inside a pydantic validator)."""
    if value is None:
        return None
    if not value:
        raise ValueError("give at least one field, or omit fields for the default columns")
    unknown = [f for f in value if f not in available]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; available: {', '.join(available)}")
    return list(dict.fromkeys(value))


def operation(
    name: str,
    *,
    summary: str,
    params: type[P],
    result: type[R],
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    backend: Backend = "pve",
    confirm: bool | None = None,
) -> Callable[[Callable[[OpContext, P], Awaitable[R]]], Callable[[OpContext, P], Awaitable[R]]]:
    """Register ``handler`` in the catalogue. Its docstring is the description models read."""

    def register(
        handler: Callable[[OpContext, P], Awaitable[R]],
    ) -> Callable[[OpContext, P], Awaitable[R]]:
        if name in _CATALOGUE:
            raise RuntimeError(f"operation {name} registered twice")
        description = (handler.__doc__ or summary).strip()
        _CATALOGUE[name] = Operation(
            name=name,
            summary=summary,
            description=" ".join(line.strip() for line in description.splitlines()).strip(),
            params=params,
            result=result,
            handler=handler,
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            backend=backend,
            confirm=destructive if confirm is None else confirm,
        )
        return handler

    return register


def _load() -> None:
    # Importing the modules registers their operations, in this order.
    # isort: off
    import core.pve_exec
    import core.pve_ops
    import core.pve_ops_guests
    import core.pve_ops_snapshots
    import core.pve_ops_storage
    import core.pve_ops_tasks
    import core.truenas_ops
    import core.truenas_ops_storage
    import core.truenas_ops_snapshots
    import core.truenas_ops_sharing
    import core.truenas_ops_accounts
    import core.truenas_ops_compute  # noqa: F401
    # isort: on


def catalogue() -> dict[str, Operation]:
    """All operations by name, in registration order."""
    if not _CATALOGUE:
        _load()
    return dict(_CATALOGUE)


def get_operation(name: str) -> Operation:
    ops = catalogue()
    if name not in ops:
        close = [n for n in ops if name.replace("-", "_") in n or n in name]
        hint = (
            f"Did you mean {', '.join(close[:3])}?" if close else "Run `labdeck ops` to list them."
        )
        raise InvalidInput(f"unknown operation {name!r}.", hint=hint)
    return ops[name]
