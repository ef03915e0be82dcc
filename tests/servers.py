"""The service under a real uvicorn on a free 127.0.0.1 port, for tests that need a socket
(a browser, several processes, signals, uvicorn's own logs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, log: Path, seconds: float = 30
) -> None:
    """Poll `url` until it answers 200; fail with the process's log when it exits or times out."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-2000:])
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds:g} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass(frozen=True)
class Service:
    """A running service: its base URL (also its CDS_PUBLIC_BASE_URL), the uvicorn process, the
    file holding uvicorn's output, and the SQLite file of the default CDS_DATABASE_URL."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database: Path


@contextmanager
def running_service(
    workdir: Path,
    env: dict[str, str],
    *,
    log_level: str | None = "warning",
    access_log: bool | None = None,
    inherit_cds_env: bool = True,
) -> Iterator[Service]:
    """`uvicorn cds_service.main:create_app --factory` with `CDS_*` settings from `env`, stopped
    (SIGTERM, then SIGKILL) on exit unless it has already exited. Auth is off and the database is
    `workdir`/cds.db unless `env` says otherwise.

    `log_level` is uvicorn's --log-level (None: uvicorn's default, which writes access lines);
    `access_log` adds --access-log (True) or --no-access-log (False); with `inherit_cds_env`
    false, `CDS_*` variables of this process's environment are not passed on."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    database = workdir / "cds.db"
    inherited = {k: v for k, v in os.environ.items() if inherit_cds_env or not k.startswith("CDS_")}
    full_env = {
        **inherited,
        "CDS_REQUIRE_AUTH": "false",
        "CDS_PUBLIC_BASE_URL": base_url,
        "CDS_DATABASE_URL": f"sqlite:///{database}",
        "CDS_LOG_LEVEL": "WARNING",
        **env,
    }
    options = [] if log_level is None else ["--log-level", log_level]
    if access_log is not None:
        options.append("--access-log" if access_log else "--no-access-log")
    log_path = workdir / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "cds_service.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *options,
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, f"{base_url}/healthz", log_path, seconds=60)
            yield Service(base_url, process, log_path, database)
        finally:
            stop(process)
