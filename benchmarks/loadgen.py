"""A bounded, closed-loop HTTP/1.1 load generator on raw asyncio streams: keep-alive, stdlib only.

`concurrency` connections are opened once; each sends its next request as soon as it has read the whole
previous response (closed loop, no pipelining). A level runs `warmup` discarded requests, then at most
`requests` measured ones, and stops sending when `max_seconds` have passed; a request in flight is bounded
by `timeout`. Latency is `time.perf_counter()` from just before the request bytes are written to just after
the last body byte is read, so it includes the client's own event-loop time: `client_cpu_us` (CPU of the
event-loop thread, which does all the client's work, per measured request) says how large that share is. uvloop is used when importable (it ships with
uvicorn's standard extras); otherwise the stdlib loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

try:  # pragma: no cover - depends on the environment
    import uvloop

    LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    LOOP_NAME = f"uvloop {uvloop.__version__}"
except ImportError:  # pragma: no cover
    LOOP_FACTORY = None
    LOOP_NAME = "asyncio (stdlib)"

# (status, body) -> None when the response is acceptable, else a short reason counted as an error.
Check = Callable[[int, bytes], str | None]


def build_request(host: str, port: int, method: str, path: str, body: bytes = b"") -> bytes:
    """The exact bytes sent for every request of a level (built once)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive", "Accept: */*"]
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; `request` returns (status, body), reconnecting if needed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**22)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None  # nosec B101 # narrows the type after open() for mypy, not a runtime check
        self.writer.write(raw)
        status, body, keep_alive = await read_response(self.reader)
        if not keep_alive:
            self.close()
        return status, body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response: Content-Length, chunked, or until EOF. Returns (status, body, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, close = await reader.read(), True
    return status, body, not close


@dataclass
class LevelResult:
    """One measured level; latencies in milliseconds."""

    concurrency: int
    requested: int
    latencies_ms: np.ndarray
    wall_s: float
    client_cpu_s: float
    errors: Counter[str] = field(default_factory=Counter)
    stopped_by_time: bool = False
    foreign_cpu: float = float("nan")  # share of all cores other processes used meanwhile (set by caller)
    server_cpu_s: float = float("nan")  # CPU the server's processes used meanwhile (set by caller)

    @property
    def ok(self) -> int:
        return int(self.latencies_ms.size)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.ok else float("nan")

    @property
    def client_cpu_us(self) -> float:
        """Client CPU (event-loop thread) per completed request (µs): the load generator's own cost."""
        done = self.ok + self.error_count
        return 1e6 * self.client_cpu_s / done if done else float("nan")

    @property
    def server_cpu_ms(self) -> float:
        """Server CPU (all its processes) per completed request, in ms, when the caller measured it."""
        done = self.ok + self.error_count
        return 1e3 * self.server_cpu_s / done if done else float("nan")

    @property
    def client_core_share(self) -> float:
        """Fraction of one core the client used during the level (near 1.0 = the client is the limit)."""
        return self.client_cpu_s / self.wall_s if self.wall_s > 0 else float("nan")

    def summary(self) -> dict[str, float | int | bool | dict[str, int]]:
        return {
            "concurrency": self.concurrency,
            "requested": self.requested,
            "ok": self.ok,
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "stopped_by_time": self.stopped_by_time,
            "wall_s": round(self.wall_s, 4),
            "rps": round(self.rps, 2),
            "p50_ms": round(self.pct(50), 4),
            "p95_ms": round(self.pct(95), 4),
            "p99_ms": round(self.pct(99), 4),
            "max_ms": round(float(self.latencies_ms.max()), 4) if self.ok else float("nan"),
            "client_cpu_us_per_request": round(self.client_cpu_us, 2),
            "client_core_share": round(self.client_core_share, 3),
            "server_cpu_ms_per_request": round(self.server_cpu_ms, 3),
            "foreign_cpu_share": round(self.foreign_cpu, 3),
        }


async def _phase(
    conns: list[HttpConnection],
    raw: bytes,
    count: int,
    deadline: float,
    timeout: float,
    check: Check,
    latencies: list[float] | None,
    errors: Counter[str],
) -> bool:
    """Send `count` requests over `conns` (closed loop); returns True if the deadline cut it short."""
    remaining = count
    perf = time.perf_counter

    async def worker(conn: HttpConnection) -> None:
        nonlocal remaining
        while remaining > 0 and perf() < deadline:
            remaining -= 1
            started = perf()
            try:
                async with asyncio.timeout(timeout):
                    status, body = await conn.request(raw)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                errors[f"transport: {type(exc).__name__}"] += 1
                conn.close()
                continue
            elapsed = perf() - started
            problem = check(status, body)
            if problem is not None:
                errors[problem] += 1
            elif latencies is not None:
                latencies.append(elapsed)

    await asyncio.gather(*(worker(c) for c in conns))
    return remaining > 0


async def _run_level(
    host: str,
    port: int,
    raw: bytes,
    concurrency: int,
    requests: int,
    warmup: int,
    max_seconds: float,
    timeout: float,
    check: Check,
) -> LevelResult:
    conns = [HttpConnection(host, port) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(c.open() for c in conns))
        warm_errors: Counter[str] = Counter()
        await _phase(conns, raw, warmup, time.perf_counter() + max_seconds, timeout, check, None, warm_errors)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        cpu0, t0 = time.thread_time(), time.perf_counter()
        cut = await _phase(conns, raw, requests, t0 + max_seconds, timeout, check, latencies, errors)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    finally:
        for c in conns:
            c.close()
    return LevelResult(
        concurrency=concurrency,
        requested=requests,
        latencies_ms=np.asarray(latencies, dtype=np.float64) * 1e3,
        wall_s=wall,
        client_cpu_s=cpu,
        errors=errors,
        stopped_by_time=cut,
    )


def run_level(
    host: str,
    port: int,
    raw: bytes,
    *,
    concurrency: int,
    requests: int,
    warmup: int,
    max_seconds: float,
    timeout: float,
    check: Check,
) -> LevelResult:
    """Run one level to completion in a fresh event loop; never longer than ~2×max_seconds + timeout."""

    async def bounded() -> LevelResult:
        async with asyncio.timeout(2 * max_seconds + timeout + 10):
            return await _run_level(
                host, port, raw, concurrency, requests, warmup, max_seconds, timeout, check
            )

    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(bounded())


def fetch(host: str, port: int, raw: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """One request on a fresh connection (pre-flight checks)."""

    async def once() -> tuple[int, bytes]:
        conn = HttpConnection(host, port)
        try:
            async with asyncio.timeout(timeout):
                return await conn.request(raw)
        finally:
            conn.close()

    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(once())
