"""A small FHIR R4 read/search client over the process's one httpx.AsyncClient.

The bearer token is sent only to the request's own, allow-listed `fhirServer`: `next` links
that leave that server are not followed, and redirects are never followed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson


class FhirUnavailable(Exception):
    """The FHIR server could not give the data (unreachable, error status, garbage, too slow)."""


class FhirClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        access_token: str | None,
        max_pages: int,
        url_allowed: Callable[[str], bool],
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = access_token
        self._max_pages = max_pages
        self._url_allowed = url_allowed

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json, application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _get(self, url: str) -> tuple[int, Any]:
        try:
            response = await self._http.get(url, headers=self._headers(), follow_redirects=False)
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"{type(exc).__name__} calling the FHIR server") from exc
        if response.status_code == 404:
            return 404, None
        if response.status_code != 200:
            raise FhirUnavailable(f"FHIR server answered HTTP {response.status_code}")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise FhirUnavailable("FHIR server answered with a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise FhirUnavailable("FHIR server answered with JSON that is not a resource")
        return 200, body

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET one resource; None when the server says 404."""
        status, body = await self._get(f"{self._base}/{path}")
        if status == 404 or body is None:
            return None
        if body.get("resourceType") == "OperationOutcome":
            raise FhirUnavailable("FHIR server answered a read with an OperationOutcome")
        return dict(body)

    async def search(self, path: str) -> list[dict[str, Any]]:
        """GET a search and follow `next` links (up to the page cap); the matched resources."""
        return await self.search_url(f"{self._base}/{path}")

    async def search_url(self, start: str) -> list[dict[str, Any]]:
        """Follow a search from an absolute URL on this server (a prefetch Bundle's `next`)."""
        if not self._url_allowed(start):
            raise FhirUnavailable("a next link points away from the request's FHIR server")
        url: str | None = start
        resources: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            status, body = await self._get(url)
            if status == 404 or body is None:
                raise FhirUnavailable("FHIR server answered a search with 404")
            resources.extend(bundle_resources(body))
            pages += 1
            url = next_link(body)
            if url is not None and (pages >= self._max_pages or not self._url_allowed(url)):
                raise FhirUnavailable("FHIR search has more pages than the service may follow")
        return resources


def bundle_resources(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a Bundle (search matches and includes), or the one resource given."""
    kind = body.get("resourceType")
    if kind == "OperationOutcome":
        raise FhirUnavailable("an OperationOutcome came where a Bundle was expected")
    if kind != "Bundle":
        return [body] if isinstance(kind, str) else []
    out: list[dict[str, Any]] = []
    entries = body.get("entry")
    if not isinstance(entries, list):
        return out
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        if mode == "outcome":  # lenient servers report ignored search parameters this way
            continue
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            out.append(resource)
    return out


def next_link(body: dict[str, Any]) -> str | None:
    links = body.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None
