import pytest
from fastapi.testclient import TestClient

from tests.jwt_helpers import UNREAD_ISSUERS

ORIGIN = "https://sandbox.cds-hooks.org"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/lbp-patient-view"),
        ("POST", "/cds-services/lbp-patient-view/feedback"),
    ],
)
def test_preflight_allows_authorization_and_content_type(
    client_factory, method: str, path: str
) -> None:
    client: TestClient = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    response = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert method in response.headers["access-control-allow-methods"]


def test_cors_header_on_errors_too(client: TestClient) -> None:
    response = client.post(
        "/cds-services/lbp-patient-view", content=b"nope", headers={"Origin": ORIGIN}
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == "*"
