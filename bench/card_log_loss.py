"""Cards lost from the card log when the service is stopped under load.

`python -m bench.card_log_loss [--runs N]`: for each run, a fresh SQLite database and a
`uvicorn cds_service.main:create_app --factory` process on 127.0.0.1; a client fires
patient-view calls (one card each) continuously from several connections; after a random
0.5-1.5 s the process gets SIGTERM (or SIGKILL), and the client keeps firing until the socket
closes. A card counts as issued when its 200 answer reached the client; it is lost when its uuid
is not in `card_log` once the process has exited.

For SIGKILL the loss window is the time from the oldest lost card's answer to the signal: what
was still in memory, at most one flush interval (card_log_writer.FLUSH_INTERVAL_SECONDS) plus
the write in progress. `run()` returns the figures as a dict (for bench/results, as `python -m
bench` does), `render()` the markdown table that `python -m bench.card_log_loss` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Server, service_env

CONNECTIONS = 8
EXIT_TIMEOUT_SECONDS = 30


@dataclass
class Trial:
    signal: str
    issued: int
    logged: int
    lost: int
    # SIGKILL: signal time minus the answer time of the oldest lost card (0 when none lost).
    lost_window_ms: float
    exit_code: int | None


def patient_view_body() -> dict[str, Any]:
    """A back-pain chart with no onset (a new episode) and no STarT Back result: one card."""
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    pain = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/pt-1"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007"}]},
    }
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": "pt-1"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "pt-1", "birthDate": "1980-05-01"},
            "conditions": {**empty, "entry": [{"resource": pain}]},
            "startbackObservations": empty,
            "medicationRequests": empty,
            "questionnaireResponses": empty,
        },
    }


def logged_cards(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT card_uuid FROM card_log")}


async def fire_until_signal(
    base_url: str, process: subprocess.Popen[bytes], sig: signal.Signals, after: float
) -> tuple[dict[str, float], float]:
    """Fire calls on CONNECTIONS connections; send `sig` after `after` s and keep firing until
    the service stops answering. The card uuids answered (with their answer time) and the
    signal's time (time.monotonic)."""
    issued: dict[str, float] = {}
    signalled = asyncio.Event()
    sent_at = 0.0
    url = f"{base_url}/cds-services/lbp-patient-view"

    async def worker(http: httpx.AsyncClient) -> None:
        while True:
            try:
                response = await http.post(url, json=patient_view_body())
            except httpx.HTTPError:
                if signalled.is_set():
                    return
                await asyncio.sleep(0.01)
                continue
            if response.status_code == 200:
                answered = time.monotonic()
                for card in response.json()["cards"]:
                    issued[card["uuid"]] = answered
            elif signalled.is_set():
                return

    async def send_signal() -> None:
        nonlocal sent_at
        await asyncio.sleep(after)
        sent_at = time.monotonic()
        os.kill(process.pid, sig)
        signalled.set()

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        await asyncio.gather(send_signal(), *(worker(http) for _ in range(CONNECTIONS)))
    return issued, sent_at


def run_trial(sig: signal.Signals, *, after: float | None = None) -> Trial:
    with tempfile.TemporaryDirectory(prefix="cds-card-loss-") as tmp:
        env = service_env(tmp)
        with Server("cds_service.main:create_app", tmp, factory=True, env=env) as server:
            delay = after if after is not None else random.uniform(0.5, 1.5)
            issued, sent_at = asyncio.run(fire_until_signal(server.url, server.process, sig, delay))
            exit_code = server.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        logged = logged_cards(Path(tmp) / "bench.db")
        lost = set(issued) - logged
        window = (sent_at - min(issued[c] for c in lost)) * 1000 if lost else 0.0
        if sig == signal.SIGTERM and lost:
            print(server.log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return Trial(sig.name, len(issued), len(logged & set(issued)), len(lost), window, exit_code)


def run(runs: int = 10) -> dict[str, Any]:
    """`runs` SIGTERM trials and `runs` SIGKILL trials: every trial, and per signal the totals."""
    trials = [run_trial(sig) for sig in (signal.SIGTERM, signal.SIGKILL) for _ in range(runs)]
    summary: dict[str, Any] = {}
    for name in ("SIGTERM", "SIGKILL"):
        mine = [t for t in trials if t.signal == name]
        summary[name] = {
            "runs": len(mine),
            "issued": [t.issued for t in mine],
            "lost": [t.lost for t in mine],
            "lost_total": sum(t.lost for t in mine),
            "max_lost_window_ms": round(max(t.lost_window_ms for t in mine), 1),
        }
    return {"runs": runs, "trials": [asdict(t) for t in trials], "summary": summary}


def render(result: dict[str, Any]) -> str:
    """A markdown table of the trials, then one line per signal."""
    runs = result["runs"]
    lines = [
        "| signal | run | cards issued | cards logged | lost | loss window (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for index, trial in enumerate(result["trials"]):
        lines.append(
            f"| {trial['signal']} | {index % runs + 1} | {trial['issued']} | {trial['logged']} | "
            f"{trial['lost']} | {trial['lost_window_ms']:.0f} |"
        )
    lines.append("")
    for name, figures in result["summary"].items():
        lines.append(
            f"- {name}: {figures['lost_total']} cards lost in {figures['runs']} runs "
            f"(per run {figures['lost']}); longest loss window {figures['max_lost_window_ms']} ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(render(run(args.runs)))


if __name__ == "__main__":
    main()
