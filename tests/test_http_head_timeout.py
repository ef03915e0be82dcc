"""`cds-service serve` closes connections whose request head never completes (slowloris), and only
those: a connection that sent its head keeps it, and a normal call still answers.

The service runs for real (`python -m cds_service serve`) with CDS_HTTP_HEAD_TIMEOUT_SECONDS=0.5.
Each check waits for the server to close the socket; the 60 s socket timeout is only a guard
against hanging when the behaviour is broken (the test then fails with a timeout error).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, free_port, stop, wait_until_ready

GUARD_SECONDS = 60
HALF_HEAD = b"POST /cds-services/lbp-patient-view HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("head-timeout")
    port = free_port()
    env = {
        **os.environ,
        "CDS_REQUIRE_AUTH": "false",
        "CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CDS_DATABASE_URL": f"sqlite:///{workdir / 'cds.db'}",
        "CDS_HTTP_HEAD_TIMEOUT_SECONDS": "0.5",
        "CDS_LOG_LEVEL": "WARNING",
    }
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/healthz", Path(log_path))
        yield port
    finally:
        stop(process)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD_SECONDS)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 answer (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection without answering (recv gives EOF)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_half_sent_request_heads_are_closed(served: int) -> None:
    sockets = [connect(served) for _ in range(20)]
    for sock in sockets:
        sock.sendall(HALF_HEAD)
    assert all(closed_by_server(sock) for sock in sockets)
    for sock in sockets:
        sock.close()


def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    with connect(served) as sock:
        assert closed_by_server(sock)


def test_a_head_trickled_across_the_deadline_is_closed_on_a_kept_alive_connection(
    served: int,
) -> None:
    with connect(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(HALF_HEAD)  # the next request's head never completes
        assert closed_by_server(sock)


def test_a_complete_head_is_not_cut_while_its_body_arrives(served: int) -> None:
    """The deadline is for the head only: a slow body or a slow answer is not cut."""
    body = b'{"hook": "patient-view"}'
    with connect(served) as sock:
        sock.sendall(
            b"POST /cds-services/lbp-patient-view HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        # Wait until a head-only connection would have been closed, then send the body.
        with connect(served) as witness:
            witness.sendall(HALF_HEAD)
            assert closed_by_server(witness)
        sock.sendall(body)
        assert read_answer(sock).startswith(b"HTTP/1.1 400")  # answered (no hookInstance: 400)


def test_ordinary_calls_still_answer(served: int) -> None:
    assert httpx.get(f"http://127.0.0.1:{served}/healthz").status_code == 200
