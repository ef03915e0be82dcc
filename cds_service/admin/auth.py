"""The operator's token for the admin pages (/analytics, /docs, /openapi.json, /metrics).

With CDS_ADMIN_TOKEN set, a request must carry it as `Authorization: Bearer <token>` or
`?token=<token>` (a browser cannot add a header to a link; the access-log filter in
logging_setup redacts the query value). Without it, the pages are open only when
CDS_REQUIRE_AUTH is false (local development): production never serves them unauthenticated.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import Request, Response

from cds_service.config import Settings


def supplied_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


def admin_allowed(request: Request, settings: Settings) -> bool:
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected:
        return not settings.require_auth
    given = supplied_token(request)
    # Constant-time comparison: the token is a shared secret.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def refused(realm: str, headers: Mapping[str, str]) -> Response:
    """The 401 an admin page answers without the token: `headers` and the Bearer challenge."""
    return Response(
        status_code=401, headers={**headers, "WWW-Authenticate": f'Bearer realm="{realm}"'}
    )
