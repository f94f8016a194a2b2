"""JSON-RPC errors as the TrueNAS middleware sends them (codes, errnos, ``data`` layout)."""

from __future__ import annotations

import errno as _errno
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TOO_MANY_CONCURRENT = -32000
CALL_ERROR = -32001

# TrueNAS-specific error numbers (beside the POSIX ones).
ENOMETHOD = 201
ENOTAUTHENTICATED = 207

_NAMES = {ENOMETHOD: "ENOMETHOD", ENOTAUTHENTICATED: "ENOTAUTHENTICATED"}


def errname(number: int) -> str:
    return _NAMES.get(number) or _errno.errorcode.get(number, "EFAULT")


class RpcError(Exception):
    """An error response: ``code``, ``message`` and the optional ``data`` object."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


def _data(number: int, reason: str, cls: str, extra: Any = None) -> dict[str, Any]:
    return {
        "error": number,
        "errname": errname(number),
        "reason": reason,
        "trace": {"class": cls, "formatted": f"{cls}: {reason}", "repr": f"{cls}({reason!r})"},
        "extra": extra,
    }


def call_error(number: int, reason: str, extra: Any = None, *, cls: str = "CallError") -> RpcError:
    """-32001 "Method call error" with an errno (ENOENT, EACCES, EBUSY ...)."""
    return RpcError(CALL_ERROR, "Method call error", _data(number, reason, cls, extra))


def not_found(reason: str) -> RpcError:
    return call_error(_errno.ENOENT, reason, cls="InstanceNotFound")


def not_authenticated() -> RpcError:
    return call_error(ENOTAUTHENTICATED, "Not authenticated")


def not_authorized() -> RpcError:
    return call_error(_errno.EACCES, "Not authorized")


def validation(errors: list[tuple[str, str]], *, number: int = _errno.EINVAL) -> RpcError:
    """-32602 with ``data.extra`` = ``[[attribute, errmsg, errno], ...]``."""
    extra = [[attribute, message, number] for attribute, message in errors]
    summary = "; ".join(
        f"[{errname(number)}] {attribute}: {message}" for attribute, message in errors
    )
    return RpcError(
        INVALID_PARAMS, "Invalid params", _data(number, summary, "ValidationErrors", extra)
    )


def invalid(attribute: str, message: str, *, number: int = _errno.EINVAL) -> RpcError:
    return validation([(attribute, message)], number=number)


def plain(code: int, message: str) -> RpcError:
    return RpcError(code, message)
