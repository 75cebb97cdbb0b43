"""A crowd of HTTP clients for overload tests and benchmarks: N requests sent at the same moment,
each on its own TCP connection, from one asyncio loop (threads would fight the server for the
same two cores). Plain HTTP/1.1 over asyncio streams: nothing to install."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int  # 0: no answer (connection failed or timed out)
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def json(self):
        return json.loads(self.body)


async def request(url, method="GET", *, headers=None, body=None, timeout=60.0) -> Answer:
    parts = urlsplit(url)
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: close",
        f"Content-Length: {len(payload)}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                raw = await reader.read()  # Connection: close: the answer ends with the stream
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        return Answer(0, time.monotonic() - started, error=type(exc).__name__)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    if answer_headers.get("transfer-encoding") == "chunked":
        rest = _unchunk(rest)
    status = int(status_line.split(" ")[1]) if status_line.startswith("HTTP/") else 0
    return Answer(status, time.monotonic() - started, answer_headers, rest)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


async def crowd(calls, *, timeout=60.0) -> list[Answer]:
    """Send every `(url, method, headers, body)` at once; the answers in the same order."""
    return list(
        await asyncio.gather(
            *(
                request(url, method, headers=h, body=b, timeout=timeout)
                for url, method, h, b in calls
            )
        )
    )


def summary(answers: list[Answer]) -> dict:
    """Status counts and latency percentiles (milliseconds), as the benchmark reports them."""
    seconds = sorted(answer.seconds for answer in answers)
    quantiles = statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else []
    return {
        "statuses": dict(sorted(Counter(answer.status for answer in answers).items())),
        "p50_ms": round(statistics.median(seconds) * 1000) if seconds else None,
        "p99_ms": round(quantiles[98] * 1000) if quantiles else None,
        "max_ms": round(seconds[-1] * 1000) if seconds else None,
        "503_without_retry_after": sum(
            1 for a in answers if a.status == 503 and "retry-after" not in a.headers
        ),
    }
