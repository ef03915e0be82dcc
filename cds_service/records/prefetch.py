"""Prefetch first, FHIR second (CDS Hooks 2.0 §"Prefetch Template").

Per key, four states: a resource or Bundle (use it; follow `next` when the FHIR server may be
used), `null` (the client has no data: nothing to fetch), absent or an OperationOutcome (fetch
it from `fhirServer`). Fetches run in parallel within one time budget. When data is needed and
cannot be had, the call ends in 412 with an OperationOutcome that names the keys.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from cds_service.config import Settings
from cds_service.errors import BadRequest, PrefetchUnavailable
from cds_service.models import HookRequest
from cds_service.records.data import OPTIONAL_KEYS, DataKey, prefetch_template, render_template
from cds_service.records.fhir_client import (
    FhirAnswerTooLarge,
    FhirClient,
    FhirUnavailable,
    bundle_resources,
    next_link,
)
from cds_service.records.fhir_urls import UnsafeFhirUrl, parse_base

MEDICATION_ID_CHUNK = 50
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
BEARER_TOKEN = re.compile(r"[!-~]{1,8192}")


@dataclass
class ResolvedData:
    """Raw resources per data key, and where each key came from (for the call log)."""

    resources: dict[DataKey, list[dict[str, Any]]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unusable:
    """Why the request's FHIR server may not be used: the reason code of the 412 it leads to
    when data is missing, and the words of its OperationOutcome."""

    reason: str
    why: str


def fhir_client_for(
    request: HookRequest, settings: Settings, http: httpx.AsyncClient
) -> FhirClient | Unusable:
    """A client for the request's FHIR server, or why it may not be used.

    A `fhirServer` that is not a plain http(s) base URL is refused outright (412), whether or
    not its data is needed: nothing is ever sent to it.
    """
    server = request.fhirServer
    if not server:
        return Unusable("prefetch-missing", "the request has no fhirServer")
    try:
        base = parse_base(server)
    except UnsafeFhirUrl as exc:
        raise PrefetchUnavailable(
            f"fhirServer is not a plain http(s) base URL ({exc})",
            expression=["fhirServer"],
            reason="fhir-url-unsafe",
            detail=str(exc),
        ) from None
    if not settings.fhir_server_allowed(str(base)):
        return Unusable(
            "fhir-server-not-allowed",
            "fhirServer is not on the service's FHIR allow-list (CDS_FHIR_ALLOWLIST)",
        )
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    if token is None and not settings.fhir_allow_anonymous:
        return Unusable("prefetch-missing", "the request has no fhirAuthorization")
    if token is not None and not BEARER_TOKEN.fullmatch(token):
        # An HTTP header carries printable ASCII only; anything else cannot be sent as is.
        return Unusable(
            "fhir-token-unusable", "fhirAuthorization.access_token is not a usable bearer token"
        )
    return FhirClient(
        http,
        base,
        access_token=token,
        max_pages=settings.fhir_max_pages,
        max_response_bytes=settings.fhir_max_response_bytes,
    )


async def resolve_data(
    keys: Sequence[DataKey],
    request: HookRequest,
    patient_id: str,
    drafts: list[dict[str, Any]],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    optional: frozenset[DataKey] = OPTIONAL_KEYS,
) -> ResolvedData:
    """`optional`: the keys the call goes on without (source "absent" or "unavailable")."""
    prefetch = request.prefetch or {}
    out = ResolvedData()
    to_fetch: list[DataKey] = []
    to_continue: dict[DataKey, str] = {}
    for key in keys:
        if key.value not in prefetch:
            to_fetch.append(key)
            continue
        value = prefetch[key.value]
        if value is None:
            out.resources[key] = []
            out.sources[key.value] = "prefetch-null"
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise BadRequest(
                f"prefetch.{key.value} must be a FHIR resource, a Bundle or null",
                expression=[f"prefetch.{key.value}"],
                reason="prefetch-invalid",
            )
        if value["resourceType"] == "OperationOutcome":
            to_fetch.append(key)
            continue
        out.resources[key] = bundle_resources(value)
        out.sources[key.value] = "prefetch"
        more = next_link(value) if value["resourceType"] == "Bundle" else None
        if more:
            to_continue[key] = more

    usable = fhir_client_for(request, settings, http)
    client = usable if isinstance(usable, FhirClient) else None
    if client is None:
        for key in [k for k in to_fetch if k in optional]:
            to_fetch.remove(key)
            out.resources[key] = []
            out.sources[key.value] = "absent"
    if to_fetch and isinstance(usable, Unusable):
        missing = ", ".join(k.value for k in to_fetch)
        raise PrefetchUnavailable(
            f"Data needed but not prefetched ({missing}) and the FHIR server cannot be used: "
            f"{usable.why}",
            expression=[f"prefetch.{k.value}" for k in to_fetch],
            reason=usable.reason,
            detail=usable.why,
        )
    for key, url in list(to_continue.items()):
        if client is None:
            # A paginated prefetch without FHIR access: use the pages given, and say so in the log.
            out.sources[key.value] = "prefetch-partial"
            del to_continue[key]
            continue
        # Every `next` link is checked before the first call, so a bad one contacts nothing.
        try:
            to_continue[key] = client.checked_url(url)
        except FhirUnavailable as exc:
            raise PrefetchUnavailable(
                f"prefetch.{key.value} has a next link the service will not follow: {exc}",
                expression=[f"prefetch.{key.value}"],
                reason="fhir-url-unsafe",
                detail=str(exc),
            ) from None

    if client is not None and (to_fetch or to_continue or _unresolved_medications(out, drafts)):
        # One deadline for everything sent to the FHIR server: connects, pool waits, every page
        # and the Medication follow-up (httpx's own timeouts are per phase and would add up).
        client.deadline = asyncio.get_running_loop().time() + settings.fhir_timeout_seconds
        try:
            async with asyncio.timeout_at(client.deadline):
                await _fetch_all(
                    client,
                    to_fetch,
                    to_continue,
                    patient_id,
                    out,
                    settings.fhir_page_size,
                    optional,
                )
                await _fetch_referenced_medications(client, out, drafts)
        except TimeoutError as exc:
            raise PrefetchUnavailable(
                f"The FHIR server did not answer within {settings.fhir_timeout_seconds:g} s",
                expression=[f"prefetch.{k.value}" for k in [*to_fetch, *to_continue]],
                reason="fhir-server-timeout",
            ) from exc
    return out


async def _fetch_all(
    client: FhirClient,
    to_fetch: list[DataKey],
    to_continue: dict[DataKey, str],
    patient_id: str,
    out: ResolvedData,
    page_size: int,
    optional: frozenset[DataKey],
) -> None:
    async def fetch(key: DataKey) -> list[dict[str, Any]]:
        query = render_template(prefetch_template(key), patient_id)
        if key is DataKey.PATIENT:
            resource = await client.read(query)
            return [resource] if resource else []
        # Ask for large pages: every `next` page is another sequential round trip.
        return await client.search(f"{query}&_count={page_size}")

    async def follow(url: str) -> list[dict[str, Any]]:
        return await client.search_url(url)

    jobs = [fetch(k) for k in to_fetch] + [follow(u) for u in to_continue.values()]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    failed: list[str] = []
    reasons: list[str] = []
    too_large = 0
    for key, result in zip([*to_fetch, *to_continue], results, strict=True):
        if isinstance(result, FhirUnavailable) and key in optional and key in to_fetch:
            # A key the call can do without (a server without Encounter, a token not scoped to
            # it): go on without it, and say so in the log.
            out.resources[key] = []
            out.sources[key.value] = "unavailable"
        elif isinstance(result, FhirUnavailable):
            failed.append(key.value)
            reasons.append(f"{key.value} ({result})")
            too_large += isinstance(result, FhirAnswerTooLarge)
        elif isinstance(result, BaseException):
            raise result
        elif key in to_continue:
            out.resources[key].extend(result)
            out.sources[key.value] = "prefetch+fhir"
        else:
            out.resources[key] = result
            out.sources[key.value] = "fhir"
    if failed:
        # FhirUnavailable messages are the service's own words (a status, an exception name).
        why = "; ".join(reasons)
        raise PrefetchUnavailable(
            f"The FHIR server could not provide: {why}",
            expression=[f"prefetch.{k}" for k in failed],
            reason="fhir-response-too-large" if too_large == len(failed) else "fhir-server-failed",
            detail=why,
        )


def _unresolved_medications(out: ResolvedData, drafts: list[dict[str, Any]]) -> list[str]:
    """Ids of Medications named by medicationReference (record or draft orders) not held yet."""
    resources = out.resources.get(DataKey.MEDICATION_REQUESTS, [])
    have = {r.get("id") for r in resources if r.get("resourceType") == "Medication"}
    wanted: set[str] = set()
    for r in [*resources, *drafts]:
        if r.get("resourceType") != "MedicationRequest":
            continue
        ref = r.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and target.startswith("Medication/"):
            med_id = target.removeprefix("Medication/")
            if FHIR_ID.fullmatch(med_id) and med_id not in have:
                wanted.add(med_id)
    return sorted(wanted)


async def _fetch_referenced_medications(
    client: FhirClient, out: ResolvedData, drafts: list[dict[str, Any]]
) -> None:
    """Medications named by medicationReference (in the record or a draft) not held yet."""
    ids = _unresolved_medications(out, drafts)
    if not ids:
        return
    resources = out.resources.setdefault(DataKey.MEDICATION_REQUESTS, [])
    chunks = [ids[i : i + MEDICATION_ID_CHUNK] for i in range(0, len(ids), MEDICATION_ID_CHUNK)]
    # return_exceptions: a failed chunk must not leave its siblings running past the call.
    found = await asyncio.gather(
        *(client.search(f"Medication?_id={','.join(c)}") for c in chunks), return_exceptions=True
    )
    for batch in found:
        if isinstance(batch, FhirUnavailable):
            # Medications only refine identification; the order's own text and display still count.
            continue
        if isinstance(batch, BaseException):
            raise batch
        resources.extend(m for m in batch if m.get("resourceType") == "Medication")
