"""How long a hook call waits for a FHIR server that does not answer (CDS_FHIR_TIMEOUT_SECONDS).

`python -m bench.fallback_deadline`: the service under uvicorn on 127.0.0.1 with a 1 s FHIR budget,
and four bad FHIR servers on 127.0.0.1: one that accepts connections and never answers
("silent"), one that reads the request, sends its headers and then trickles the body one byte
every 50 ms ("trickle"), one whose accept queue is full so connects hang ("no-accept"), and one
that answers a ~4 MB Bundle 50 ms before the budget ends ("late-large": parsing after the
deadline).
Patient-view calls without prefetch (five parallel FHIR queries each) are fired ~10 one after
another and ~20 at once; the table shows p50 and worst-case time to the 412 against the target
of budget + 100 ms. `run()` returns the same figures as a dict for bench results.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from typing import Any

import httpx
import orjson

from bench.harness import Server, service_env

BUDGET_SECONDS = 1.0
SLACK_MS = 100.0
TRICKLE_INTERVAL_SECONDS = 0.05
LATE_MARGIN_SECONDS = 0.05
# ~4 MB of small resources: parsing it holds the service's event loop for tens of milliseconds.
LATE_BODY = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Basic", "id": f"b{i}", "code": {"text": "padding"}}}
            for i in range(50_000)
        ],
    }
)


# ---- bad FHIR servers, on one event loop in a background thread -------------------------------


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, never read, never answer; hold the socket until the client gives up."""
    with suppress(ConnectionError):
        await reader.read()  # returns when the client closes
    writer.close()


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, answer 200 headers at once, then one body byte every 50 ms."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\n"
            b"content-length: 1000000\r\n\r\n"
        )
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(TRICKLE_INTERVAL_SECONDS)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _late_large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, wait until just before the budget ends, then send a large Bundle fast."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(BUDGET_SECONDS - LATE_MARGIN_SECONDS)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\n"
            + f"content-length: {len(LATE_BODY)}\r\n\r\n".encode()
            + LATE_BODY
        )
        await writer.drain()
        await reader.read()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class BadFhirServers:
    """The silent and trickle servers on a thread's event loop, and a listener that never accepts."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stuck: list[socket.socket] = []

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            handlers = (("silent", _silent), ("trickle", _trickle), ("late-large", _late_large))
            for name, handler in handlers:
                server = await asyncio.start_server(handler, "127.0.0.1", 0)
                self.ports[name] = server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        # Backlog 0 and never accept(): once the queue holds one connection, further SYNs are
        # dropped and a connect hangs until the caller's own deadline.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self._stuck.append(listener)
        self.ports["no-accept"] = listener.getsockname()[1]
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.ports["no-accept"]))
            self._stuck.append(filler)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        for s in self._stuck:
            s.close()


def patient_view(fhir_server: str) -> bytes:
    return orjson.dumps(
        {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": fhir_server,
            "context": {"userId": "Practitioner/dr-1", "patientId": "pt-1"},
        }
    )


async def time_calls(url: str, body: bytes, *, n: int, parallel: bool) -> tuple[list[float], int]:
    """Milliseconds to each answer, and how many answers were not the expected 412."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> tuple[float, int]:
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            return (time.perf_counter() - started) * 1000, response.status_code

        if parallel:
            results = await asyncio.gather(*(one() for _ in range(n)))
        else:
            results = [await one() for _ in range(n)]
    return [ms for ms, _ in results], sum(1 for _, status in results if status != 412)


def measure(
    url: str, server: str, port: int, mode: str, n: int, target_ms: float
) -> dict[str, Any]:
    """`n` patient-view calls naming the bad FHIR server on `port`, one after another
    (mode "sequential") or all at once ("parallel")."""
    body = patient_view(f"http://127.0.0.1:{port}/fhir")
    ms, wrong = asyncio.run(time_calls(url, body, n=n, parallel=mode == "parallel"))
    return {
        "server": server,
        "mode": mode,
        "calls": n,
        "p50_ms": round(statistics.median(ms), 1),
        "max_ms": round(max(ms), 1),
        "not_412": wrong,
        "within_target": max(ms) <= target_ms,
    }


def run(sequential: int = 10, parallel: int = 20, budget: float | None = None) -> dict[str, Any]:
    global BUDGET_SECONDS  # the bad servers time their answers by it
    if budget is not None:
        BUDGET_SECONDS = budget
    target_ms = BUDGET_SECONDS * 1000 + SLACK_MS
    servers = BadFhirServers()
    servers.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = {
                **service_env(workdir),
                "CDS_LOG_LEVEL": "ERROR",
                "CDS_FHIR_TIMEOUT_SECONDS": str(BUDGET_SECONDS),
                "CDS_FHIR_ALLOW_ANONYMOUS": "true",
            }
            with Server("cds_service.main:create_app", workdir, factory=True, env=env) as service:
                url = f"{service.url}/cds-services/lbp-patient-view"
                rows = [
                    measure(url, name, servers.ports[name], mode, n, target_ms)
                    for name in ("silent", "trickle", "no-accept", "late-large")
                    for mode, n in (("sequential", sequential), ("parallel", parallel))
                ]
    finally:
        servers.stop()
    return {
        "scenario": "FHIR fallback deadline",
        "budget_ms": BUDGET_SECONDS * 1000,
        "target_ms": target_ms,
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"FHIR fallback deadline: CDS_FHIR_TIMEOUT_SECONDS={result['budget_ms'] / 1000:g}, "
        f"target <= {result['target_ms']:g} ms to the 412",
        "",
        "| FHIR server | calls | n | p50 ms | max ms | answers not 412 | max within target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['server']} | {r['mode']} | {r['calls']} | {r['p50_ms']} | {r['max_ms']} "
            f"| {r['not_412']} | {'yes' if r['within_target'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.fallback_deadline")
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds")
    args = parser.parse_args()
    result = run(args.sequential, args.parallel, args.budget)
    print(render(result))
    return result


if __name__ == "__main__":
    main()
