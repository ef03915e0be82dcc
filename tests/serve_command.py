"""`cds-service serve` itself (as `python -m cds_service serve`) on a free 127.0.0.1 port, for
tests of what the command adds to uvicorn: several workers, uvicorn's log configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT, free_port, stop, wait_until_ready


@dataclass(frozen=True)
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def cds_service_serve(workdir: Path, *options: str) -> Iterator[Served]:
    """`cds-service serve` (as `python -m cds_service`) on a free port with INFO lines (the
    hook-call line says which worker answered); its stdout and stderr go to `workdir`/serve.log,
    temporary files under `workdir`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CDS_", "PROMETHEUS_"))},
        "CDS_REQUIRE_AUTH": "false",
        "CDS_PUBLIC_BASE_URL": base_url,
        "CDS_DATABASE_URL": f"sqlite:///{workdir / 'cds.db'}",
        "CDS_LOG_LEVEL": "INFO",
        "TMPDIR": str(workdir),
    }
    log_path = workdir / "serve.log"
    command = [sys.executable, "-m", "cds_service", "serve", "--port", str(port), *options]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(process, f"{base_url}/healthz", log_path, seconds=90)
        yield Served(base_url, process, log_path)
    finally:
        stop(process)
