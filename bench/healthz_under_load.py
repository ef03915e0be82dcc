"""`/healthz` while 4.9 MB patient-view calls keep the service busy, and the answer size of
order-sign calls with 100 / 300 / 1,000 opioid drafts.

Runs the service under uvicorn on 127.0.0.1 (as `make bench` does), then:
- `/healthz` latency with the service idle;
- `/healthz` latency while `--clients` clients post 4.9 MB patient-view requests back to back
  (a health check is sent every few milliseconds for the whole run);
- the answer bytes of order-sign calls with 100, 300 and 1,000 opioid drafts (linear, RULES.md v2).

Run: `.venv/bin/python -m bench.healthz_under_load [--quick]`. Prints a markdown table; `run()`
returns the same figures as a dict for bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from datetime import date
from typing import Any

import httpx
import orjson

from bench import requests as scenarios
from bench.harness import Server, percentile, service_env

BODY_BYTES = 4_900_000
DRAFT_COUNTS = (100, 300, 1000)


def large_patient_view(limit: int = BODY_BYTES) -> bytes:
    """The Synthea patient-view scaled to the largest body not over `limit` bytes."""
    low, high, best = 100, 20_000, b""
    while low <= high:
        middle = (low + high) // 2
        body = orjson.dumps(scenarios.patient_view(middle))
        if len(body) <= limit:
            best, low = body, middle + 1
        else:
            high = middle - 1
    return best


def opioid_drafts(count: int, today: date) -> bytes:
    """order-sign with `count` oxycodone drafts (distinct ids) for the Synthea patient."""
    payload = scenarios.order_sign(today)
    bundle = payload["context"]["draftOrders"]
    opioid = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    )
    entries = []
    for i in range(count):
        draft = copy.deepcopy(opioid)
        draft["id"] = f"bench-oxycodone-{i}"
        entries.append({"resource": draft})
    bundle["entry"] = entries
    return orjson.dumps(payload)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


async def _healthz(client: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    response = await client.get(url + "/healthz")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"/healthz: HTTP {response.status_code}")
    return elapsed


async def _idle(url: str, n: int) -> list[float]:
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(10):
            await _healthz(client, url)
        out = []
        for _ in range(n):
            out.append(await _healthz(client, url))
            await asyncio.sleep(0.005)
        return out


async def _under_load(
    url: str, body: bytes, *, big_requests: int, clients: int
) -> tuple[list[float], list[float]]:
    """Health-check latencies while `clients` clients send `big_requests` large calls in all."""
    headers = {"content-type": "application/json"}
    big: list[float] = []
    health: list[float] = []
    remaining = iter(range(big_requests))
    done = asyncio.Event()

    async def poster(client: httpx.AsyncClient) -> None:
        for _ in remaining:
            started = time.perf_counter()
            response = await client.post(
                url + "/cds-services/lbp-patient-view", content=body, headers=headers
            )
            big.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"patient-view: HTTP {response.status_code}")

    async def prober(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            health.append(await _healthz(client, url))
            await asyncio.sleep(0.01)

    async with (
        httpx.AsyncClient(timeout=120) as big_client,
        httpx.AsyncClient(timeout=30) as health_client,
    ):
        await _healthz(health_client, url)
        probe = asyncio.create_task(prober(health_client))
        try:
            await asyncio.gather(*(poster(big_client) for _ in range(clients)))
        finally:
            done.set()
            await probe
    return health, big


async def _answer_bytes(url: str, today: date) -> dict[int, int]:
    out: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=120) as client:
        for count in DRAFT_COUNTS:
            response = await client.post(
                url + "/cds-services/lbp-order-sign",
                content=opioid_drafts(count, today),
                headers={"content-type": "application/json"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"order-sign x{count}: HTTP {response.status_code}")
            out[count] = len(response.content)
    return out


def run(*, quick: bool = False, clients: int = 1) -> dict[str, Any]:
    body = large_patient_view()
    big_requests = 6 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        env = service_env(tmp)
        env["CDS_MAX_BODY_BYTES"] = "5000000"  # the contract default: 4.9 MB fits
        env["CDS_MAX_DRAFT_ORDERS"] = str(max(DRAFT_COUNTS))
        with Server("cds_service.main:app", tmp, env=env) as server:
            idle = asyncio.run(_idle(server.url, 100 if quick else 300))
            health, big = asyncio.run(
                _under_load(server.url, body, big_requests=big_requests, clients=clients)
            )
            sizes = asyncio.run(_answer_bytes(server.url, date.today()))
    return {
        "body_bytes": len(body),
        "resources": scenarios.count_resources(orjson.loads(body)),
        "clients": clients,
        "healthz_idle": _summary(idle),
        "healthz_under_load": _summary(health),
        "large_call": _summary(big),
        "order_sign_answer_bytes": sizes,
    }


def render(result: dict[str, Any]) -> str:
    idle, loaded, big = result["healthz_idle"], result["healthz_under_load"], result["large_call"]
    lines = [
        f"`/healthz` while {result['clients']} client(s) post {result['body_bytes']:,}-byte "
        f"patient-view calls ({result['resources']:,} resources) back to back:",
        "",
        "| measured | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| /healthz, idle | {idle['n']} | {idle['p50_ms']} | {idle['p99_ms']} | {idle['max_ms']} |",
        f"| /healthz, under load | {loaded['n']} | {loaded['p50_ms']} | {loaded['p99_ms']} | "
        f"{loaded['max_ms']} |",
        f"| 4.9 MB patient-view call | {big['n']} | {big['p50_ms']} | {big['p99_ms']} | "
        f"{big['max_ms']} |",
        "",
        "| opioid drafts (order-sign) | answer bytes | bytes per draft |",
        "|---|---|---|",
    ]
    for count, size in result["order_sign_answer_bytes"].items():
        lines.append(f"| {count:,} | {size:,} | {size // count:,} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.healthz_under_load")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--clients", type=int, default=1, help="clients posting large calls")
    args = parser.parse_args()
    result = run(quick=args.quick, clients=args.clients)
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
