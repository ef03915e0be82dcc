"""`cds-service fire`: send one real CDS Hooks request for a patient on a FHIR server.

The request is what an EHR sends: a fresh `hookInstance`, `context` (userId, patientId,
encounterId for encounter-start, draftOrders from order files and, for order-select, every draft
order as a selection), `fhirServer`, `fhirAuthorization` when a token is given, and NO prefetch,
so the service reads the patient's data from the FHIR server itself.

With `--service-url` the request goes to a running service. Without it, the service runs
in-process (its lifespan included, over httpx's ASGI transport) with the environment's settings,
except: EHR JWT verification off, the given FHIR server added to the FHIR allow-list, and
anonymous FHIR access on when no token is given. Cards are logged to CDS_DATABASE_URL as the
server does, so they also show on /analytics.

Before sending, `fire` reads `Patient/<id>` from the FHIR server: when the server has no such
patient (404/410) it exits 1 with that message, since the service would only answer "no cards".
The order hooks need at least one `--order`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx

from cds_service.config import Settings, is_loopback_url
from cds_service.hooks.registry import SERVICES
from cds_service.settings_check import SettingsError, load_settings
from cds_service.tools import bundled
from cds_service.tools.tokens import TokenError, resolve_tokens

HOOKS = ("patient-view", "encounter-start", "order-select", "order-sign")
ORDER_HOOKS = ("order-select", "order-sign")
DEFAULT_USER_ID = "Practitioner/cds-service-cli"
IN_PROCESS_BASE_URL = "http://127.0.0.1:8000"

EXIT_OK = 0
EXIT_SERVICE_ERROR = 1  # the service answered 4xx/5xx (412 included)
EXIT_NO_PATIENT = 1  # the FHIR server has no such patient (404 / 410 on its read)
EXIT_USAGE = 2  # bad arguments, unreadable order files, unsafe settings
EXIT_UNREACHABLE = 3  # the CDS service or the FHIR server could not be reached


class ToolError(Exception):
    """A problem the user can fix, with the exit code that names its kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class FireOptions:
    fhir_server: str
    patient_id: str
    hook: str
    order_files: tuple[Path, ...] = ()
    token: str | None = None
    service_url: str | None = None
    user_id: str = DEFAULT_USER_ID
    encounter_id: str | None = None
    as_json: bool = False


def check_http_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{what} must be an absolute http(s) URL, not {url!r}", EXIT_USAGE)
    return url.rstrip("/")


def service_id_for(hook: str) -> str:
    for service in SERVICES.values():
        if service.hook == hook:
            return service.id
    raise ToolError(f"no service answers the {hook} hook", EXIT_USAGE)


def example_order() -> str:
    """A draft-order file that exists wherever the package is installed, for usage messages."""
    try:
        return str(bundled.orders_dir() / "lumbar-mri.json")
    except bundled.BundledDataMissing:
        return "lumbar-mri.json"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path} is not JSON: {exc}", EXIT_USAGE) from exc


def load_orders(paths: Sequence[Path], today: date, patient_id: str) -> list[dict[str, Any]]:
    """The draft orders of the order files (a resource or a Bundle each), tokens replaced."""
    orders: list[dict[str, Any]] = []
    for path in paths:
        raw = read_json(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
            raise ToolError(f"{path} is not a FHIR resource or Bundle", EXIT_USAGE)
        if raw["resourceType"] == "Bundle":
            found = [
                e["resource"]
                for e in raw.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            ]
        else:
            found = [raw]
        if not found:
            raise ToolError(f"{path} holds no resource", EXIT_USAGE)
        try:
            orders.extend(resolve_tokens(r, today, patient_id) for r in found)
        except TokenError as exc:
            raise ToolError(f"{path}: {exc}", EXIT_USAGE) from exc
    for number, order in enumerate(orders, start=1):
        order.setdefault("id", f"draft-{number}")
    return orders


def build_hook_request(
    options: FireOptions, orders: Sequence[dict[str, Any]], *, hook_instance: str
) -> dict[str, Any]:
    """The CDS Hooks request body: no `prefetch`, so the service queries `fhirServer`."""
    context: dict[str, Any] = {"userId": options.user_id, "patientId": options.patient_id}
    encounter = options.encounter_id
    if encounter is None and options.hook == "encounter-start":
        encounter = f"cli-{uuid.uuid4().hex[:12]}"
    if encounter is not None:
        context["encounterId"] = encounter
    if options.hook in ORDER_HOOKS:
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": order} for order in orders],
        }
        if options.hook == "order-select":
            context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in orders]
    body: dict[str, Any] = {
        "hook": options.hook,
        "hookInstance": hook_instance,
        "fhirServer": options.fhir_server,
        "context": context,
    }
    if options.token:
        body["fhirAuthorization"] = {
            "access_token": options.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read user/*.read",
            "subject": "cds-service-cli",
        }
    return body


def in_process_settings(fhir_server: str, token: str | None, env_log_level: bool) -> Settings:
    """Settings from the environment, opened up for one local call (see the module docstring)."""
    try:
        base = load_settings()
    except SettingsError as exc:
        raise ToolError(f"invalid CDS_* environment setting: {exc}", EXIT_USAGE) from None
    update: dict[str, Any] = {
        "require_auth": False,
        "fhir_allowlist": [*base.fhir_allowlist, fhir_server.rstrip("/")],
    }
    if token is None:
        update["fhir_allow_anonymous"] = True
    if not is_loopback_url(base.public_base_url):
        # JWT verification off is only allowed on a loopback base URL (settings_check).
        update["public_base_url"] = IN_PROCESS_BASE_URL
    if not env_log_level:
        update["log_level"] = "ERROR"  # keep the terminal for the cards; CDS_LOG_LEVEL overrides
    return base.model_copy(update=update)


async def call_in_process(
    settings: Settings, service_id: str, body: dict[str, Any]
) -> httpx.Response:
    """Run the app with its lifespan and post one hook request to it over ASGI."""
    from cds_service.main import create_app

    try:
        app = create_app(settings)
    except ValueError as exc:
        raise ToolError(f"cannot start the service: {exc}", EXIT_USAGE) from exc
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=settings.public_base_url, timeout=60
        ) as client:
            return await client.post(f"/cds-services/{service_id}", json=body)


def call_remote(service_url: str, service_id: str, body: dict[str, Any]) -> httpx.Response:
    url = f"{service_url}/cds-services/{service_id}"
    try:
        return httpx.post(url, json=body, timeout=60)
    except httpx.HTTPError as exc:
        raise ToolError(
            f"cannot reach the CDS service at {url} ({type(exc).__name__}: {exc})",
            EXIT_UNREACHABLE,
        ) from exc


def _fhir_get(url: str, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=15)


def check_fhir_server(url: str, token: str | None) -> bool:
    """Fail early, with a clear message, when the FHIR server does not answer at all; True when
    its capability statement (`/metadata`) answered 2xx, i.e. `url` is a FHIR base."""
    try:
        response = _fhir_get(f"{url}/metadata", token)
    except httpx.HTTPError as exc:
        raise ToolError(
            f"cannot reach the FHIR server at {url} ({type(exc).__name__}: {exc})",
            EXIT_UNREACHABLE,
        ) from exc
    return response.is_success


def check_patient(url: str, patient_id: str, token: str | None) -> None:
    """Fail with a clear message when the FHIR server has no such patient (404 or 410 on
    `Patient/<id>`): the service itself would only answer "no cards". Call it once `url` is known
    to be a FHIR base; any other answer, or none, is left for the service to report."""
    try:
        response = _fhir_get(f"{url}/Patient/{quote(patient_id, safe='')}", token)
    except httpx.HTTPError:
        return
    if response.status_code in (404, 410):
        raise ToolError(
            f"the FHIR server {url} has no patient {patient_id!r} "
            f"(HTTP {response.status_code} on Patient/{patient_id}): check --patient, or run "
            "`cds-service seed` first",
            EXIT_NO_PATIENT,
        )


def check_patient_for_remote(url: str, patient_id: str, token: str | None) -> None:
    """The same check before posting to a running service, which may reach a FHIR server this
    machine cannot: an unreachable server or a base without /metadata is not an error here."""
    try:
        is_fhir_base = check_fhir_server(url, token)
    except ToolError:
        return
    if is_fhir_base:
        check_patient(url, patient_id, token)


# ---- output --------------------------------------------------------------------------------


def _indent(text: str, prefix: str) -> str:
    lines = text.strip("\n").splitlines()
    return "\n".join((prefix + line).rstrip() for line in lines)


def _action_line(action: dict[str, Any]) -> str:
    kind = action.get("type", "?")
    resource = action.get("resource")
    if isinstance(resource, dict):
        target = resource.get("resourceType", "resource")
        if resource.get("id") and kind != "create":
            target = f"{target}/{resource['id']}"
    else:
        target = str(action.get("resourceId", ""))
    description = str(action.get("description") or "")
    # Descriptions may start with what they act on ("Task: complete the ..."): say it once.
    for said in dict.fromkeys((target, target.split("/")[0])):
        if said and description.lower().startswith(f"{said.lower()}:"):
            description = description[len(said) + 1 :].lstrip()
            break
    return f"{kind} {target}: {description}".rstrip(": ")


def _reason_line(reason: dict[str, Any]) -> str:
    code, display = reason.get("code"), reason.get("display")
    if not display or display == code:
        return str(code)
    return f"{display} ({code})" if code else str(display)


def format_card(number: int, card: dict[str, Any]) -> str:
    source = card.get("source") or {}
    topic = (source.get("topic") or {}).get("code", "?")
    lines = [
        f"{number}. {str(card.get('indicator', '?')).upper()}  {card.get('summary', '')}",
        f"   topic: {topic}   card: {card.get('uuid', '?')}",
        f"   source: {source.get('label', '?')} <{source.get('url', '')}>",
    ]
    if card.get("detail"):
        lines += ["", _indent(str(card["detail"]), "   | ")]
    suggestions = card.get("suggestions") or []
    if suggestions:
        how = "choose at most one" if card.get("selectionBehavior") == "at-most-one" else "any"
        lines += ["", f"   Suggestions ({how}):"]
        for s in suggestions:
            flag = "  [recommended]" if s.get("isRecommended") else ""
            lines.append(f"     - {s.get('label', '')}{flag}")
            lines += [f"         {_action_line(a)}" for a in s.get("actions") or []]
    links = card.get("links") or []
    if links:
        lines += ["", "   Links:"]
        lines += [
            f"     - {lk.get('label', '')} <{lk.get('url', '')}> ({lk.get('type')})" for lk in links
        ]
    reasons = card.get("overrideReasons") or []
    if reasons:
        lines += ["", "   Override reasons:"]
        lines += [f"     - {_reason_line(r)}" for r in reasons]
    return "\n".join(lines)


def format_cards(service_id: str, body: dict[str, Any]) -> str:
    cards = body.get("cards") or []
    if not cards:
        return f"{service_id}: no cards\n"
    head = f"{service_id}: {len(cards)} card{'s' if len(cards) != 1 else ''}"
    parts = [head] + [format_card(i, c) for i, c in enumerate(cards, start=1)]
    actions = body.get("systemActions") or []
    if actions:
        parts.append("System actions:\n" + "\n".join(f"  - {_action_line(a)}" for a in actions))
    return "\n\n".join(parts) + "\n"


def outcome_lines(body: Any) -> list[str]:
    """The issues of an OperationOutcome, one line each."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    lines = []
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        where = ", ".join(issue.get("expression") or [])
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else ""
        )
        line = f"  {issue.get('severity', 'error')} ({issue.get('code', '?')}): {text}"
        lines.append(f"{line} [{where}]" if where else line)
    return lines


def _hint(status: int, options: FireOptions) -> str | None:
    if status == 401:
        return (
            "The service requires an EHR-signed JWT (CDS_REQUIRE_AUTH=true) and `fire` sends none: "
            "omit --service-url to run the service in-process, or start it with "
            "CDS_REQUIRE_AUTH=false on a loopback address."
        )
    if status == 404:
        return (
            "No such service: give --service-url as the service's base URL, without /cds-services."
        )
    if status == 412 and options.service_url:
        return (
            f"The service could not read {options.fhir_server}: it must be on the service's "
            "CDS_FHIR_ALLOWLIST, and the service needs --token or CDS_FHIR_ALLOW_ANONYMOUS=true."
        )
    if status == 412:
        return "The FHIR server did not give the data the service needs: check --fhir-server and --token."
    return None


def report(
    response: httpx.Response, service_id: str, options: FireOptions, out: TextIO, err: TextIO
) -> int:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        if options.as_json:
            out.write(json.dumps(body, indent=2) + "\n")
        else:
            out.write(format_cards(service_id, body))
        return EXIT_OK
    if options.as_json and body is not None:
        out.write(json.dumps(body, indent=2) + "\n")
    err.write(
        f"cds-service fire: {service_id} answered HTTP {response.status_code} "
        f"{response.reason_phrase}\n"
    )
    lines = outcome_lines(body)
    if not lines and response.status_code != 200 and response.text:
        lines = [f"  {response.text[:500]}"]
    for line in lines:
        err.write(line + "\n")
    hint = _hint(response.status_code, options)
    if hint:
        err.write(hint + "\n")
    return EXIT_SERVICE_ERROR


def run(options: FireOptions, out: TextIO, err: TextIO, *, today: date, env_log_level: bool) -> int:
    """The whole command: returns its exit code; messages go to `err`, cards to `out`."""
    try:
        fhir_server = check_http_url(options.fhir_server, "--fhir-server")
        service_url = (
            check_http_url(options.service_url, "--service-url") if options.service_url else None
        )
        if options.hook not in HOOKS:
            raise ToolError(f"--hook must be one of {', '.join(HOOKS)}", EXIT_USAGE)
        if options.order_files and options.hook not in ORDER_HOOKS:
            raise ToolError("--order is for the order-select and order-sign hooks", EXIT_USAGE)
        if options.hook in ORDER_HOOKS and not options.order_files:
            raise ToolError(
                f"{options.hook} needs the draft order: give --order FILE (a FHIR resource or "
                f"Bundle, e.g. {example_order()})",
                EXIT_USAGE,
            )
        options = replace(options, fhir_server=fhir_server, service_url=service_url)
        service_id = service_id_for(options.hook)
        orders = load_orders(options.order_files, today, options.patient_id)
        body = build_hook_request(options, orders, hook_instance=str(uuid.uuid4()))
        if service_url:
            check_patient_for_remote(fhir_server, options.patient_id, options.token)
            response = call_remote(service_url, service_id, body)
        else:
            if check_fhir_server(fhir_server, options.token):
                check_patient(fhir_server, options.patient_id, options.token)
            settings = in_process_settings(fhir_server, options.token, env_log_level)
            response = asyncio.run(call_in_process(settings, service_id, body))
    except ToolError as exc:
        err.write(f"cds-service fire: {exc.message}\n")
        return exc.exit_code
    return report(response, service_id, options, out, err)
