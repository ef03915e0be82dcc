"""JSON responses serialised with orjson (fast, and no `null`s are produced by our models)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
