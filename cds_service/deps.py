"""FastAPI dependency aliases; only hooks/ and main use them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated

import httpx
from fastapi import Depends, Request

from cds_service.config import Settings
from cds_service.store.card_log_writer import CardLogWriter
from cds_service.store.db import Store


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client
    return client


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_card_log(request: Request) -> CardLogWriter:
    writer: CardLogWriter = request.app.state.card_log
    return writer


Clock = Callable[[], datetime]


async def get_clock(request: Request) -> Clock:
    """The injected clock: now, as an aware datetime (tests fix it)."""
    clock: Clock = request.app.state.clock
    return clock


def local_date(moment: datetime) -> date:
    """ "Today" for the rules (RULES.md: the request's date): the server's local date at `moment`."""
    return moment.astimezone().date()


async def get_uuid_factory(request: Request) -> Callable[[], str]:
    factory: Callable[[], str] = request.app.state.new_uuid
    return factory


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
StoreDep = Annotated[Store, Depends(get_store)]
CardLogDep = Annotated[CardLogWriter, Depends(get_card_log)]
ClockDep = Annotated[Clock, Depends(get_clock)]
UuidDep = Annotated[Callable[[], str], Depends(get_uuid_factory)]
