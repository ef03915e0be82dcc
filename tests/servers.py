"""The service under a real uvicorn on a free 127.0.0.1 port, for tests that need a socket
(a browser, several processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def running_service(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """`uvicorn cds_service.main:create_app --factory` with `CDS_*` settings from `env`; yields its
    base URL (also its CDS_PUBLIC_BASE_URL). Auth is off unless `env` says otherwise."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    full_env = {
        **os.environ,
        "CDS_REQUIRE_AUTH": "false",
        "CDS_PUBLIC_BASE_URL": base_url,
        "CDS_DATABASE_URL": f"sqlite:///{workdir / 'cds.db'}",
        "CDS_LOG_LEVEL": "WARNING",
        **env,
    }
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
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, f"{base_url}/healthz", log_path)
            yield base_url
        finally:
            stop(process)
