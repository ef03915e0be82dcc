"""The ASGI application: `create_app(settings)` and `cds_service.main:app`."""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__, metrics, openapi, request_context
from cds_service.admin import analytics, docs, scrape
from cds_service.apps import red_flags as red_flags_app
from cds_service.apps import self_care
from cds_service.apps import startback as startback_app
from cds_service.config import Settings
from cds_service.errors import CdsError, ServiceUnavailable, operation_outcome, pydantic_location
from cds_service.hooks import discovery, feedback, service_call
from cds_service.logging_setup import configure_logging
from cds_service.logic import terminology
from cds_service.middleware import AnswerEveryRequest, BodySizeLimit, GcPauseMiddleware
from cds_service.responses import json_response
from cds_service.security import JwksCache
from cds_service.settings_check import check_settings, load_settings, log_settings_warnings
from cds_service.store.card_log_writer import CardLogWriter
from cds_service.store.db import Store
from cds_service.store.maintenance import StoreMaintenance
from cds_service.store.setup import ensure_data_dir
from cds_service.telemetry import RequestTelemetry

log = logging.getLogger("cds_service")


def warm_up() -> None:
    """Build what is otherwise built lazily, so the first request is not the slow one."""
    terminology.warm_up()
    from fhir.resources.R4B import get_fhir_model_class

    for name in ("ServiceRequest", "MedicationRequest", "Task", "Questionnaire"):
        get_fhir_model_class(name)
    # Long-lived start-up objects (value sets, models) leave the collector's scans for good.
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    new_uuid: Callable[[], str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the service. Tests pass settings, a fixed clock, a uuid factory and a transport."""
    settings = settings or load_settings()
    # Checked before logging is configured: an unknown CDS_LOG_LEVEL is one of the errors.
    check_settings(settings)
    configure_logging(settings.log_level)
    log_settings_warnings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()
        ensure_data_dir(settings)
        store = Store(settings.database_url)
        store.migrate()
        async with httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.fhir_timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
        ) as client:
            app.state.http_client = client
            app.state.store = store
            app.state.jwks_cache = JwksCache(settings.jwks_cache_ttl_seconds)
            card_log = CardLogWriter(store)
            app.state.card_log = card_log
            card_log.start()
            maintenance = StoreMaintenance(
                store, retention_days=settings.retention_days, clock=app.state.clock
            )
            maintenance.start()
            try:
                yield
            finally:
                # The card log is written before the store closes (uvicorn has answered every
                # call in flight by now); see card_log_writer for what a stop guarantees.
                try:
                    try:
                        await maintenance.stop()
                    finally:
                        await card_log.stop()
                finally:
                    store.close()
                    metrics.forget_this_process()

    app = FastAPI(
        title="Low back pain CDS Hooks service",
        version=__version__,
        description="CDS Hooks 2.0 services for low back pain (see README and CONTRACT.md).",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI from a CDN and are open to anyone: admin/docs.py serves
        # /docs and /openapi.json from local files, behind CDS_ADMIN_TOKEN.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock or (lambda: datetime.now(UTC))
    app.state.new_uuid = new_uuid or (lambda: str(uuid.uuid4()))

    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        expose_headers=["Location", "Content-Location", "X-Request-ID"],
        max_age=600,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(GcPauseMiddleware)
    app.add_middleware(AnswerEveryRequest)
    # Added last: outermost of ours, so every answer (AnswerEveryRequest's 500 too) has its id.
    app.add_middleware(RequestTelemetry)

    @app.exception_handler(CdsError)
    async def cds_error(_request: Request, exc: CdsError) -> Response:
        request_context.note_error(exc.reason, **exc.log_fields())
        headers: dict[str, str] = {}
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after_seconds)
        return json_response(exc.operation_outcome(), exc.status_code, headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        where = [pydantic_location(tuple(e["loc"])) for e in errors][:20]
        message = errors[0]["msg"] if errors else "invalid request"
        request_context.note_error("invalid-request", expression=where)
        return json_response(operation_outcome("invalid", message, where), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return json_response(
            operation_outcome(code, str(exc.detail)), exc.status_code, dict(exc.headers or {})
        )

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """Liveness probe: no auth, no PHI."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], summary="Readiness")
    async def readyz(request: Request) -> dict[str, str]:
        """Readiness probe: 200 when the store answers a ping, else 503 (no auth, no PHI)."""
        store: Store = request.app.state.store
        if not await store.answers():
            raise ServiceUnavailable("The store (database) is not answering")
        return {"status": "ready"}

    openapi.install(app)
    app.include_router(discovery.router)
    app.include_router(service_call.router)
    app.include_router(feedback.router)
    app.include_router(analytics.router)
    app.include_router(startback_app.router)
    app.include_router(red_flags_app.router)
    app.include_router(self_care.router)
    app.include_router(docs.router)
    app.include_router(scrape.router)
    return app


def __getattr__(name: str) -> FastAPI:
    # `cds_service.main:app` is built on first access, so importing this module has no side effects.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
