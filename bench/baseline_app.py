"""The bare-stack baseline: FastAPI on the same uvicorn, parse the same body with orjson, one card.

Every figure of the service is reported as a ratio to this app, so the numbers mean something on
a noisy shared machine.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

app = FastAPI()

_CARD = orjson.dumps(
    {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000001",
                "summary": "Baseline card",
                "indicator": "info",
                "source": {"label": "baseline"},
            }
        ]
    }
)


@app.post("/cds-services/{service_id}")
async def call(service_id: str, request: Request) -> Response:  # noqa: ARG001 (route shape only)
    body = orjson.loads(await request.body())
    if not isinstance(body, dict) or "hook" not in body:
        return Response(status_code=400)
    return Response(content=_CARD, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    """Ready: the bench harness waits for this, as it does for the service's own /healthz."""
    return Response(content=b"ok", media_type="text/plain")
