"""CDS Hooks client authentication: the EHR's signed JWT on every call (SPEC §Trusting CDS Clients).

This module is the single place a request is authenticated. Any failure is a 401 with no detail;
the reason goes to the log only.
"""

from __future__ import annotations

import logging

from fastapi import Request

from cds_service.errors import CdsError

log = logging.getLogger("cds_service.security")


class Unauthorized(CdsError):
    status_code = 401
    issue_code = "login"

    def __init__(self, reason: str) -> None:
        super().__init__("Unauthorized")
        self.reason = reason


async def authenticate(request: Request) -> None:
    """Verify the bearer JWT when CDS_REQUIRE_AUTH is on."""
    settings = request.app.state.settings
    if not settings.require_auth:
        return
    # JWT verification (issue 6) is not wired yet: with auth required, nothing is trusted.
    raise Unauthorized("no JWT verifier is configured")
