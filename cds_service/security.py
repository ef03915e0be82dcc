"""CDS Hooks client authentication: the EHR's signed JWT on every call (SPEC §Trusting CDS Clients).

This module is the single place a request is authenticated. Any failure is a 401 with no detail;
the reason goes to the request's error line only (reason code `jwt-missing` or `jwt-invalid`, the
why, `iss`, `kid` and `jti`, never the token).

Checks, in the order of the CDS Hooks best-practices page:
1. a bearer token whose header names an allow-listed asymmetric `alg` and a `kid`;
2. `iss` is a trusted issuer (CDS_TRUSTED_ISSUERS: issuer -> JWKS location(s));
3. `jku`, when present, is one of that issuer's configured JWKS URLs, or one its entry pins to a
   local JWKS file (then the file is read and the URL never fetched); any other `jku` is refused
   and never fetched;
4. the key `kid` from the issuer's JWKS has the type and curve the `alg` needs;
5. the signature, `aud` = public base URL + path called, `exp`, `iat` (not in the future, nor
   older than CDS_JTI_TTL_SECONDS), with a small clock-skew leeway; `exp`, `iat` and `nbf` must be
   JSON numbers (RFC 7519 NumericDate), not strings or booleans;
6. `jti` was never seen before (shared store, so every replica refuses a replay).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cds_service.config import IssuerTrust, Settings
from cds_service.errors import CdsError

log = logging.getLogger("cds_service.security")

# CDS Hooks: "SHALL NOT be signed using the none algorithm" nor "any symmetric algorithm";
# ES384 and RS384 are RECOMMENDED. Each allowed alg names the key type (and curve) it needs, so a
# key is never used with an algorithm of another family.
ALLOWED_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16_384
MAX_JTI_CHARS = 255
MAX_JWKS_BYTES = 1_000_000
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
# An unknown kid may mean the client rotated its keys: refresh the JWKS once for that kid, and
# never more often than this per JWKS location (random kids must not turn into a fetch storm).
JWKS_MIN_REFRESH_SECONDS = 10.0
MAX_KIDS_TRIED = 256


class Unauthorized(CdsError):
    """401 without detail to the caller; `detail` (why) and what was seen of the token (`iss`,
    `kid`, `jti`, never the token) go to the request's error line only."""

    status_code = 401
    issue_code = "login"
    reason = "jwt-invalid"

    def __init__(self, why: str, *, reason: str | None = None) -> None:
        super().__init__("Unauthorized", reason=reason, detail=why)
        self.seen = _Seen()

    def log_fields(self) -> dict[str, Any]:
        return {
            "detail": self.detail,
            "iss": _short(self.seen.iss),
            "kid": _short(self.seen.kid),
            "jti": _short(self.seen.jti),
        }


class JwksUnavailable(Exception):
    """A JWKS location could not be read or did not hold a JWK Set."""


def jwks_locations(settings: Settings) -> dict[str, tuple[str, ...]]:
    """CDS_TRUSTED_ISSUERS as issuer -> its JWKS locations (one value or a list)."""
    out: dict[str, tuple[str, ...]] = {}
    for issuer, value in settings.trusted_issuers.items():
        jwks = value.jwks if isinstance(value, IssuerTrust) else value
        out[issuer] = (jwks,) if isinstance(jwks, str) else tuple(jwks)
    return out


def pinned_jku(settings: Settings, issuer: str) -> dict[str, str]:
    """The issuer's `jku` URLs that are verified with a local JWKS file instead (long form only)."""
    trust = settings.trusted_issuers.get(issuer)
    return dict(trust.jku) if isinstance(trust, IssuerTrust) else {}


def audience_base(settings: Settings, issuer: str) -> str:
    """The base URL this issuer's JWTs carry in `aud`: its own entry's, else CDS_PUBLIC_BASE_URL."""
    trust = settings.trusted_issuers.get(issuer)
    if isinstance(trust, IssuerTrust) and trust.public_base_url:
        return trust.public_base_url
    return settings.public_base_url


def check_trusted_issuers(settings: Settings) -> None:
    """Refuse at start-up a JWKS location that is neither an https URL nor a local file path."""
    for issuer, locations in jwks_locations(settings).items():
        if not locations:
            raise ValueError(f"issuer {issuer!r} names no JWKS location")
        for location in locations:
            if "://" in location and not location.startswith("https://"):
                raise ValueError(
                    f"issuer {issuer!r}: JWKS location {location!r} must be an "
                    "https URL or a local file path"
                )
        for jku, pinned in pinned_jku(settings, issuer).items():
            if not jku.startswith("https://"):
                raise ValueError(f"issuer {issuer!r}: jku {jku!r} must be an https URL")
            if "://" in pinned or not pinned:
                raise ValueError(
                    f"issuer {issuer!r}: the JWKS pinned for jku {jku!r} must be a local file path"
                )


@dataclass
class _JwkSet:
    keys: dict[str, dict[str, Any]]
    fetched_at: float


class JwksCache:
    """JWK Sets by location (https URL or file), kept `ttl_seconds`; one per app (app.state)."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        min_refresh_seconds: float = JWKS_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._sets: dict[str, _JwkSet] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._kids_tried: dict[str, set[str]] = {}
        self._last_forced: dict[str, float] = {}
        self.fetches = 0

    async def key(self, location: str, kid: str, http: httpx.AsyncClient) -> dict[str, Any] | None:
        """The JWK with this kid at this location, or None (after at most one forced refresh)."""
        jwk_set = await self._current(location, http)
        if kid in jwk_set.keys:
            return jwk_set.keys[kid]
        now = self._clock()
        tried = self._kids_tried.setdefault(location, set())
        if (
            kid in tried
            or len(tried) >= MAX_KIDS_TRIED
            or now - self._last_forced.get(location, -1e18) < self.min_refresh_seconds
        ):
            return None
        tried.add(kid)
        self._last_forced[location] = now
        jwk_set = await self._refresh(location, http, seen=jwk_set)
        return jwk_set.keys.get(kid)

    async def _current(self, location: str, http: httpx.AsyncClient) -> _JwkSet:
        jwk_set = self._sets.get(location)
        if jwk_set is not None and self._clock() - jwk_set.fetched_at < self.ttl_seconds:
            return jwk_set
        return await self._refresh(location, http, seen=jwk_set)

    async def _refresh(
        self, location: str, http: httpx.AsyncClient, *, seen: _JwkSet | None
    ) -> _JwkSet:
        lock = self._locks.setdefault(location, asyncio.Lock())
        async with lock:
            current = self._sets.get(location)
            if current is not None and current is not seen:
                return current  # another request refreshed it while this one waited
            try:
                keys = parse_jwks(await self._load(location, http))
            except JwksUnavailable as exc:
                if current is None:
                    raise
                # Keep verifying with the keys we have; try the location again a little later.
                log.warning(
                    "JWKS refresh failed; using the cached set",
                    extra={"jwks": location, "error": str(exc)},
                )
                now = self._clock()
                if now - current.fetched_at >= self.ttl_seconds:
                    current.fetched_at = now - max(self.ttl_seconds - self.min_refresh_seconds, 0)
                return current
            fresh = _JwkSet(keys=keys, fetched_at=self._clock())
            if current is None or self._clock() - current.fetched_at >= self.ttl_seconds:
                self._kids_tried.pop(location, None)
            self._sets[location] = fresh
            return fresh

    async def _load(self, location: str, http: httpx.AsyncClient) -> bytes:
        self.fetches += 1
        if location.startswith("https://"):
            try:
                response = await http.get(
                    location,
                    headers={"Accept": "application/jwk-set+json, application/json"},
                    timeout=JWKS_FETCH_TIMEOUT_SECONDS,
                    follow_redirects=False,
                )
            except httpx.HTTPError as exc:
                raise JwksUnavailable(f"{type(exc).__name__} fetching {location}") from exc
            if response.status_code != 200:
                raise JwksUnavailable(f"{location} answered HTTP {response.status_code}")
            if len(response.content) > MAX_JWKS_BYTES:
                raise JwksUnavailable(f"{location} answered more than {MAX_JWKS_BYTES} bytes")
            return response.content
        if "://" in location:
            raise JwksUnavailable(f"JWKS location {location!r} is not https")
        try:
            return await run_in_threadpool(Path(location).read_bytes)
        except OSError as exc:
            raise JwksUnavailable(f"cannot read JWKS file {location}: {exc.strerror}") from exc


def parse_jwks(raw: bytes) -> dict[str, dict[str, Any]]:
    """A JWK Set document -> its keys by kid (keys without a kid cannot be selected, so skipped)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JwksUnavailable("JWKS is not JSON") from exc
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list):
        raise JwksUnavailable("JWKS has no keys array")
    out: dict[str, dict[str, Any]] = {}
    for jwk in keys:
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
            out.setdefault(jwk["kid"], jwk)
    return out


def verification_key(jwk: dict[str, Any], alg: str) -> Any:
    """The public key of `jwk` for `alg`, refused when the JWK is of another type or purpose."""
    kty, crv = ALLOWED_ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise Unauthorized(f"key type {jwk.get('kty')}/{jwk.get('crv')} does not fit alg {alg}")
    if jwk.get("alg") not in (None, alg):
        raise Unauthorized(f"key is for alg {jwk.get('alg')}, token says {alg}")
    if jwk.get("use") not in (None, "sig"):
        raise Unauthorized("key is not a signature key (use)")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise Unauthorized("key may not verify (key_ops)")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized(f"unusable JWK: {type(exc).__name__}") from exc
    if kty == "RSA" and getattr(key, "key_size", 0) < MIN_RSA_BITS:
        raise Unauthorized(f"RSA key shorter than {MIN_RSA_BITS} bits")
    return key


def expected_audience(settings: Settings, request: Request, issuer: str | None = None) -> str:
    """public base URL + the path called (not request.url: proxies change scheme and host)."""
    path = request.url.path
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    base = audience_base(settings, issuer) if issuer else settings.public_base_url
    return base + path


@dataclass
class _Seen:
    """What the log may say about a refused token: never the token itself."""

    iss: str | None = None
    kid: str | None = None
    jti: str | None = None


async def authenticate(request: Request) -> None:
    """Verify the bearer JWT when CDS_REQUIRE_AUTH is on; 401 without detail otherwise."""
    settings: Settings = request.app.state.settings
    if not settings.require_auth:
        return
    seen = _Seen()
    try:
        await _verify(request, settings, seen)
    except Unauthorized as exc:
        # The request's one error line (telemetry) says why, with what was seen of the token.
        exc.seen = seen
        raise


async def _verify(request: Request, settings: Settings, seen: _Seen) -> None:
    token = _bearer_token(request)
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"malformed JWT: {type(exc).__name__}") from exc

    alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
    seen.kid = kid if isinstance(kid, str) else None
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise Unauthorized(f"alg {alg!r} is not allowed")
    if header.get("typ") not in (None, "JWT") and str(header.get("typ")).upper() != "JWT":
        raise Unauthorized("typ is not JWT")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("no kid in the JWT header")

    iss = unverified.get("iss")
    seen.iss = iss if isinstance(iss, str) else None
    locations = jwks_locations(settings).get(iss) if isinstance(iss, str) else None
    if not locations or not isinstance(iss, str):
        raise Unauthorized("issuer is not trusted")
    if jku is not None:
        pinned = pinned_jku(settings, iss)
        if isinstance(jku, str) and jku in pinned:
            # The operator pinned this jku to a local file: the URL itself is never fetched.
            locations = (pinned[jku],)
        elif not isinstance(jku, str) or not jku.startswith("https://") or jku not in locations:
            raise Unauthorized("jku is not a JWKS URL configured for this issuer")
        else:
            locations = (jku,)
    now = time.time()
    leeway = settings.jwt_leeway_seconds
    # PyJWT reads numeric strings ("exp": "1798761600") and booleans as dates: RFC 7519 says a
    # NumericDate is a JSON number. Checked before the JWKS is read: a malformed token costs no
    # fetch.
    iat = _numeric_date(unverified, "iat")
    _numeric_date(unverified, "exp")
    _numeric_date(unverified, "nbf", required=False)
    # A jti is remembered for CDS_JTI_TTL_SECONDS: a token issued before that could be replayed
    # once its jti is forgotten, so it is refused, whatever its exp says.
    if iat is not None and iat < now - settings.jti_ttl_seconds - leeway:
        raise Unauthorized("iat is older than CDS_JTI_TTL_SECONDS")

    cache: JwksCache = request.app.state.jwks_cache
    http: httpx.AsyncClient = request.app.state.http_client
    jwk = None
    for location in locations:
        try:
            jwk = await cache.key(location, kid, http)
        except JwksUnavailable as exc:
            log.warning("JWKS unavailable", extra={"jwks": location, "error": str(exc)})
            continue
        if jwk is not None:
            break
    if jwk is None:
        raise Unauthorized("kid not found in the issuer's JWKS")
    key = verification_key(jwk, alg)

    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=expected_audience(settings, request, iss),
            issuer=iss,
            leeway=leeway,
            options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"{type(exc).__name__}: {exc}") from exc

    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise Unauthorized("jti is not a usable string")
    seen.jti = jti
    # A jti is remembered for CDS_JTI_TTL_SECONDS (1 h, the spec's "maximum duration of all
    # JWTs"). A token valid for longer could be replayed once its jti is forgotten, so it is
    # refused; real clients sign for minutes (the sandbox: 5).
    if float(claims["exp"]) > now + settings.jti_ttl_seconds:
        raise Unauthorized("exp is further away than CDS_JTI_TTL_SECONDS")
    keep_until = datetime.fromtimestamp(now, UTC) + timedelta(
        seconds=settings.jti_ttl_seconds + leeway
    )
    first_use = await run_in_threadpool(request.app.state.store.remember_jti, iss, jti, keep_until)
    if not first_use:
        raise Unauthorized("jti was already used (replay)")


# Beyond this a float loses whole seconds; no real JWT date comes near (year 285 million).
MAX_NUMERIC_DATE = 2**53


def _numeric_date(claims: dict[str, Any], name: str, *, required: bool = True) -> float | None:
    """A NumericDate claim: a finite JSON number (int or float, not bool, not a string)."""
    if name not in claims:
        if required:
            raise Unauthorized(f"{name} is missing")
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"{name} is not a JSON number")
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_NUMERIC_DATE:
        raise Unauthorized(f"{name} is not a usable date")
    return float(value)


def _bearer_token(request: Request) -> str:
    value = request.headers.get("authorization")
    if not value:
        raise Unauthorized("no Authorization header", reason="jwt-missing")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization is not a bearer token", reason="jwt-missing")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("bearer token is too long")
    return token


def _short(value: str | None) -> str | None:
    return value[:200] if value is not None else None
