"""Every Prometheus metric the service exports (`GET /metrics`), defined once here.

Labels never hold patient data or request text: service ids come from the registry (any other id
is `unknown`), topics and indicators from the service's own cards, resource types from a fixed
list (`other` otherwise), reason codes from the service's own errors. So every label has a small,
fixed set of values.

Several workers (`cds-service serve --workers N`): a scrape reaches one worker, so the workers
write their values to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode)
and `/metrics` adds them up. `prepare_for_workers` sets that directory up in the parent process
before any worker starts; prometheus-client picks the mode when it is first imported, which in a
worker happens after the variable is set.

The hot path binds label values once (`_child` caches the children), so a hook call costs a few
dictionary lookups and increments, without building label dicts.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from cds_service.hooks.registry import SERVICES

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "unknown"
OTHER = "other"
# 1 ms to 10 s: a realistic hook call takes a few ms, a 20,000-resource one close to a second,
# the FHIR fallback's budget is CDS_FHIR_TIMEOUT_SECONDS (4 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FHIR_RESOURCE_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Medication",
        "Procedure",
        "QuestionnaireResponse",
        "Encounter",
    }
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


# Where this process's values live (None: in memory), fixed when prometheus-client picked its mode
# on import, whatever the environment says later.
MULTIPROCESS_DIR = multiprocess_dir()
# No `*_created` series: Prometheus does not need them, and they double the text of every scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)

HOOK_CALLS = Counter(
    "cds_hook_calls",
    "Hook calls (POST /cds-services/{id}) answered, by service id and HTTP status",
    ["service", "status"],
    registry=REGISTRY,
)
HOOK_CALL_SECONDS = Histogram(
    "cds_hook_call_duration_seconds",
    "Time from a hook call's arrival to the end of its answer, by service id",
    ["service"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
CARDS = Counter(
    "cds_cards",
    "Cards issued, by topic code and indicator",
    ["topic", "indicator"],
    registry=REGISTRY,
)
FHIR_QUERIES = Counter(
    "cds_fhir_queries",
    "FHIR fallback queries (a read, or a search with all its pages), by resource type and outcome",
    ["resource", "outcome"],
    registry=REGISTRY,
)
FHIR_QUERY_SECONDS = Histogram(
    "cds_fhir_query_duration_seconds",
    "Duration of FHIR fallback queries (all pages), by resource type",
    ["resource"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ERROR_ANSWERS = Counter(
    "cds_error_answers",
    "4xx and 5xx answers, by HTTP status and reason code",
    ["status", "reason"],
    registry=REGISTRY,
)
CARD_LOG_DROPPED = Counter(
    "cds_card_log_dropped_entries",
    "Card log entries dropped because the in-memory backlog was full (store down too long)",
    registry=REGISTRY,
)
CARD_LOG_PENDING = Gauge(
    "cds_card_log_pending_entries",
    "Card log entries waiting in memory to be written",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, bound once per label values."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def service_label(service_id: str) -> str:
    """A registry service id as is; anything else (caller text) as `unknown`."""
    return service_id if service_id in SERVICES else UNKNOWN


def observe_hook_call(service: str, status: int, seconds: float) -> None:
    """One answered hook call; `service` is a `service_label`."""
    _child(HOOK_CALLS, service, str(status)).inc()
    _child(HOOK_CALL_SECONDS, service).observe(seconds)


def count_cards(topics: Iterable[str], indicators: Iterable[str]) -> None:
    for topic, indicator in zip(topics, indicators, strict=True):
        _child(CARDS, topic, indicator).inc()


def count_error_answer(status: int, reason: str) -> None:
    _child(ERROR_ANSWERS, str(status), reason).inc()


def card_log_dropped(entries: int) -> None:
    CARD_LOG_DROPPED.inc(entries)


def card_log_pending(entries: int) -> None:
    CARD_LOG_PENDING.set(entries)


def fhir_resource_label(relative: str) -> str:
    """The resource type a FHIR query path (`Condition?patient=..`, `Patient/<id>`) names, from
    the fixed list; `other` for anything else (a server's paging URL, an unexpected type)."""
    name = relative.lstrip("/").split("?", 1)[0].split("/", 1)[0]
    return name if name in FHIR_RESOURCE_TYPES else OTHER


class FhirQuery:
    """Times one FHIR fallback query and counts it with its outcome: `ok`, or what the code sets
    (`not-found`), or from the exception that ends it: its `metric_outcome` attribute when it has
    one, `timeout`, `cancelled`, else `failed`."""

    __slots__ = ("outcome", "resource", "started")

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.outcome = "ok"
        self.started = 0.0

    def __enter__(self) -> FhirQuery:
        self.started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self.started
        if exc is not None:
            self.outcome = _outcome_of(exc)
        _child(FHIR_QUERIES, self.resource, self.outcome).inc()
        _child(FHIR_QUERY_SECONDS, self.resource).observe(seconds)


def _outcome_of(exc: BaseException) -> str:
    named = getattr(exc, "metric_outcome", None)
    if isinstance(named, str):
        return named
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "failed"


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type; in multiprocess mode, the
    sum over every worker's files."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def prepare_for_workers(workers: int) -> None:
    """In the parent process, before uvicorn starts `workers` > 1 workers: a fresh private
    PROMETHEUS_MULTIPROC_DIR (removed when this process exits) unless the operator named one
    (then it is created if missing and left as it is: clearing it between runs is theirs)."""
    if workers <= 1:
        return
    given = multiprocess_dir()
    if given:
        os.makedirs(given, exist_ok=True)
        return
    path = tempfile.mkdtemp(prefix="cds-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def forget_this_process() -> None:
    """At a worker's clean stop: its live gauges (the card log backlog) leave the sum."""
    path = MULTIPROCESS_DIR
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
