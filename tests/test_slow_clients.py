"""Slow clients are cut off (config/slowclients.py), on a real uvicorn over real sockets.

Issue 12: a request announcing `Content-Length: 1000` and sending one byte was held open
forever, and so was one that never finished its headers.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.stack import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT, BODY_TIMEOUT = 1.0, 2.0


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT), HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT))
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--lifespan", "off",
         "--http", "config.slowclients:GuardedHttpToolsProtocol"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 60, alive=lambda: process.poll() is None)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _send(port, *parts, pause=0.0, wait=10.0):
    """Send `parts` with `pause` seconds between them; return (answer, seconds after the last)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        for index, part in enumerate(parts):
            if index:
                time.sleep(pause)
            sock.sendall(part)
        started = time.monotonic()
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            answer = b"<still open>"
        return answer, time.monotonic() - started


def test_a_request_that_never_finishes_its_headers_is_answered_408(server):
    answer, took = _send(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"code": "request_timeout"' in answer
    assert took == pytest.approx(HEADER_TIMEOUT, abs=0.8)


def test_a_body_shorter_than_announced_is_answered_408(server):
    head = (
        b"POST /api/v1/players/guest HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    answer, took = _send(server, head + b"{")

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert took == pytest.approx(BODY_TIMEOUT, abs=0.8)


def test_a_slow_request_within_the_limits_is_served(server):
    body = b'{"nothing": "here"}'
    head = (
        b"POST /api/v1/nothing HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    # Headers in two parts, the body in three, each part well inside its deadline.
    parts = [head[:20], head[20:], body[:5], body[5:10], body[10:]]

    answer, _ = _send(server, *parts, pause=HEADER_TIMEOUT / 3)

    assert answer.startswith(b"HTTP/1.1 404 "), answer  # the API's JSON 404: it was read


def _read_answer(sock) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer!r}"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = int(next(line for line in lines if line.startswith(b"content-length:"))[15:])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer + body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_the_deadline_restarts_for_each_request_on_a_kept_alive_connection(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(request)
            assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(HEADER_TIMEOUT * 1.5)  # idle longer than a header deadline: allowed
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # then a request that stalls
        started = time.monotonic()
        assert _read_answer(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started == pytest.approx(HEADER_TIMEOUT, abs=0.8)
