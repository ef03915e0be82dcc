"""Instructions per hook call, counted by valgrind's callgrind: repeatable where this VM's wall
clock moves by up to 50% from minute to minute.

`python -m bench.instructions [--calls N] [--compare-with CHECKOUT]` runs, for this checkout (and
CHECKOUT), one Python process under `valgrind --tool=callgrind --instr-atstart=no` that builds
the app (auth off, SQLite, WARNING logs, as the bench's servers), runs its lifespan, warms up
with 20 calls, then has instrumentation switched on (callgrind_control) for exactly N
patient-view calls (the Synthea LBP patient as prefetch, bench/requests.py) made as ASGI calls
in-process. Prints instructions per call; the card-log writer's thread is counted too (it is part
of what a call costs). Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_CALLS = 20
PATH = "/cds-services/lbp-patient-view"


async def _call(app: Any, body: bytes) -> int:
    status = 0
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return status


async def _worker(calls: int, body: bytes) -> None:
    from cds_service.main import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        for _ in range(WARM_UP_CALLS):
            assert await _call(app, body) == 200
        print("READY", flush=True)
        sys.stdin.readline()
        for _ in range(calls):
            assert await _call(app, body) == 200
        print("DONE", flush=True)
        sys.stdin.readline()


def instrument(pid: int, state: str) -> None:
    """Switch callgrind's instrumentation of process `pid` "on" or "off"."""
    subprocess.run(
        ["callgrind_control", "-i", state, str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def count(label: str, checkout: Path, calls: int, body_file: Path, workdir: Path) -> int:
    """Instructions executed during `calls` patient-view calls of `checkout`'s service."""
    out_file = workdir / f"callgrind-{label}.out"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CDS_", "PROMETHEUS_"))},
        # This file runs the calls (as a script: no `bench` package needed); the service is the
        # checkout's.
        "PYTHONPATH": str(checkout),
        "CDS_REQUIRE_AUTH": "false",
        "CDS_DATABASE_URL": f"sqlite:///{workdir}/bench-{label}.db",
        "CDS_LOG_LEVEL": "WARNING",
    }
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        __file__,
        "--worker",
        str(calls),
        str(body_file),
    ]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    instrument(process.pid, "on")
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "DONE"
    instrument(process.pid, "off")
    process.stdin.write("stop\n")
    process.stdin.flush()
    process.wait(timeout=600)
    totals = re.search(r"^totals:\s+(\d+)", out_file.read_text(), re.MULTILINE)
    assert totals is not None, "no totals in the callgrind output"
    return int(totals.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--compare-with", type=Path, metavar="CHECKOUT")
    parser.add_argument("--worker", nargs=2, metavar=("CALLS", "BODY_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(int(args.worker[0]), Path(args.worker[1]).read_bytes()))
        return 0
    from bench import requests as scenarios

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        body_file = workdir / "patient-view.json"
        body_file.write_bytes(orjson.dumps(scenarios.patient_view()))
        checkouts = [("this", ROOT)]
        if args.compare_with is not None:
            checkouts.append(("other", args.compare_with.resolve()))
        per_call = {}
        for label, checkout in checkouts:
            total = count(label, checkout, args.calls, body_file, workdir)
            per_call[label] = total / args.calls
            print(
                f"{label} ({checkout}): {total:,} instructions for {args.calls} calls, "
                f"{per_call[label]:,.0f} per call"
            )
        if "other" in per_call:
            print(f"this / other: {per_call['this'] / per_call['other']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
