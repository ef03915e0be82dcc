"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temporary directory, listening
on 127.0.0.1 and a free port (socket directory inside the temporary directory too).

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user that the
Debian package creates (via runuser). Every step has a timeout and the cluster is always stopped
and deleted, also when a test fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.servers import free_port

STEP_TIMEOUT_SECONDS = 60


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL server binaries, or None when they are not installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _run(command: list[str], log: Path) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n"
            f"{result.stderr}\n{server_log}"
        )


@contextmanager
def running_postgres(bindir: Path) -> Iterator[str]:
    """Start a cluster; yields a `postgresql://` URL of its `postgres` database (user `cds`)."""
    root = Path(tempfile.mkdtemp(prefix="cds-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "server.log", free_port()
    started = False
    try:
        _run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "cds",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            log,
        )
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=60"
        started = True
        _run(
            [
                *as_user,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "30",
                "start",
            ],
            log,
        )
        yield f"postgresql://cds@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _stop(bindir, data, as_user)
        shutil.rmtree(root, ignore_errors=True)


def _stop(bindir: Path, data: Path, as_user: list[str]) -> None:
    command = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w"]
    try:
        subprocess.run([*command, "-t", "20", "stop"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pass
    pid_file = data / "postmaster.pid"
    if pid_file.exists():  # pg_ctl could not stop it: end the postmaster this test started
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def bindir_or_skip() -> Path:
    """The server binaries; a test without them is skipped (a failure under CI, where
    `make test` installs them)."""
    bindir = postgres_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries are not installed (/usr/lib/postgresql/*/bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + "; `make test` installs them")
    return bindir


def create_database(cluster_url: str) -> str:
    """A fresh, empty database on the cluster at `cluster_url`; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        cluster_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return cluster_url.rsplit("/", 1)[0] + "/" + name
