"""schemathesis against the service's own OpenAPI schema: no operation answers 500 or hangs.

Cases are generated from `create_app(...).openapi()` (valid and deliberately invalid data, per
operation) and sent through the test client, so the app's lifespan, store and settings are the
real ones. Bounded by a fixed number of examples per operation and mode (no wall-clock limit:
how long it takes on a busy machine is not what it tests).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from cds_service.hooks.registry import SERVICES
from tests.factories import (
    back_pain,
    chart_prefetch,
    hook_request,
    order_prefetch,
    service_request,
)
from tests.jwt_helpers import BASE_URL, ISSUER, bearer, es_key, jwks


def test_published_schema_resolves_every_reference(client: TestClient) -> None:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    schemas = spec["components"]["schemas"]
    for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, ref
    body = spec["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HookRequest"
    }


def operations(client: TestClient) -> list[tuple[Any, dict[str, str] | None]]:
    """Each operation, and for the CDS routes one variant per real service id (a random id only
    ever reaches the 404)."""
    spec = copy.deepcopy(client.app.openapi())  # type: ignore[attr-defined]
    schema = schemathesis.openapi.from_dict(spec)
    out: list[tuple[Any, dict[str, str] | None]] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the service's OpenAPI schema is invalid: {result}"
        operation = result.ok()
        if operation.path == "/cds-services/{service_id}":
            out.extend((operation, {"service_id": sid}) for sid in SERVICES)
        elif operation.path == "/cds-services/{service_id}/feedback":
            out.append((operation, {"service_id": "lbp-order-sign"}))
        out.append((operation, None))
    return out


def send(client: TestClient, case: Any, headers: dict[str, str] | None = None) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    kwargs.pop("cookies", None)  # TestClient wants them on the client, and the API uses none
    if isinstance(kwargs.get("data"), bytes | str):  # a raw (not JSON) body: httpx's spelling
        kwargs["content"] = kwargs.pop("data")
    return client.request(**kwargs)


def valid_hook_request(path: str, path_parameters: dict[str, str] | None) -> dict | None:
    """A request that reaches the rules (back pain, an MRI order) for a hook-call operation."""
    if path != "/cds-services/{service_id}" or not path_parameters:
        return None
    hook = SERVICES[path_parameters["service_id"]].hook
    if hook in ("order-select", "order-sign"):
        prefetch = order_prefetch([back_pain()])
        return hook_request(hook, prefetch=prefetch, draft_orders=[service_request()])
    return hook_request(hook, prefetch=chart_prefetch([back_pain()]))


def grafted(valid: dict, generated: dict) -> dict:
    """The generated body's members laid over a valid request: the hook and the context ids stay
    valid, so the generated values reach prefetch handling, the rules and the renderers."""
    body = copy.deepcopy(valid)
    for key, value in generated.items():
        if key == "context" and isinstance(value, dict):
            body["context"].update(
                {k: v for k, v in value.items() if k not in ("userId", "patientId", "encounterId")}
            )
        elif key == "prefetch" and isinstance(value, dict):
            body["prefetch"].update(value)
        elif key != "hook":
            body[key] = value
    return body


def fuzz(
    client: TestClient,
    examples: int,
    headers_for: Callable[[str], dict[str, str]] | None = None,
) -> int:
    """Every operation, positive and negative data; returns how many requests were sent."""
    sent = 0
    for operation, path_parameters in operations(client):
        valid = valid_hook_request(operation.path, path_parameters)
        documented = set(operation.definition.raw.get("responses", {}))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            try:
                sent += run(client, strategy, examples, valid, headers_for, documented)
            except Unsatisfiable:
                # An operation without parameters or body has no invalid variant (GET /healthz).
                assert mode is GenerationMode.NEGATIVE
    return sent


def run(
    client: TestClient,
    strategy: Any,
    examples: int,
    valid: dict | None,
    headers_for: Callable[[str], dict[str, str]] | None,
    documented: set[str],
) -> int:
    sent = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, graft=st.booleans())
    def check(case: Any, graft: bool) -> None:
        nonlocal sent
        if graft and valid is not None and isinstance(case.body, dict):
            case.body = grafted(valid, case.body)
        headers = headers_for(case.formatted_path) if headers_for else None
        response = send(client, case, headers)
        sent += 1
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        )
        # Every answer is one the schema documents for this operation (no 422, no surprise).
        assert str(response.status_code) in documented, (
            f"{case.method} {case.formatted_path}: {response.status_code} is not documented "
            f"({sorted(documented)})"
        )

    check()
    return sent


def test_no_operation_answers_500(client_factory) -> None:
    client = client_factory()
    sent = fuzz(client, examples=30)
    assert sent >= 300  # the schema really was exercised


def test_no_operation_answers_500_with_auth_required(client_factory, tmp_path: Path) -> None:
    # With JWT verification on, each generated call carries a fresh, valid token for its path,
    # so the fuzzing reaches past authentication.
    key = es_key()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(key)))
    client = client_factory(
        require_auth=True, public_base_url=BASE_URL, trusted_issuers={ISSUER: str(jwks_file)}
    )
    sent = fuzz(client, examples=10, headers_for=lambda path: bearer(key.sign(path)))
    assert sent >= 100


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.text(max_size=40), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_random_paths_and_methods_never_500(client: TestClient, path: str, method: str) -> None:
    response = client.request(method, "/cds-services/" + quote(path, safe="/"))
    assert response.status_code < 500
