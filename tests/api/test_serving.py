"""The service as a real process on a real socket: which address a request comes from, and
clients that never finish their headers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serverproc import ServerProcess

DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("serving"), login_max_failures="1", header_timeout_seconds="1"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def wait_for_log(server: ServerProcess, needle: str) -> str:
    deadline = time.monotonic() + DEADLINE
    while True:
        text = server.log.read_text()
        if needle in text:
            return text
        assert time.monotonic() < deadline, f"{needle!r} never logged:\n{text}"
        time.sleep(0.05)


def failed_logins(server: ServerProcess, count: int, first: int = 0) -> list[int]:
    """``count`` wrong passwords for distinct accounts, each claiming another address."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for index in range(first, first + count):
            response = client.post(
                "/auth/login",
                json={"email": f"probe{index}@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"10.9.{index}.77"},
            )
            statuses.append(response.status_code)
    return statuses


def test_forwarded_for_neither_escapes_the_limit_nor_reaches_the_log(
    server: ServerProcess,
) -> None:
    # One failure per account, four times that per address: four, then 429, whatever
    # address each request claims.
    assert failed_logins(server, 5) == [401] * 4 + [429]
    log = wait_for_log(server, '"POST /auth/login HTTP/1.1" 429')
    assert "10.9." not in log
    assert "127.0.0.1:" in log


def test_forwarded_for_is_believed_from_a_listed_proxy(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path, login_max_failures="1", trusted_proxies="127.0.0.1")
    process.start()
    try:
        # Each request is a different client now: none reaches the per-address limit.
        assert failed_logins(process, 5) == [401] * 5
        wait_for_log(process, '10.9.4.77:0 - "POST /auth/login HTTP/1.1" 401')
    finally:
        process.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails at the deadline)."""
    sock.settimeout(DEADLINE)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            raise AssertionError(f"still open after {DEADLINE}s, got {received!r}") from None
        if not chunk:
            return received
        received += chunk


def read_response(sock: socket.socket) -> bytes:
    sock.settimeout(DEADLINE)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_half_a_request_line_is_closed(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /hea")
        assert read_until_closed(sock) == b""


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        assert read_until_closed(sock) == b""


def test_unfinished_headers_on_a_reused_connection_are_closed(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        assert first.endswith(b'{"status":"ok"}')
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: loc")
        assert read_until_closed(sock) == b""
    # The service itself goes on.
    assert httpx.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}
