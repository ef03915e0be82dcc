"""/docs and /openapi.json: local Swagger UI files, the admin token, and an OpenAPI document that
names the errors the service really answers (no 422)."""

from __future__ import annotations

import re

import pytest

from tests.jwt_helpers import UNREAD_ISSUERS

ADMIN_TOKEN = "docs-admin-token"
ERROR_STATUSES = {"400", "401", "404", "412", "413", "503"}


@pytest.fixture
def locked(client_factory):
    """Auth on and CDS_ADMIN_TOKEN set: the production shape."""
    return client_factory(
        require_auth=True, trusted_issuers=UNREAD_ISSUERS, admin_token=ADMIN_TOKEN
    )


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_docs_and_schema_need_the_admin_token_when_auth_is_on(locked, path: str) -> None:
    refused = locked.get(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.content == b""
    assert locked.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.get(path, params={"token": "wrong"}).status_code == 401
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert locked.get(path, headers=bearer).status_code == 200
    assert locked.get(path, params={"token": ADMIN_TOKEN}).status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_docs_are_closed_with_auth_on_and_no_admin_token(client_factory, path: str) -> None:
    assert (
        client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS).get(path).status_code
        == 401
    )


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_docs_are_open_for_local_development(client, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/redoc", "/docs/oauth2-redirect"])
def test_fastapi_default_pages_are_gone(client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_docs_page_loads_only_local_files(client) -> None:
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "cdn" not in page.text.lower() and "http" not in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == [
        "/docs/static/favicon.png",
        "/docs/static/swagger-init.js",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/static/swagger-ui.css",
    ]
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert kinds[asset[asset.rindex(".") :]] in response.headers["content-type"]
        assert response.headers["x-content-type-options"] == "nosniff"
    bundle = client.get("/docs/static/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000  # the real distribution
    init = client.get("/docs/static/swagger-init.js").text
    assert "validatorUrl: null" in init  # no badge fetched from the public validator
    assert client.get("/docs/static/../main.py").status_code == 404
    assert client.get("/docs/static/redoc.standalone.js").status_code == 404


# ---- the document: the real error answers ------------------------------------------------------


def operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def test_no_422_anywhere_and_errors_are_operation_outcomes(client) -> None:
    spec = client.get("/openapi.json").json()
    assert '"422"' not in client.get("/openapi.json").text
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    outcome = spec["components"]["schemas"]["OperationOutcome"]
    assert outcome["properties"]["resourceType"] == {"const": "OperationOutcome"}
    for (method, path), operation in operations(spec).items():
        for status, response in operation["responses"].items():
            if status in ERROR_STATUSES and "application/json" in response.get("content", {}):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/OperationOutcome"}, (method, path)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/cds-services", {"200", "401", "503"}),
        ("post", "/cds-services/{service_id}", {"200", "400", "401", "404", "412", "413", "503"}),
        ("post", "/cds-services/{service_id}/feedback", {"200", "400", "401", "404", "413", "503"}),
        ("post", "/apps/startback/score", {"200", "400", "413"}),
        ("get", "/apps/startback/config", {"200", "400"}),
        ("get", "/apps/startback", {"200", "400"}),
        ("post", "/apps/red-flags/response", {"200", "400", "413"}),
        ("get", "/apps/red-flags/config", {"200", "400"}),
        ("get", "/apps/red-flags", {"200", "400"}),
        ("get", "/apps/self-care", {"200", "304"}),
        ("get", "/healthz", {"200"}),
    ],
)
def test_each_operation_documents_the_statuses_it_answers(
    client, method: str, path: str, statuses: set[str]
) -> None:
    spec = client.get("/openapi.json").json()
    assert set(operations(spec)[(method, path)]["responses"]) == statuses


def test_provoked_answers_are_documented(locked) -> None:
    """401 and (past a token) the others are provoked for real in test_openapi_fuzz.py."""
    spec = locked.get("/openapi.json", params={"token": ADMIN_TOKEN}).json()
    documented = set(operations(spec)[("post", "/cds-services/{service_id}")]["responses"])
    assert str(locked.post("/cds-services/lbp-patient-view", json={}).status_code) in documented
    assert str(locked.post("/cds-services/nope", content=b"x" * 10).status_code) in documented


def test_admin_pages_are_not_in_the_schema(client) -> None:
    spec = client.get("/openapi.json").json()
    assert not {"/docs", "/openapi.json", "/analytics"} & set(spec["paths"])
