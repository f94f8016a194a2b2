"""The one exception type handlers raise; the API layer turns it into PVE's envelope."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error exactly as PVE reports it.

    ``message`` becomes the reason phrase (first line) and the JSON ``message``
    (with PVE's trailing newline); ``errors`` maps parameter names to messages.
    ``bare`` errors come from the HTTP layer in pveproxy and carry no JSON body.
    """

    def __init__(
        self,
        status: int,
        message: str,
        errors: dict[str, str] | None = None,
        *,
        bare: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.bare = bare


def param_error(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors)


def die(message: str) -> ApiError:
    """A plain ``die`` in a PVE handler: HTTP 500 with the text as reason."""
    return ApiError(500, message)


def permission_denied(path: str, privilege: str) -> ApiError:
    return ApiError(403, f"Permission check failed ({path}, {privilege})")
