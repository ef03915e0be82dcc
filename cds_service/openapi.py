"""The service's OpenAPI document: request bodies the handlers parse themselves, and the error
answers the service really gives.

Routes read raw bodies, so FastAPI cannot infer their schema; `body_schema(Model)` gives the
pydantic JSON Schema with its definitions registered under components/schemas, so the
published document resolves (schemathesis and client generators read it).

Errors: FastAPI documents a 422 the service never sends (validation errors are 400
OperationOutcomes). `install` drops it and documents, per operation, each 4xx/5xx the service
can answer, with the OperationOutcome schema:
- a request body: 400 (not JSON, wrong shape) and 413 (over CDS_MAX_BODY_BYTES);
- query or path parameters: 400; a path parameter (the service id): 404;
- the CDS routes (behind the EHR JWT): 401, and 503 when the store (jti replay cache) is down;
- what `EXTRA_ERRORS` names (412 for a hook call's FHIR fallback, 503 for readiness).
A route can name more with `responses=error_responses(...)`; tests/test_openapi_fuzz.py checks
that every answer it provokes is documented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_COMPONENTS: dict[str, Any] = {}
REF_TEMPLATE = "#/components/schemas/{model}"
OPERATION_OUTCOME_REF = REF_TEMPLATE.format(model="OperationOutcome")

# FHIR R4 OperationOutcome, as far as this service fills it (errors.operation_outcome).
OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "description": "FHIR R4 OperationOutcome (http://hl7.org/fhir/R4/operationoutcome.html)",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: the body is not JSON or has the wrong shape, a field or parameter is "
    "invalid (the OperationOutcome names it)",
    401: "Missing or invalid EHR JWT (authentication required); no detail is given",
    404: "No CDS service with this id",
    412: "Data the service needs is not in the prefetch and cannot be read from `fhirServer` "
    "(absent, not allow-listed, no `fhirAuthorization`, unreachable or failing)",
    413: "Request body over CDS_MAX_BODY_BYTES",
    503: "The store (database) is unavailable; retry after `Retry-After` seconds",
}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra for a JSON request body of `model`."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    _COMPONENTS.update(schema.pop("$defs", {}))
    _COMPONENTS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
            },
        }
    }


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented error answer: an OperationOutcome."""
    response: dict[str, Any] = {
        "description": description or ERROR_DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": OPERATION_OUTCOME_REF}}},
    }
    if status == 503:
        response["headers"] = {
            "Retry-After": {"description": "seconds", "schema": {"type": "integer"}}
        }
    return response


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: these errors, each an OperationOutcome."""
    return {status: error_response(status) for status in statuses}


# The routes behind the EHR JWT (CONTRACT: discovery, the services, feedback): 401, and 503 when
# the jti replay store is down. Feedback needs the store too (503, covered by the prefix).
AUTHENTICATED_PREFIX = "/cds-services"
# Each operation's errors beyond what its shape says, by (method, path).
EXTRA_ERRORS: dict[tuple[str, str], set[int]] = {
    # The FHIR fallback queries when prefetch is missing.
    ("post", "/cds-services/{service_id}"): {412},
    ("get", "/readyz"): {503},
}


def operation_errors(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer (see the module docstring)."""
    statuses = set(EXTRA_ERRORS.get((method, path), set()))
    if "requestBody" in operation:
        statuses |= {400, 413}
    parameters = operation.get("parameters", [])
    if parameters:
        statuses.add(400)  # RequestValidationError is answered as a 400 OperationOutcome
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if path == AUTHENTICATED_PREFIX or path.startswith(AUTHENTICATED_PREFIX + "/"):
        statuses |= {401, 503}
    return statuses


def document_errors(document: dict[str, Any]) -> None:
    """Drop FastAPI's 422 and document each operation's real error answers."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(operation_errors(method, path, operation)):
                responses.setdefault(str(status), error_response(status))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["OperationOutcome"] = OPERATION_OUTCOME_SCHEMA
    if "#/components/schemas/HTTPValidationError'" not in repr(document.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def install(app: FastAPI) -> None:
    """Add the body schemas and the error answers to the app's generated OpenAPI document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in _COMPONENTS.items():
                schemas.setdefault(name, schema)
            document_errors(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
