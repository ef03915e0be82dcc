"""What every benchmark needs: percentiles, the service's bench settings, and a uvicorn `Server`
that is answering before its constructor returns.

The process plumbing (free port, readiness poll, stop) is tests/servers.py's: the bench already
depends on tests/ for the FHIR server (tests/fhir_server.py), which is built on it too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tests.servers import ROOT, free_port, stop, wait_until_ready

__all__ = ["ROOT", "Server", "percentile", "service_env"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def service_env(workdir: str | Path) -> dict[str, str]:
    """Auth off, a SQLite database in `workdir` (bench.db), loopback FHIR servers allowed,
    warnings only."""
    return {
        "CDS_REQUIRE_AUTH": "false",
        "CDS_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "CDS_FHIR_ALLOWLIST": "http://127.0.0.1",
        # The 20,000-resource body is ~30 MB; the contract default limit is 5 MB.
        "CDS_MAX_BODY_BYTES": "200000000",
        "CDS_LOG_LEVEL": "WARNING",
    }


class Server:
    """`uvicorn <app>` on a free 127.0.0.1 port, answering GET /healthz with 200 when the
    constructor returns; a context manager that stops it (SIGTERM, then SIGKILL).

    The process gets this environment without its `CDS_*` variables, then CDS_PUBLIC_BASE_URL
    (its own address) and `env`: the bench's settings are the only ones. uvicorn's output goes
    to `workdir`/uvicorn-<port>.log (`log`), whose tail is the error when start-up fails."""

    def __init__(
        self,
        app: str,
        workdir: str | Path,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        factory: bool = False,
        checkout: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"uvicorn-{self.port}.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
            "CDS_PUBLIC_BASE_URL": self.url,
            **(env or {}),
        }
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    app,
                    *(["--factory"] if factory else []),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                # The checkout whose cds_service runs (python -m puts the working directory first
                # on sys.path): another one compares two versions in one run.
                cwd=checkout,
                env=full_env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(self.process, f"{self.url}/healthz", self.log, seconds=60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop(self.process)

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
