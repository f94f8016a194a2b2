"""The error tree every face shows to people and agents.

Each error carries a sentence that says what went wrong *and* what to do about it.
Messages never contain a secret: clients build them from ids (``user@realm!token``),
never from header values or settings dumps.
"""

from __future__ import annotations


class LabdeckError(Exception):
    """Base of every error labdeck raises on purpose."""

    #: short machine-readable kind, shown in JSON output and MCP errors
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {"error": self.kind, "message": self.message, "hint": self.hint}


class ConfigError(LabdeckError):
    """The configuration is missing, malformed or unsafe (e.g. a readable secret file)."""

    kind = "config"


class InvalidInput(LabdeckError):
    """Parameters were rejected before anything was sent (or by the server's validator)."""

    kind = "invalid_input"

    def __init__(
        self, message: str, *, fields: dict[str, str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.fields = dict(fields or {})

    def __str__(self) -> str:
        text = self.message
        if self.fields:
            text += " " + "; ".join(f"{name}: {why}" for name, why in sorted(self.fields.items()))
        if self.hint:
            text += f" {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "fields": self.fields}


class Unreachable(LabdeckError):
    """The server could not be reached (DNS, TCP, timeout)."""

    kind = "unreachable"


class TLSError(LabdeckError):
    """The server's certificate was not trusted or did not match the pin."""

    kind = "tls"


class AuthError(LabdeckError):
    """The server refused our credentials (401)."""

    kind = "auth"


class PermissionDenied(LabdeckError):
    """The credentials are valid but lack a privilege (403)."""

    kind = "permission"

    def __init__(
        self,
        message: str,
        *,
        privilege: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.privilege = privilege
        self.path = path

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "privilege": self.privilege, "path": self.path}


class NotFound(LabdeckError):
    """The node, guest, pool, task ... does not exist."""

    kind = "not_found"


class ServerError(LabdeckError):
    """The server failed (5xx) for a reason that is not ours to fix."""

    kind = "server"

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None,
                 retry_after_s: float | None = None) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.status = status
        #: how long the server asked callers to wait (a 429's Retry-After), when it said
        self.retry_after_s = retry_after_s


class BadResponse(ServerError):
    """The server answered, but not with what its API promises (not JSON, no envelope)."""

    kind = "bad_response"


class TaskFailed(LabdeckError):
    """A Proxmox task (UPID) ended with an error exit status."""

    kind = "task_failed"

    def __init__(
        self,
        message: str,
        *,
        upid: str,
        exitstatus: str | None,
        log_tail: list[str] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_tail = list(log_tail or [])

    def to_dict(self) -> dict[str, object]:
        return {
            **super().to_dict(),
            "upid": self.upid,
            "exitstatus": self.exitstatus,
            "log_tail": self.log_tail,
        }


class TaskTimeout(LabdeckError):
    """We stopped waiting for a task; it may still be running on the server."""

    kind = "task_timeout"

    def __init__(self, message: str, *, upid: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.upid = upid


class OutcomeUnknown(LabdeckError):
    """The connection dropped while a write was in flight: it may or may not have applied
    (``method`` is the HTTP method or the TrueNAS method). Never retried blindly."""

    kind = "outcome_unknown"

    def __init__(self, message: str, *, method: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.method = method


class PolicyDenied(LabdeckError):
    """The safety policy refused an operation (read-only mode, protected target ...)."""

    kind = "policy"


class ConfirmationRequired(LabdeckError):
    """A destructive operation needs an explicit confirmation from a person."""

    kind = "confirmation_required"
