"""Domain errors, each with its HTTP status; one handler in main.py turns them into responses.

Every non-2xx answer carries a FHIR OperationOutcome (CDS Hooks 3.0-ballot recommends it;
2.0 allows it) whose issue names the offending field in `expression`.
"""

from __future__ import annotations

from typing import Any


class CdsError(Exception):
    """An error with an HTTP status and an OperationOutcome issue.

    `reason` is the stable kebab-case code the error log line and the errors metric carry (a
    class default, or the raise site's). `detail` is an optional why for the log only: text the
    service wrote itself, never request data (no URL, token, body or identifier).
    """

    status_code = 400
    issue_code = "invalid"
    reason = "invalid-request"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: list[str] | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression or []
        if reason is not None:
            self.reason = reason
        self.detail = detail

    def operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issue_code, self.diagnostics, self.expression)

    def log_fields(self) -> dict[str, Any]:
        """What the error line may say beyond status and reason (never the diagnostics: they can
        quote the caller's text, such as an unknown service id)."""
        return {"expression": self.expression, "detail": self.detail}


class BadRequest(CdsError):
    status_code = 400
    issue_code = "invalid"


class UnknownService(CdsError):
    status_code = 404
    issue_code = "not-found"
    reason = "unknown-service"


class PrefetchUnavailable(CdsError):
    """Data is needed, prefetch did not bring it, and the FHIR server cannot be used (412)."""

    status_code = 412
    issue_code = "incomplete"
    reason = "prefetch-missing"


class ServiceUnavailable(CdsError):
    """A dependency the answer needs (the store) is down: 503 with `Retry-After`."""

    status_code = 503
    issue_code = "transient"
    reason = "store-unavailable"
    retry_after_seconds = 5


def operation_outcome(
    code: str, diagnostics: str, expression: list[str] | None = None, severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def pydantic_location(loc: tuple[int | str, ...], root: str = "") -> str:
    """("context", "draftOrders", "entry", 0) -> "context.draftOrders.entry[0]"."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "body"
