"""Service settings (pydantic-settings, env prefix `CDS_`), reached through `get_settings()`."""

from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cds_service.logic.config import RuleConfig
from cds_service.records.fhir_urls import UnsafeFhirUrl, allowed_by, parse_base

LOOPBACK_ALLOWLIST = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
# The base URL when CDS_PUBLIC_BASE_URL is unset and no `serve --host/--port` says otherwise
# (create_app in tests, gunicorn).
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
DATABASE_FILE_NAME = "cds-service.db"


def default_data_dir() -> Path:
    """$XDG_DATA_HOME/cds-service, else ~/.local/share/cds-service: one place whatever the working
    directory. XDG_DATA_HOME counts only when absolute (the XDG spec ignores a relative one)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "cds-service"
    try:
        home = Path.home()
    except RuntimeError:
        raise ValueError("not set, and there is no home directory to put it in") from None
    return home / ".local" / "share" / "cds-service"


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / DATABASE_FILE_NAME}"


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback name or address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerTrust(BaseModel):
    """One CDS_TRUSTED_ISSUERS entry in its long form: the issuer's JWKS location(s) and, when its
    JWT `aud` is configured by the health system (Epic), the base URL it puts there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jwks: str | list[str]
    public_base_url: str | None = None
    # Pinned keys for a `jku` the issuer always sends (the CDS Hooks sandbox): jku URL -> local
    # JWKS file. A token with a mapped jku is verified with that file and the URL is never
    # fetched (offline set-ups, key pinning); any other jku is still refused.
    jku: dict[str, str] = Field(default_factory=dict)

    @field_validator("public_base_url")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


class Settings(BaseSettings):
    """Every setting of the contract (CONTRACT.md, Configuration), with its default."""

    model_config = SettingsConfigDict(
        env_prefix="CDS_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    require_auth: bool = True
    # issuer -> JWKS location (https URL or a local file path); a list names several allowed JWKS/jku URLs.
    trusted_issuers: dict[str, str | list[str] | IssuerTrust] = Field(default_factory=dict)
    # Optional: unset, `cds-service serve` uses the address it serves (and passes it to its
    # workers); `"public_base_url" in model_fields_set` tells whether the operator set it.
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    fhir_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_ALLOWLIST)
    )
    fhir_allow_anonymous: bool = False
    # Declared before database_url, whose default lives in it. None/"" = default_data_dir().
    data_dir: Path = Field(default=None, validate_default=True)
    # None/"" = SQLite in data_dir.
    database_url: str = Field(default=None, validate_default=True)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    # Largest FHIR answer read, counted after decompression; larger = 412 (CONTRACT v2).
    fhir_max_response_bytes: int = Field(20_000_000, ge=1024)
    # Most draft orders one hook call may carry; more = 400 (CONTRACT v2).
    max_draft_orders: int = Field(500, ge=1, le=100_000)

    # Operational knobs beyond the contract table.
    # `cds-service serve`: a connection must complete each request head within this (slowloris).
    http_head_timeout_seconds: float = Field(10.0, gt=0, le=300)
    fhir_timeout_seconds: float = Field(4.0, gt=0)
    fhir_max_pages: int = Field(20, ge=1)
    # `_count` asked of fallback searches (servers cap it at their own maximum).
    fhir_page_size: int = Field(500, ge=1, le=10_000)
    jwks_cache_ttl_seconds: int = Field(3600, ge=0)
    jwt_leeway_seconds: int = Field(60, ge=0, le=300)
    jti_ttl_seconds: int = Field(3600, ge=3600)
    retention_days: int = Field(400, ge=1)
    smart_client_id: str = "lbp-cds-startback"
    log_level: str = "INFO"
    rules: RuleConfig = Field(default_factory=RuleConfig)
    # /analytics: `Authorization: Bearer <token>` or `?token=`; unset = open only without require_auth.
    admin_token: SecretStr | None = None

    @field_validator("fhir_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("fhir_allowlist")
    @classmethod
    def _normalise_allowlist(cls, value: list[str]) -> list[str]:
        for prefix in value:
            try:
                parse_base(prefix)
            except UnsafeFhirUrl as exc:
                raise ValueError(
                    f"CDS_FHIR_ALLOWLIST entry is not a plain http(s) base URL ({exc}): {prefix!r}"
                ) from None
        return [prefix.rstrip("/") for prefix in value]

    @field_validator("public_base_url")
    @classmethod
    def _strip_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        # `info` as uvicorn spells it; the logging module knows only `INFO`.
        return value.strip().upper()

    @field_validator("data_dir", mode="before")
    @classmethod
    def _default_data_dir(cls, value: Any) -> Any:
        return default_data_dir() if value is None or value == "" else value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Absolute, so the path the start-up line prints is the one used whatever the cwd.
        return value.expanduser().absolute()

    @field_validator("database_url", mode="before")
    @classmethod
    def _default_database_url(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == "":
            data_dir = info.data.get("data_dir")
            # A data_dir that failed validation is reported on its own; no second error here.
            return default_database_url(data_dir) if data_dir is not None else ""
        return value

    def fhir_server_allowed(self, url: str) -> bool:
        """True when `url` is a safe http(s) URL at or below an allow-listed prefix; never raises.

        "http://127.0.0.1" admits any port on that host; a path prefix admits sub-paths.
        """
        return allowed_by(url, self.fhir_allowlist)


@lru_cache
def get_settings() -> Settings:
    """The process settings, read once from the environment."""
    return Settings()
