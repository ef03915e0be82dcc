"""Memory of one pod's process tree: `cds-service serve --workers 2` (the Dockerfile's CMD and the
Kubernetes Deployment's command) on PostgreSQL, after a few hundred hook calls.

Sizes the Deployment's resource requests and limits (deploy/kubernetes/deployment.yaml):
- the mix: Synthea patient-view and order-sign calls, then 4.9 MB patient-view calls (just under
  the default CDS_MAX_BODY_BYTES), sent by 8 clients so both workers take their share;
- `ps -o rss` of the supervisor and each worker after the calls (what the pod holds at rest),
  and each process's peak resident set (VmHWM, what the limit must allow).

PostgreSQL is a throwaway cluster from tests/postgres.py (Debian's postgresql package); without
it the store is SQLite in a temporary directory, which the output says.

Run: `.venv/bin/python -m bench.pod_memory [--calls N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import orjson

from bench import requests as scenarios
from bench.__main__ import children
from bench.healthz_under_load import large_patient_view
from tests.postgres import postgres_bindir, running_postgres
from tests.servers import ROOT, free_port, stop, wait_until_ready

CLIENTS = 8


@contextmanager
def database(workdir: Path) -> Iterator[str]:
    bindir = postgres_bindir()
    if bindir is None:
        yield f"sqlite:///{workdir}/pod.db"
        return
    with running_postgres(bindir) as url:
        yield url


async def send(base_url: str, calls: list[tuple[str, bytes]]) -> int:
    """Send every call with CLIENTS clients; the number answered 200."""
    answered = 0
    queue = iter(calls)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal answered
            for path, body in queue:
                r = await client.post(
                    base_url + path, content=body, headers={"content-type": "application/json"}
                )
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:300]}")
                answered += 1

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return answered


def rss_kb(pids: list[int]) -> dict[int, int]:
    out = subprocess.run(
        ["ps", "-o", "pid=,rss=", "-p", ",".join(map(str, pids))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(pid): int(rss) for pid, rss in (line.split() for line in out.splitlines())}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/<pid>/stat, clock ticks)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def process_role(pid: int, supervisor: int) -> str:
    """What a process of the tree is: uvicorn's supervisor, multiprocessing's resource tracker
    (started with the spawned workers) or a worker."""
    if pid == supervisor:
        return "supervisor"
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return "resource tracker" if b"resource_tracker" in command else f"worker {pid}"


def run(calls: int) -> str:
    small = [
        ("/cds-services/lbp-patient-view", orjson.dumps(scenarios.patient_view())),
        ("/cds-services/lbp-order-sign", orjson.dumps(scenarios.order_sign(date.today()))),
    ]
    mix = [small[i % 2] for i in range(calls)]
    large = [("/cds-services/lbp-patient-view", large_patient_view())] * 20
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp)) as url:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
            "CDS_REQUIRE_AUTH": "false",
            "CDS_PUBLIC_BASE_URL": base_url,
            "CDS_DATABASE_URL": url,
            "CDS_LOG_LEVEL": "WARNING",
        }
        log = Path(tmp) / "serve.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "cds_service", "serve", "--host", "127.0.0.1"]
                + ["--port", str(port), "--workers", "2", "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(process, f"{base_url}/readyz", log, seconds=60)
            pids = [process.pid, *children(process.pid)]
            cpu_before = cpu_seconds(pids)
            answered = asyncio.run(send(base_url, mix))
            cpu_per_call_ms = (cpu_seconds(pids) - cpu_before) / calls * 1000
            rest = rss_kb(pids)
            answered += asyncio.run(send(base_url, large))
            after = rss_kb([process.pid, *children(process.pid)])
            peaks = {pid: peak_kb(pid) for pid in after}
            roles = {pid: process_role(pid, process.pid) for pid in after}
        finally:
            stop(process)
    store = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    lines = [
        f"`cds-service serve --workers 2` on {store}, {answered} calls answered 200 "
        f"({calls} Synthea patient-view/order-sign, then 20 x {len(large[0][1]):,} B patient-view)",
        "",
        "| process | RSS after small calls MB | RSS after large calls MB | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for pid in after:
        role = roles.get(pid, f"process {pid}")
        lines.append(
            f"| {role} | {rest.get(pid, 0) / 1024:.1f} | {after[pid] / 1024:.1f} "
            f"| {peaks[pid] / 1024:.1f} |"
        )
    lines.append(
        f"| pod total | {sum(rest.values()) / 1024:.1f} | {sum(after.values()) / 1024:.1f} "
        f"| {sum(peaks.values()) / 1024:.1f} |"
    )
    lines += ["", f"CPU per small call (all processes): {cpu_per_call_ms:.2f} ms"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=400, help="small hook calls (default 400)")
    print(run(parser.parse_args().calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
