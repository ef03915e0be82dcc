"""`make bench`: the service against a bare FastAPI baseline on the same uvicorn, on 127.0.0.1.

Scenarios: patient-view with the Synthea LBP patient as prefetch, the same record scaled to
2,000 and 20,000 resources, order-sign with opioid + imaging drafts, patient-view with prefetch
absent against the real FHIR server (sekmet-fhir), and requests/s with 1 and 2 workers.
Prints a table and writes bench/results/<date>.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import requests as scenarios

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    scenario: str
    resources: int
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float
    baseline_p50_ms: float | None = None
    ratio_p50: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of the largest worker process."""
    pids = [pid, *children(pid)]
    peaks = []
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    # With several workers the parent only supervises; the workers hold the data.
    worker_peaks = peaks[1:] if len(peaks) > 1 else peaks
    return round(max(worker_peaks), 1) if worker_peaks else 0.0


class Server:
    def __init__(self, app: str, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{app} exited: {self.process.stderr.read().decode()[-2000:] if self.process.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def fire(
    url: str, body: bytes, *, n: int, concurrency: int, warmup: int = 5
) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        headers = {"content-type": "application/json"}
        for _ in range(warmup):
            r = await client.post(url, content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {r.status_code} {r.text[:300]}")
        latencies: list[float] = []
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {r.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def measure(
    name: str, server: Server, path: str, payload: dict[str, Any], n: int, concurrency: int = 1
) -> Row:
    body = orjson.dumps(payload)
    latencies, elapsed = asyncio.run(fire(server.url + path, body, n=n, concurrency=concurrency))
    return Row(
        scenario=name,
        resources=scenarios.count_resources(payload),
        requests=n,
        p50_ms=round(statistics.median(latencies), 2),
        p95_ms=round(percentile(latencies, 0.95), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        rps=round(n / elapsed, 1),
    )


def service_env(db_dir: str) -> dict[str, str]:
    return {
        "CDS_REQUIRE_AUTH": "false",
        "CDS_DATABASE_URL": f"sqlite:///{db_dir}/bench.db",
        "CDS_FHIR_ALLOWLIST": "http://127.0.0.1",
        # The 20,000-resource body is ~30 MB; the contract default limit is 5 MB.
        "CDS_MAX_BODY_BYTES": "200000000",
        "CDS_LOG_LEVEL": "WARNING",
    }


def fhir_query_figures(fhir_base: str, repeats: int = 30) -> tuple[float, str, float]:
    """The queries the service makes for patient-view, made directly: the slowest one's median,
    its name, and the median of all of them in parallel (what the service can at best achieve
    against a server that may serialise them)."""
    from cds_service.config import Settings
    from cds_service.hooks.registry import SERVICES
    from cds_service.records.data import DataKey, prefetch_template, render_template

    page = Settings(require_auth=False).fhir_page_size
    urls: dict[str, str] = {}
    for key in SERVICES["lbp-patient-view"].data:
        query = render_template(prefetch_template(key), scenarios.PATIENT_ID)
        urls[key.value] = f"{fhir_base}/{query}" + (
            "" if key is DataKey.PATIENT else f"&_count={page}"
        )
    headers = {"Authorization": "Bearer bench"}

    async def measure_all() -> tuple[dict[str, float], float]:
        medians: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            for name, url in urls.items():
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    (await client.get(url, headers=headers)).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                medians[name] = statistics.median(times)
            together = []
            for _ in range(repeats):
                started = time.perf_counter()
                await asyncio.gather(*(client.get(u, headers=headers) for u in urls.values()))
                together.append((time.perf_counter() - started) * 1000)
        return medians, statistics.median(together)

    medians, parallel = asyncio.run(measure_all())
    slowest = max(medians, key=lambda k: medians[k])
    return round(medians[slowest], 2), slowest, round(parallel, 2)


def run(quick: bool) -> list[Row]:
    n = 60 if quick else 300
    rows: list[Row] = []
    today = date.today()
    payloads = {
        "patient-view (Synthea LBP)": ("/cds-services/lbp-patient-view", scenarios.patient_view()),
        "patient-view x2,000 resources": (
            "/cds-services/lbp-patient-view",
            scenarios.patient_view(2000),
        ),
        "patient-view x20,000 resources": (
            "/cds-services/lbp-patient-view",
            scenarios.patient_view(20000),
        ),
        "order-sign opioid + lumbar MRI": (
            "/cds-services/lbp-order-sign",
            scenarios.order_sign(today),
        ),
    }
    counts = {"patient-view x20,000 resources": max(10, n // 10)}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Server("bench.baseline_app:app")
        service = Server("cds_service.main:app", env=service_env(tmp))
        try:
            for name, (path, payload) in payloads.items():
                base = measure(name, baseline, path, payload, counts.get(name, n))
                row = measure(name, service, path, payload, counts.get(name, n))
                row.baseline_p50_ms = base.p50_ms
                row.ratio_p50 = round(row.p50_ms / base.p50_ms, 2)
                row.peak_rss_mb = peak_rss_mb(service.process.pid)
                rows.append(row)
        finally:
            service.stop()
            baseline.stop()

        # Prefetch absent: the service queries the real FHIR server, all queries in parallel.
        sys.path.insert(0, str(ROOT))
        from tests.fhir_server import FIXTURES, running_fhir_server

        with running_fhir_server(Path(tmp) / "sekmet") as fhir:
            fhir.load_file(
                FIXTURES / "synthea" / "lbp-fb7c882a-f897-e7c5-67e0-825e7fd55d15.transaction.json"
            )
            slowest, which, parallel = fhir_query_figures(fhir.base_url)
            service = Server("cds_service.main:app", env=service_env(tmp))
            try:
                row = measure(
                    "patient-view, prefetch absent (real FHIR server)",
                    service,
                    "/cds-services/lbp-patient-view",
                    scenarios.patient_view_absent(fhir.base_url),
                    max(30, n // 5),
                )
                row.baseline_p50_ms = slowest
                row.ratio_p50 = round(row.p50_ms / slowest, 2)
                row.peak_rss_mb = peak_rss_mb(service.process.pid)
                row.note = (
                    f"baseline = slowest single FHIR query ({which}); the same "
                    f"queries made directly in parallel: {parallel} ms"
                )
                rows.append(row)
            finally:
                service.stop()

        # Scale-out: requests/s with 1 and 2 workers, 8 concurrent clients.
        for workers in (1, 2):
            service = Server("cds_service.main:app", workers=workers, env=service_env(tmp))
            try:
                row = measure(
                    f"patient-view throughput, {workers} worker(s), 8 clients",
                    service,
                    "/cds-services/lbp-patient-view",
                    scenarios.patient_view(),
                    n * 2,
                    concurrency=8,
                )
                row.peak_rss_mb = peak_rss_mb(service.process.pid)
                rows.append(row)
            finally:
                service.stop()
    return rows


def render(rows: list[Row]) -> str:
    notes = [f"- {r.scenario}: {r.note}" for r in rows if r.note]
    header = "| scenario | resources | n | p50 ms | p95 ms | p99 ms | req/s | baseline p50 ms | ratio | peak RSS MB |"
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.resources} | {r.requests} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} | {r.rps} | "
            f"{r.baseline_p50_ms if r.baseline_p50_ms is not None else '-'} | {r.ratio_p50 if r.ratio_p50 is not None else '-'} | "
            f"{r.peak_rss_mb if r.peak_rss_mb is not None else '-'} |"
        )
    return "\n".join(lines + ([""] + notes if notes else []))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    rows = run(args.quick)
    table = render(rows)
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    info = machine()
    text = f"# Benchmark {when}\n\nMachine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']}\n\n{table}\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / datetime.now().strftime("%Y-%m-%d")
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    stem.with_suffix(".json").write_text(
        json.dumps({"when": when, "machine": info, "rows": [asdict(r) for r in rows]}, indent=2),
        encoding="utf-8",
    )
    print(f"wrote {stem.with_suffix('.md').relative_to(ROOT)} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
