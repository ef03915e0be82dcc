"""Domain errors, each with its HTTP status; one handler in main.py turns them into responses.

Every non-2xx answer carries a FHIR OperationOutcome (CDS Hooks 3.0-ballot recommends it;
2.0 allows it) whose issue names the offending field in `expression`.
"""

from __future__ import annotations

from typing import Any


class CdsError(Exception):
    """An error with an HTTP status and an OperationOutcome issue."""

    status_code = 400
    issue_code = "invalid"

    def __init__(self, diagnostics: str, *, expression: list[str] | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression or []

    def operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issue_code, self.diagnostics, self.expression)


class BadRequest(CdsError):
    status_code = 400
    issue_code = "invalid"


class UnknownService(CdsError):
    status_code = 404
    issue_code = "not-found"


class PayloadTooLarge(CdsError):
    status_code = 413
    issue_code = "too-costly"


class PrefetchUnavailable(CdsError):
    """Data is needed, prefetch did not bring it, and the FHIR server cannot be used (412)."""

    status_code = 412
    issue_code = "incomplete"


class ServiceUnavailable(CdsError):
    """A dependency the answer needs (the store) is down: 503 with `Retry-After`."""

    status_code = 503
    issue_code = "transient"
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
