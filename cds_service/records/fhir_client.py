"""A small FHIR R4 read/search client over the process's one httpx.AsyncClient.

The bearer token is sent only to the request's own, allow-listed `fhirServer`: every `next` link
is checked (records/fhir_urls.py) before it is followed and must stay on that server under its
base path, and redirects are never followed.

Bounded work: answers are streamed and decoded here, chunk by chunk, and one query's answer (all
its pages) may not exceed `max_response_bytes` after decompression. httpx's own decoding inflates
each network chunk in one go (64 KiB of gzip can become ~64 MB before it could be counted), so
the raw stream is inflated with a cap on every step instead. Only gzip and deflate are asked for.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from typing import Any

import httpx
import orjson

from cds_service import metrics
from cds_service.records.fhir_urls import FhirUrl, UnsafeFhirUrl, check_next

ACCEPTED_ENCODINGS = "gzip, deflate"


class FhirUnavailable(Exception):
    """The FHIR server could not give the data (unreachable, error status, garbage, too slow)."""

    metric_outcome = "failed"


class FhirAnswerTooLarge(FhirUnavailable):
    """One query's answer is larger than CDS_FHIR_MAX_RESPONSE_BYTES (after decompression)."""

    metric_outcome = "too-large"


class _Budget:
    """Decoded bytes left for one query (all of its pages)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise FhirAnswerTooLarge(
                f"FHIR answer larger than {self.limit} bytes (CDS_FHIR_MAX_RESPONSE_BYTES)"
            )


class _Inflater:
    """Content-Encoding decoding whose output never exceeds what the budget has left."""

    def __init__(self, content_encoding: str, budget: _Budget) -> None:
        encoding = content_encoding.strip().lower()
        self._budget = budget
        self._zlib: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            # wbits 47: a gzip or zlib header, detected from the first bytes.
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise FhirUnavailable("FHIR server answered with an unsupported Content-Encoding")

    def feed(self, raw: bytes) -> bytes:
        if self._zlib is None:
            self._budget.take(len(raw))
            return raw
        try:
            # At most one byte more than the budget allows: enough to know it is exceeded.
            out: bytes = self._zlib.decompress(raw, max(self._budget.left, 0) + 1)
        except zlib.error as exc:
            raise FhirUnavailable("FHIR server answered with a corrupt compressed body") from exc
        self._budget.take(len(out))
        return out

    def finish(self) -> bytes:
        if self._zlib is None:
            return b""
        if not self._zlib.eof:
            raise FhirUnavailable("FHIR server answered with a truncated compressed body")
        return b""


class FhirClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base: FhirUrl,
        *,
        access_token: str | None,
        max_pages: int,
        max_response_bytes: int,
    ) -> None:
        self._http = http
        self._base = base
        self._token = access_token
        self._max_pages = max_pages
        self._max_bytes = max_response_bytes
        # The fallback's one deadline (event-loop time), set by the caller that enforces it.
        self.deadline = math.inf

    @property
    def base(self) -> FhirUrl:
        return self._base

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/fhir+json, application/json",
            "Accept-Encoding": ACCEPTED_ENCODINGS,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _get(self, url: str, budget: _Budget) -> tuple[int, Any]:
        url = self.checked_url(url)
        try:
            async with self._http.stream(
                "GET", url, headers=self._headers(), follow_redirects=False
            ) as response:
                if response.status_code == 404:
                    return 404, None
                if response.status_code != 200:
                    raise FhirUnavailable(f"FHIR server answered HTTP {response.status_code}")
                content = await _read_capped(response, budget)
        except httpx.HTTPError as exc:
            raise FhirUnavailable(f"{type(exc).__name__} calling the FHIR server") from exc
        except httpx.InvalidURL as exc:  # URLs are checked before; this is the last guard
            raise FhirUnavailable("a FHIR URL the HTTP client refuses") from exc
        # Parsing holds the event loop (~10 ms per MB): once the deadline has passed, a body that
        # arrived too late is dropped instead of delaying every call on this worker.
        if asyncio.get_running_loop().time() >= self.deadline:
            raise TimeoutError
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise FhirUnavailable("FHIR server answered with a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise FhirUnavailable("FHIR server answered with JSON that is not a resource")
        return 200, body

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET one resource; None when the server says 404. Counted in the FHIR query metrics."""
        with metrics.FhirQuery(metrics.fhir_resource_label(path)) as query:
            status, body = await self._get(f"{self._base}/{path}", _Budget(self._max_bytes))
            if status == 404 or body is None:
                query.outcome = "not-found"
                return None
            if body.get("resourceType") == "OperationOutcome":
                raise FhirUnavailable("FHIR server answered a read with an OperationOutcome")
            return dict(body)

    async def search(self, path: str) -> list[dict[str, Any]]:
        """GET a search and follow `next` links (up to the page cap); the matched resources."""
        return await self.search_url(f"{self._base}/{path}")

    async def search_url(self, start: str) -> list[dict[str, Any]]:
        """Follow a search from an absolute URL on this server (a prefetch Bundle's `next`)."""
        relative = start.removeprefix(str(self._base))
        with metrics.FhirQuery(metrics.fhir_resource_label(relative)):
            return await self._search_from(start)

    async def _search_from(self, start: str) -> list[dict[str, Any]]:
        url: str | None = start
        budget = _Budget(self._max_bytes)
        resources: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            status, body = await self._get(url, budget)
            if status == 404 or body is None:
                raise FhirUnavailable("FHIR server answered a search with 404")
            resources.extend(bundle_resources(body))
            pages += 1
            following = next_link(body)
            if following is not None and pages >= self._max_pages:
                raise FhirUnavailable("FHIR search has more pages than the service may follow")
            url = following
        return resources

    def checked_url(self, url: str) -> str:
        """The URL to call (every URL, `next` links included), or FhirUnavailable when the
        token may not go there (records/fhir_urls.py)."""
        try:
            return check_next(url, self._base)
        except UnsafeFhirUrl as exc:
            raise FhirUnavailable(f"a FHIR URL the service may not call: it {exc}") from None


async def _read_capped(response: httpx.Response, budget: _Budget) -> bytes:
    """The decoded body, read chunk by chunk; stops as soon as the budget is exceeded."""
    if response.is_stream_consumed:
        # A transport that hands over finished responses (in-process mocks): already decoded.
        budget.take(len(response.content))
        return response.content
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "")
    if declared.isdigit() and not encoding and int(declared) > budget.left:
        budget.take(int(declared))  # raises before a byte of the body is read
    inflater = _Inflater(encoding, budget)
    chunks: list[bytes] = []
    async for raw in response.aiter_raw():
        chunks.append(inflater.feed(raw))
    chunks.append(inflater.finish())
    return b"".join(chunks)


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
    """The Bundle's `next` link as given (checked by the caller before it is followed)."""
    links = body.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None
