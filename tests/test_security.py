"""EHR JWT verification (CDS Hooks 2.0 §Trusting CDS Clients): every rejection is a bare 401.

Tokens are signed for real with ES384 and RS384 keys made here; the JWKS is a local file or an
https URL answered by respx at the app's transport.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.config import IssuerTrust, Settings
from cds_service.main import create_app
from cds_service.security import JwksCache, Unauthorized, parse_jwks, verification_key
from cds_service.settings_check import SettingsError
from tests.conftest import StartedClients
from tests.contract import assert_response_contract
from tests.factories import chart_prefetch, hook_request
from tests.jwt_helpers import (
    BASE_URL,
    ISSUER,
    SERVICE_PATH,
    SigningKey,
    bearer,
    client_claims,
    es_key,
    forged_token,
    jwks,
    rs_key,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir" / "cds-hooks"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
EHR_JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"


@pytest.fixture(scope="module")
def es384() -> SigningKey:
    return es_key("es384-key")


@pytest.fixture(scope="module")
def rs384() -> SigningKey:
    return rs_key("rs384-key")


@pytest.fixture
def jwks_router() -> Iterator[respx.MockRouter]:
    """The app's outbound transport: only the JWKS URLs a test mocks answer."""
    with respx.MockRouter(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def jwks_file(tmp_path: Path, es384: SigningKey, rs384: SigningKey) -> Path:
    path = tmp_path / "ehr-jwks.json"
    path.write_text(json.dumps(jwks(es384, rs384)))
    return path


@pytest.fixture
def auth_client(
    settings_factory: Callable[..., Settings],
    jwks_router: respx.MockRouter,
    jwks_file: Path,
    started_clients: StartedClients,
) -> Callable[..., TestClient]:
    """A service that requires JWTs from ISSUER, whose JWKS is the local file by default."""

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "require_auth": True,
            "public_base_url": BASE_URL,
            "trusted_issuers": {ISSUER: str(jwks_file)},
        }
        values.update(overrides)
        transport = httpx.MockTransport(jwks_router.async_handler)
        return started_clients.start(settings_factory(**values), transport=transport)

    return make


@pytest.fixture
def security_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    logger = logging.getLogger("cds_service")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def patient_view(client: TestClient, token: str | None, path: str = SERVICE_PATH) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    body = hook_request("patient-view", prefetch=chart_prefetch())
    return client.post(path, json=body, headers=headers)


def assert_bare_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in body["issue"]] == ["Unauthorized"]
    assert "expression" not in body["issue"][0]


def refusal_reasons(records: list[logging.LogRecord]) -> list[str]:
    """Why each refused token was refused: the `detail` of the 401 error lines."""
    return [
        str(getattr(r, "detail", ""))
        for r in records
        if r.getMessage() == "error answer" and getattr(r, "status", None) == 401
    ]


# ---- accepted -------------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["es384", "rs384"])
def test_signed_token_is_accepted_on_every_cds_route(
    auth_client, key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    client = auth_client()

    discovery = client.get("/cds-services", headers=bearer(key.sign("/cds-services")))
    assert discovery.status_code == 200
    assert len(discovery.json()["services"]) == 4

    response = patient_view(client, key.sign())
    assert response.status_code == 200
    assert_response_contract(response.json(), "patient-view")

    feedback_path = "/cds-services/lbp-patient-view/feedback"
    feedback = json.loads((EXAMPLES / "feedback-request-accepted.json").read_text())
    stored = client.post(feedback_path, json=feedback, headers=bearer(key.sign(feedback_path)))
    assert stored.status_code == 200
    assert len(client.app.state.store.feedback_rows()) == 1


def test_healthz_needs_no_token(auth_client) -> None:
    assert auth_client().get("/healthz").status_code == 200


def test_aud_array_holding_the_url_called_is_accepted(auth_client, es384: SigningKey) -> None:
    client = auth_client()
    token = es384.sign(aud=["https://other.example.org", BASE_URL + SERVICE_PATH])
    assert patient_view(client, token).status_code == 200


def test_aud_array_without_the_url_called_is_refused(auth_client, es384: SigningKey) -> None:
    client = auth_client()
    token = es384.sign(aud=["https://other.example.org", BASE_URL + "/cds-services"])
    assert_bare_401(patient_view(client, token))


def test_issuer_with_several_jwks_locations_finds_the_kid(
    auth_client, jwks_router: respx.MockRouter, tmp_path: Path, es384: SigningKey
) -> None:
    other = tmp_path / "other-jwks.json"
    other.write_text(json.dumps(jwks(es_key("unrelated"))))
    jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: [str(other), EHR_JWKS_URL]})
    assert patient_view(client, es384.sign()).status_code == 200


def test_issuer_with_its_own_audience_base_url(
    auth_client, jwks_file: Path, es384: SigningKey
) -> None:
    """Epic's `aud` is configured by the health system: an issuer entry may name its own base."""
    trust = {"jwks": str(jwks_file), "public_base_url": "https://cds.hospital.example/lbp/"}
    client = auth_client(trusted_issuers={ISSUER: trust})
    epic_style = es384.sign(aud="https://cds.hospital.example/lbp" + SERVICE_PATH)
    assert patient_view(client, epic_style).status_code == 200
    assert_bare_401(patient_view(client, es384.sign()))  # the global base no longer counts for it


def test_issuer_entry_with_unknown_fields_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="audience"):
        Settings(require_auth=False, trusted_issuers={ISSUER: {"jwks": "x.json", "audience": "y"}})


# ---- every rejection ------------------------------------------------------------------------


def _claims_for(path: str = SERVICE_PATH, **overrides: Any) -> dict[str, Any]:
    return client_claims(BASE_URL + path, **overrides)


REJECTIONS: dict[str, tuple[Callable[[SigningKey, SigningKey], str | None], str]] = {
    "no token": (lambda _es, _rs: None, "no Authorization header"),
    "HS256 keyed with the public key": (
        lambda es, _rs: forged_token(
            {"alg": "HS256", "typ": "JWT", "kid": es.kid}, _claims_for(), es.public_pem()
        ),
        "alg 'HS256' is not allowed",
    ),
    "alg none": (
        lambda es, _rs: forged_token(
            {"alg": "none", "typ": "JWT", "kid": es.kid}, _claims_for(), None
        ),
        "alg 'none' is not allowed",
    ),
    "expired": (
        lambda es, _rs: es.sign(exp=int(time.time()) - 90, iat=int(time.time()) - 400),
        "ExpiredSignatureError",
    ),
    "iat in the future": (
        lambda es, _rs: es.sign(iat=int(time.time()) + 90),
        "ImmatureSignatureError",
    ),
    "aud of another endpoint": (
        lambda es, _rs: es.sign(path="/cds-services/lbp-order-sign"),
        "InvalidAudienceError",
    ),
    "aud on another host": (
        lambda es, _rs: es.sign(base_url="http://127.0.0.1:8000"),
        "InvalidAudienceError",
    ),
    "untrusted iss": (
        lambda es, _rs: es.sign(iss="https://evil.example.org"),
        "issuer is not trusted",
    ),
    "jku not configured for the issuer": (
        lambda es, _rs: es.sign(headers={"jku": "https://evil.example.org/jwks.json"}),
        "jku is not a JWKS URL configured",
    ),
    "unknown kid": (
        lambda _es, _rs: es_key("not-in-the-jwks").sign(),
        "kid not found",
    ),
    "right kid, other key (bad signature)": (
        lambda es, _rs: SigningKey(es_key().private, "ES384", es.kid).sign(),
        "InvalidSignatureError",
    ),
    "RSA kid with alg ES384": (
        lambda _es, rs: SigningKey(es_key().private, "ES384", rs.kid).sign(),
        "does not fit alg ES384",
    ),
    "EC P-384 kid with alg ES256": (
        lambda es, _rs: SigningKey(es_key(curve=ec.SECP256R1()).private, "ES256", es.kid).sign(),
        "does not fit alg ES256",
    ),
    "no kid": (
        lambda es, _rs: jwt.encode(_claims_for(), es.private, algorithm="ES384"),
        "no kid",
    ),
    "no jti": (lambda es, _rs: es.sign(drop=("jti",)), "MissingRequiredClaimError"),
    "no exp": (lambda es, _rs: es.sign(drop=("exp",)), "exp is missing"),
    "no iat": (lambda es, _rs: es.sign(drop=("iat",)), "iat is missing"),
    "no aud": (lambda es, _rs: es.sign(drop=("aud",)), "MissingRequiredClaimError"),
    "exp beyond the replay window": (
        lambda es, _rs: es.sign(exp=int(time.time()) + 7200),
        "exp is further away",
    ),
    "typ is not JWT": (lambda es, _rs: es.sign(headers={"typ": "at+jwt"}), "typ is not JWT"),
    "garbage": (lambda _es, _rs: "not.a.garbage", "malformed JWT"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_token_is_a_bare_401_and_the_reason_is_logged(
    auth_client, es384: SigningKey, rs384: SigningKey, security_log, case: str
) -> None:
    make_token, reason = REJECTIONS[case]
    token = make_token(es384, rs384)
    response = patient_view(auth_client(), token)
    assert_bare_401(response)
    assert any(reason in r for r in refusal_reasons(security_log)), refusal_reasons(security_log)
    if token:
        logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in security_log)
        assert token not in logged
        signature = token.split(".")[-1]
        assert not signature or signature not in logged


# ---- NumericDate claims: JSON numbers only, iat within the replay window -----------------------

# Review finding: `"exp": "<digits>"` and `"iat": 1` (1970) were accepted. Each case below is the
# exact claim sent; every one is now a bare 401 with the reason logged.
DATE_CLAIM_REJECTIONS: dict[str, tuple[Callable[[int], dict[str, Any]], str]] = {
    'exp "<now+300>" (numeric string)': (
        lambda now: {"exp": str(now + 300)},
        "exp is not a JSON number",
    ),
    'iat "<now>" (numeric string)': (lambda now: {"iat": str(now)}, "iat is not a JSON number"),
    "iat 1 (1970-01-01T00:00:01Z)": (lambda _now: {"iat": 1}, "iat is older than"),
    "iat 3,800 s ago (before the 3,600 s jti window and its 60 s leeway)": (
        lambda now: {"iat": now - 3800, "exp": now + 60},
        "iat is older than",
    ),
    "exp true": (lambda _now: {"exp": True}, "exp is not a JSON number"),
    "iat false": (lambda _now: {"iat": False}, "iat is not a JSON number"),
    "exp null": (lambda _now: {"exp": None}, "exp is not a JSON number"),
    "exp [now+300]": (lambda now: {"exp": [now + 300]}, "exp is not a JSON number"),
    "exp Infinity": (lambda _now: {"exp": float("inf")}, "exp is not a usable date"),
    "exp NaN": (lambda _now: {"exp": float("nan")}, "exp is not a usable date"),
    "exp 10**400": (lambda _now: {"exp": 10**400}, "exp is not a usable date"),
    'nbf "0" (numeric string)': (lambda _now: {"nbf": "0"}, "nbf is not a JSON number"),
}


@pytest.mark.parametrize("case", list(DATE_CLAIM_REJECTIONS))
def test_date_claims_must_be_json_numbers_and_iat_recent(
    auth_client, es384: SigningKey, security_log, case: str
) -> None:
    make_claims, reason = DATE_CLAIM_REJECTIONS[case]
    token = es384.sign(**make_claims(int(time.time())))
    assert_bare_401(patient_view(auth_client(), token))
    assert any(reason in r for r in refusal_reasons(security_log)), refusal_reasons(security_log)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(lambda now: {"exp": now + 300.5, "iat": now - 0.25}, id="float dates"),
        pytest.param(lambda now: {"iat": now - 3400, "exp": now + 60}, id="iat 3,400 s ago"),
        pytest.param(lambda now: {"nbf": now - 10}, id="nbf a number"),
    ],
)
def test_numeric_dates_inside_the_window_are_accepted(
    auth_client, es384: SigningKey, claims: Callable[[int], dict[str, Any]]
) -> None:
    token = es384.sign(**claims(int(time.time())))
    assert patient_view(auth_client(), token).status_code == 200


def test_authorization_that_is_not_bearer_is_401(auth_client, es384: SigningKey) -> None:
    client = auth_client()
    for value in (f"Basic {es384.sign()}", "Bearer", "Bearer    ", es384.sign()):
        assert_bare_401(client.post(SERVICE_PATH, json={}, headers={"Authorization": value}))


def test_replayed_jti_is_refused(auth_client, es384: SigningKey, security_log) -> None:
    client = auth_client()
    token = es384.sign()
    assert patient_view(client, token).status_code == 200
    assert_bare_401(patient_view(client, token))
    # The same jti in a freshly signed token is a replay too.
    jti = str(uuid.uuid4())
    assert patient_view(client, es384.sign(jti=jti)).status_code == 200
    assert_bare_401(patient_view(client, es384.sign(jti=jti)))
    assert refusal_reasons(security_log) == ["jti was already used (replay)"] * 2


def test_same_jti_from_another_issuer_is_not_a_replay(
    auth_client, jwks_file: Path, es384: SigningKey
) -> None:
    other_iss = "https://other-ehr.example.org"
    client = auth_client(trusted_issuers={ISSUER: str(jwks_file), other_iss: str(jwks_file)})
    jti = str(uuid.uuid4())
    assert patient_view(client, es384.sign(jti=jti)).status_code == 200
    assert patient_view(client, es384.sign(jti=jti, iss=other_iss)).status_code == 200


@pytest.mark.parametrize(
    ("exp_offset", "iat_offset", "status"),
    [
        (-30, -330, 200),  # expired 30 s ago: inside the 60 s leeway
        (-90, -390, 401),  # expired 90 s ago
        (300, 30, 200),  # issued 30 s "in the future": clock skew inside the leeway
        (300, 90, 401),  # 90 s in the future
    ],
)
def test_clock_skew_leeway_boundaries(
    auth_client, es384: SigningKey, exp_offset: int, iat_offset: int, status: int
) -> None:
    now = int(time.time())
    token = es384.sign(exp=now + exp_offset, iat=now + iat_offset)
    assert patient_view(auth_client(), token).status_code == status


def test_token_for_discovery_does_not_open_a_service(auth_client, es384: SigningKey) -> None:
    client = auth_client()
    assert_bare_401(patient_view(client, es384.sign("/cds-services")))


def test_unknown_service_without_token_is_401_not_404(auth_client) -> None:
    assert_bare_401(auth_client().post("/cds-services/nope", json={}))


# ---- JWKS over https (respx at the app's transport) and its cache ----------------------------


def test_jwks_over_https_is_fetched_once_and_cached(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey, rs384: SigningKey
) -> None:
    route = jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384, rs384))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    for key in (es384, rs384, es384):
        assert patient_view(client, key.sign()).status_code == 200
    assert route.call_count == 1


def test_jku_configured_for_the_issuer_is_used(
    auth_client, jwks_router: respx.MockRouter, jwks_file: Path, es384: SigningKey
) -> None:
    route = jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: [str(jwks_file), EHR_JWKS_URL]})
    response = patient_view(client, es384.sign(headers={"jku": EHR_JWKS_URL}))
    assert response.status_code == 200
    assert route.call_count == 1


def test_jku_of_another_issuer_is_never_fetched(
    auth_client, jwks_router: respx.MockRouter, jwks_file: Path, es384: SigningKey
) -> None:
    other_url = "https://other-ehr.example.org/jwks.json"
    route = jwks_router.get(other_url).respond(json=jwks(es384))
    client = auth_client(
        trusted_issuers={ISSUER: str(jwks_file), "https://other-ehr.example.org": other_url}
    )
    assert_bare_401(patient_view(client, es384.sign(headers={"jku": other_url})))
    assert not route.called


def test_unknown_kid_refreshes_once_rate_limited_then_rotation_is_picked_up(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey
) -> None:
    rotated = es_key("rotated-key")
    route = jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    now = [1000.0]
    client.app.state.jwks_cache = JwksCache(3600, min_refresh_seconds=10, clock=lambda: now[0])

    assert patient_view(client, es384.sign()).status_code == 200
    assert route.call_count == 1
    now[0] += 11
    assert_bare_401(patient_view(client, rotated.sign()))  # unknown kid: one forced refresh
    assert route.call_count == 2
    assert_bare_401(patient_view(client, rotated.sign()))  # same kid again: no refetch
    now[0] += 11
    assert_bare_401(patient_view(client, rotated.sign()))
    assert route.call_count == 2

    # The client rotates to a kid it publishes: one refresh picks it up.
    newer = es_key("newer-key")
    route.respond(json=jwks(es384, newer))
    assert patient_view(client, newer.sign()).status_code == 200
    assert route.call_count == 3
    # Another unknown kid within 10 s of that refresh: no fetch; after 10 s: one.
    assert_bare_401(patient_view(client, es_key("random-1").sign()))
    assert route.call_count == 3
    now[0] += 11
    assert_bare_401(patient_view(client, es_key("random-2").sign()))
    assert route.call_count == 4


def test_random_kids_do_not_cause_a_fetch_storm(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey
) -> None:
    route = jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    for i in range(20):
        assert_bare_401(patient_view(client, es_key(f"random-{i}").sign()))
    assert route.call_count <= 2


def test_jwks_is_refetched_after_its_ttl_and_kept_when_the_refetch_fails(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey
) -> None:
    route = jwks_router.get(EHR_JWKS_URL).respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    now = [0.0]
    client.app.state.jwks_cache = JwksCache(600, clock=lambda: now[0])
    assert patient_view(client, es384.sign()).status_code == 200
    now[0] += 599
    assert patient_view(client, es384.sign()).status_code == 200
    assert route.call_count == 1
    now[0] += 2
    route.respond(503)
    assert patient_view(client, es384.sign()).status_code == 200  # stale keys still verify
    assert route.call_count == 2
    assert patient_view(client, es384.sign()).status_code == 200  # no retry straight away
    assert route.call_count == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(302, headers={"location": "https://evil.example.org/jwks.json"}),
        httpx.Response(200, content=b"<html>"),
        httpx.Response(200, json={"keys": "nope"}),
        httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "es384-key"}]}),
    ],
    ids=["500", "redirect", "not-json", "no-keys", "symmetric-key"],
)
def test_broken_jwks_is_401_not_500(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey, answer: httpx.Response
) -> None:
    jwks_router.get(EHR_JWKS_URL).mock(return_value=answer)
    evil = jwks_router.get("https://evil.example.org/jwks.json").respond(json=jwks(es384))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    assert_bare_401(patient_view(client, es384.sign()))
    assert not evil.called


def test_unreachable_jwks_is_401(
    auth_client, jwks_router: respx.MockRouter, es384: SigningKey
) -> None:
    jwks_router.get(EHR_JWKS_URL).mock(side_effect=httpx.ConnectTimeout("slow"))
    client = auth_client(trusted_issuers={ISSUER: EHR_JWKS_URL})
    assert_bare_401(patient_view(client, es384.sign()))


def test_missing_jwks_file_is_401(auth_client, tmp_path: Path, es384: SigningKey) -> None:
    client = auth_client(trusted_issuers={ISSUER: str(tmp_path / "absent.json")})
    assert_bare_401(patient_view(client, es384.sign()))


# ---- the CDS Hooks sandbox's token shape ------------------------------------------------------


def test_sandbox_shaped_token_is_accepted_with_a_sandbox_trust_entry(
    auth_client, jwks_router: respx.MockRouter
) -> None:
    # The sandbox signs with its own P-384 key; here an identically shaped token is signed with a
    # fresh P-384 key that respx serves under the sandbox's jku and kid.
    stand_in = SigningKey(ec.generate_private_key(ec.SECP384R1()), "ES384", SANDBOX_KID)
    route = jwks_router.get(SANDBOX_JKU).respond(json=jwks(stand_in))
    client = auth_client(trusted_issuers={SANDBOX_ISS: [SANDBOX_JKU]})
    for _ in range(2):
        now = int(time.time())
        token = stand_in.sign(
            headers={"jku": SANDBOX_JKU},
            iss=SANDBOX_ISS,
            aud=BASE_URL + SERVICE_PATH,
            iat=now,
            exp=now + 300,
            jti=str(uuid.uuid4()),
        )
        assert jwt.get_unverified_header(token) == {
            "alg": "ES384",
            "typ": "JWT",
            "kid": SANDBOX_KID,
            "jku": SANDBOX_JKU,
        }
        response = patient_view(client, token)
        assert response.status_code == 200
        assert_response_contract(response.json(), "patient-view")
    assert route.call_count == 1


def sandbox_token(key: SigningKey, jku: str = SANDBOX_JKU) -> str:
    now = int(time.time())
    return key.sign(
        headers={"jku": jku}, iss=SANDBOX_ISS, iat=now, exp=now + 300, jti=str(uuid.uuid4())
    )


@pytest.fixture
def sandbox_stand_in(tmp_path: Path) -> tuple[SigningKey, Path]:
    """A P-384 key under the sandbox's kid, its public JWKS in a local file (the pinned copy)."""
    key = SigningKey(ec.generate_private_key(ec.SECP384R1()), "ES384", SANDBOX_KID)
    path = tmp_path / "sandbox-jwks.json"
    path.write_text(json.dumps(jwks(key)))
    return key, path


def test_sandbox_jku_pinned_to_a_local_file_is_verified_offline(
    auth_client, jwks_router: respx.MockRouter, sandbox_stand_in: tuple[SigningKey, Path]
) -> None:
    # Review finding: the sandbox always sends jku https://sandbox.cds-hooks.org/.well-known/
    # jwks.json; with only a local file trusted every call was 401, and ["<jku>", file] tried
    # only the URL. The long form maps that jku to the file: the URL is never fetched.
    key, pinned = sandbox_stand_in
    url = jwks_router.get(SANDBOX_JKU).respond(json=jwks(es_key("attacker")))
    trust = {"jwks": str(pinned), "jku": {SANDBOX_JKU: str(pinned)}}
    client = auth_client(trusted_issuers={SANDBOX_ISS: trust})
    discovery = client.get("/cds-services", headers=bearer(sandbox_token_for(key, "/cds-services")))
    assert discovery.status_code == 200
    for _ in range(2):
        response = patient_view(client, sandbox_token(key))
        assert response.status_code == 200
        assert_response_contract(response.json(), "patient-view")
    assert not url.called
    assert jwks_router.calls.call_count == 0


def sandbox_token_for(key: SigningKey, path: str) -> str:
    now = int(time.time())
    return key.sign(
        path,
        headers={"jku": SANDBOX_JKU},
        iss=SANDBOX_ISS,
        iat=now,
        exp=now + 300,
        jti=str(uuid.uuid4()),
    )


@pytest.mark.parametrize(
    "jku",
    [
        "https://sandbox.cds-hooks.org/.well-known/jwks.json?x=1",
        "https://sandbox.cds-hooks.org/other/jwks.json",
        "https://evil.example.org/.well-known/jwks.json",
        "http://sandbox.cds-hooks.org/.well-known/jwks.json",
    ],
)
def test_jku_not_pinned_is_refused_and_never_fetched(
    auth_client,
    jwks_router: respx.MockRouter,
    sandbox_stand_in: tuple[SigningKey, Path],
    security_log,
    jku: str,
) -> None:
    key, pinned = sandbox_stand_in
    anywhere = jwks_router.route().respond(json=jwks(key))
    trust = {"jwks": str(pinned), "jku": {SANDBOX_JKU: str(pinned)}}
    client = auth_client(trusted_issuers={SANDBOX_ISS: trust})
    assert_bare_401(patient_view(client, sandbox_token(key, jku)))
    assert not anywhere.called
    assert refusal_reasons(security_log) == ["jku is not a JWKS URL configured for this issuer"]


def test_pinned_jku_with_a_kid_not_in_the_file_is_refused_without_fetching(
    auth_client, jwks_router: respx.MockRouter, sandbox_stand_in: tuple[SigningKey, Path]
) -> None:
    key, pinned = sandbox_stand_in
    url = jwks_router.get(SANDBOX_JKU).respond(json=jwks(key))
    other = SigningKey(key.private, "ES384", "rotated-kid")
    trust = {"jwks": str(pinned), "jku": {SANDBOX_JKU: str(pinned)}}
    client = auth_client(trusted_issuers={SANDBOX_ISS: trust})
    assert_bare_401(patient_view(client, sandbox_token(other)))
    assert not url.called


def test_pinned_jku_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sandbox_stand_in: tuple[SigningKey, Path]
) -> None:
    _key, pinned = sandbox_stand_in
    value = {SANDBOX_ISS: {"jwks": str(pinned), "jku": {SANDBOX_JKU: str(pinned)}}}
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", json.dumps(value))
    trust = Settings().trusted_issuers[SANDBOX_ISS]
    assert isinstance(trust, IssuerTrust)
    assert trust.jku == {SANDBOX_JKU: str(pinned)}


@pytest.mark.parametrize(
    ("jku_map", "message"),
    [
        ({SANDBOX_JKU: "https://mirror.example.org/jwks.json"}, "must be a local file path"),
        ({SANDBOX_JKU: ""}, "must be a local file path"),
        ({"http://sandbox.cds-hooks.org/.well-known/jwks.json": "keys.json"}, "https URL"),
    ],
)
def test_unusable_jku_pin_is_refused_at_start_up(
    settings_factory: Callable[..., Settings], jku_map: dict[str, str], message: str
) -> None:
    trust = {"jwks": "keys.json", "jku": jku_map}
    settings = settings_factory(require_auth=True, trusted_issuers={SANDBOX_ISS: trust})
    with pytest.raises(ValueError, match=message):
        create_app(settings)


def test_committed_sandbox_jwks_is_a_valid_p384_es384_key() -> None:
    keys = parse_jwks((EXAMPLES / "sandbox-jwks.json").read_bytes())
    assert list(keys) == [SANDBOX_KID]
    key = verification_key(keys[SANDBOX_KID], "ES384")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp384r1"
    for wrong_alg in ("ES256", "RS384"):
        with pytest.raises(Unauthorized) as refused:
            verification_key(keys[SANDBOX_KID], wrong_alg)
        assert "does not fit" in (refused.value.detail or "")


# ---- configuration --------------------------------------------------------------------------


def test_trusted_issuers_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, jwks_file: Path
) -> None:
    monkeypatch.setenv(
        "CDS_TRUSTED_ISSUERS",
        json.dumps({ISSUER: str(jwks_file), SANDBOX_ISS: [SANDBOX_JKU]}),
    )
    assert Settings().trusted_issuers == {ISSUER: str(jwks_file), SANDBOX_ISS: [SANDBOX_JKU]}


def test_plain_http_jwks_location_is_refused_at_start_up(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        require_auth=True, trusted_issuers={ISSUER: "http://ehr.example.org/jwks.json"}
    )
    with pytest.raises(ValueError, match="https URL or a local file path"):
        create_app(settings)


def test_auth_off_is_refused_on_a_public_base_url(
    settings_factory: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsError, match="^CDS_REQUIRE_AUTH: "):
        create_app(settings_factory(require_auth=False, public_base_url=BASE_URL))


def test_auth_on_without_a_trusted_issuer_is_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    """Every call would be a 401: create_app (gunicorn, uvicorn --factory) refuses to build."""
    with pytest.raises(SettingsError, match="^CDS_TRUSTED_ISSUERS: empty while CDS_REQUIRE_AUTH"):
        create_app(settings_factory(require_auth=True, trusted_issuers={}))


def test_auth_off_on_loopback_warns_and_lets_calls_through(
    client_factory, security_log: list[logging.LogRecord]
) -> None:
    client = client_factory(require_auth=False, public_base_url="http://127.0.0.1:8000")
    assert any(
        r.levelno == logging.WARNING and "CDS_REQUIRE_AUTH=false" in r.getMessage()
        for r in security_log
    )
    response = patient_view(client, None)
    assert response.status_code == 200
    assert_response_contract(response.json(), "patient-view")


# ---- fuzzing the Authorization header ----------------------------------------------------------

_segment = st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
_json_segment = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "jku", "iss", "aud", "exp", "iat", "jti", "crit"]),
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(["ES384", "RS384", "none", "HS256", ISSUER, "es384-key"]),
        st.lists(st.text(max_size=5), max_size=3),
    ),
).map(lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode())
_tokens = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
    st.tuples(_json_segment, _json_segment, _segment).map(".".join),
    st.tuples(_segment, _segment, _segment).map(".".join),
)


def test_random_bearer_tokens_are_401_never_500(auth_client) -> None:
    client = auth_client()

    @settings(max_examples=150, deadline=None)
    @given(token=_tokens)
    def check(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        response = client.post(SERVICE_PATH, json={}, headers=headers)
        assert response.status_code == 401, response.text

    check()
