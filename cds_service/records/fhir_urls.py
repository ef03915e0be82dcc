"""The one place that decides whether a FHIR URL may be called with the EHR's bearer token.

`fhirServer` comes from the hook request and `next` links come from the prefetch or the FHIR
server's own answers: all are untrusted text. Before anything is sent, a URL must be a plain
http(s) URL: a syntactically valid host (DNS name, dotted IPv4 or bracketed IPv6), a numeric port
1-65535 if any, no userinfo, no `.`/`..` path segment (also percent-encoded), no encoded `/` or
`\\` in the path, no fragment, and only printable ASCII (no control characters, whitespace or
backslashes). `fhirServer` also has no query; a `next` link must stay on that server (scheme, host,
port) under its base path. Nothing here raises anything but `UnsafeFhirUrl`, and nothing here
touches the network.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_BASE_URL_CHARS = 2048
# Servers put their search state in `next` links; HAPI's stay well under 1 KiB.
MAX_NEXT_URL_CHARS = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)"
    r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?P<fragment>#.*)?",
    re.DOTALL,
)
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>.*))?", re.DOTALL)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# In a path, an encoded dot, slash, backslash or control character is how traversal hides from
# a prefix check (servers and proxies disagree on when they decode it).
_ENCODED_IN_PATH = re.compile(r"%(?:2[EeFf]|5[Cc]|[01][0-9A-Fa-f]|7[Ff])")


class UnsafeFhirUrl(ValueError):
    """A URL the service will not call; the message says why (never the whole URL)."""


@dataclass(frozen=True)
class FhirUrl:
    """A checked URL: lower-case scheme and host, the port if given, the path as given."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None = None

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query is not None else ""
        return f"{self.origin}{self.path}{query}"

    def same_server(self, other: FhirUrl) -> bool:
        return (self.scheme, self.host, self.effective_port) == (
            other.scheme,
            other.host,
            other.effective_port,
        )

    def under_path(self, base_path: str) -> bool:
        """True when this URL's path is `base_path` or below it (at a `/` boundary)."""
        prefix = base_path.rstrip("/")
        return self.path == prefix or self.path.startswith(prefix + "/") or not prefix


def parse_fhir_url(url: object, *, query_allowed: bool, max_chars: int) -> FhirUrl:
    """Check one URL against the rules in the module docstring; UnsafeFhirUrl when it fails."""
    if not isinstance(url, str) or not url:
        raise UnsafeFhirUrl("not a non-empty string")
    if len(url) > max_chars:
        raise UnsafeFhirUrl(f"longer than {max_chars} characters")
    if not all("!" <= ch <= "~" for ch in url):
        raise UnsafeFhirUrl("contains whitespace, control or non-ASCII characters")
    if "\\" in url:
        raise UnsafeFhirUrl("contains a backslash")
    if _PERCENT.search(url):
        raise UnsafeFhirUrl("contains a malformed percent escape")
    match = _URL.fullmatch(url)
    if match is None:
        raise UnsafeFhirUrl("not an absolute http(s) URL")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeFhirUrl("scheme is not http or https")
    if match["fragment"] is not None:
        raise UnsafeFhirUrl("has a fragment")
    query = match["query"]
    if query is not None and not query_allowed:
        raise UnsafeFhirUrl("has a query")
    host, port = _authority(match["authority"])
    path = match["path"]  # empty or starting with "/": the authority ends at the first "/"
    if _ENCODED_IN_PATH.search(path):
        raise UnsafeFhirUrl("path has an encoded dot, slash, backslash or control character")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise UnsafeFhirUrl("path has a '.' or '..' segment")
    return FhirUrl(scheme=scheme, host=host, port=port, path=path, query=query)


def _authority(authority: str) -> tuple[str, int | None]:
    if "@" in authority:
        raise UnsafeFhirUrl("has userinfo")
    match = _HOST_PORT.fullmatch(authority)
    if match is None:  # pragma: no cover - the pattern matches every string
        raise UnsafeFhirUrl("has no valid host")
    host, port_text = match["host"], match["port"]
    port: int | None = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise UnsafeFhirUrl("port is not a number from 1 to 65535")
        port = int(port_text)
    return _host(host), port


def _host(host: str) -> str:
    if host.startswith("["):
        if "%" in host:  # a zone id names a local interface, never a remote FHIR server
            raise UnsafeFhirUrl("bracketed host has a zone id")
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UnsafeFhirUrl("bracketed host is not an IPv6 address") from None
        return f"[{address.compressed}]"
    if not host or len(host) > 253:
        raise UnsafeFhirUrl("has no valid host")
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeFhirUrl("host is not a valid DNS name or IPv4 address")
    if labels[-1].isdigit():
        # All-numeric hosts are IPv4 addresses; shorthand forms (127.1, one integer) are not taken.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise UnsafeFhirUrl("host is not a valid IPv4 address") from None
    return host.lower()


def parse_base(url: object) -> FhirUrl:
    """`fhirServer`: a base URL without query or fragment (a trailing `/` is dropped)."""
    parsed = parse_fhir_url(url, query_allowed=False, max_chars=MAX_BASE_URL_CHARS)
    return FhirUrl(parsed.scheme, parsed.host, parsed.port, parsed.path.rstrip("/"))


def check_next(url: object, base: FhirUrl) -> str:
    """A `next` link that may be followed with the bearer token: the URL to call."""
    parsed = parse_fhir_url(url, query_allowed=True, max_chars=MAX_NEXT_URL_CHARS)
    if not parsed.same_server(base):
        raise UnsafeFhirUrl("leaves the request's FHIR server")
    if not parsed.under_path(base.path):
        raise UnsafeFhirUrl("leaves the FHIR server's base path")
    return str(parsed)


def allowed_by(url: object, prefixes: list[str]) -> bool:
    """True when `url` is a safe URL under one of `prefixes` (CDS_FHIR_ALLOWLIST); never raises.

    A prefix without port and path admits that host on any port; otherwise the port must match
    (the scheme's default when the prefix names none) and the path must be at or below the
    prefix's path. Entries that do not parse admit nothing.
    """
    try:
        candidate = parse_fhir_url(url, query_allowed=True, max_chars=MAX_NEXT_URL_CHARS)
    except UnsafeFhirUrl:
        return False
    for prefix in prefixes:
        try:
            entry = parse_base(prefix)
        except UnsafeFhirUrl:
            continue
        if candidate.scheme != entry.scheme or candidate.host != entry.host:
            continue
        any_port = entry.port is None and not entry.path
        if not any_port and candidate.effective_port != entry.effective_port:
            continue
        if candidate.under_path(entry.path):
            return True
    return False
