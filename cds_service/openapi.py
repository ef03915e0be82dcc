"""OpenAPI for request bodies the handlers parse themselves (orjson, 400 OperationOutcomes).

Routes read raw bodies, so FastAPI cannot infer their schema; `body_schema(Model)` gives the
pydantic JSON Schema with its definitions registered under components/schemas, so the
published document resolves (schemathesis and client generators read it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_COMPONENTS: dict[str, Any] = {}
REF_TEMPLATE = "#/components/schemas/{model}"


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


def install(app: FastAPI) -> None:
    """Add the body schemas to the app's generated OpenAPI document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in _COMPONENTS.items():
                schemas.setdefault(name, schema)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
