"""Servers under test as subprocesses: free port, own process group, readiness poll, always killed.

Each server is started in a new session (its own process group), so stopping it reaches every process
it spawned (uvicorn workers, LitServe inference workers) even after the leader has exited: SIGTERM to
the group, then SIGKILL to whatever is left after a grace period. Output goes to a log file, never to a
pipe nobody reads.

The one implementation of that lifecycle: the benchmarks, the closed-loop driver and the tests that start
real servers (`tests/e2e`, `tests/integration`) all use :class:`ManagedServer`; our own prediction server
is :func:`prediction_server`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVING_READY_PATH = "/health"  # `python -m serving`
DAGSTER_UI_READY_PATH = "/server_info"  # `churn ui` / `make ui` (dagster dev)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is `pgid` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def rss_mib(pids: list[int]) -> float:
    """Sum of resident set sizes (MiB); shared pages are counted once per process."""
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


@dataclass
class ManagedServer:
    """A server process group; use as a context manager so it is stopped on every exit path."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    log_path: Path
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    startup_s: float = field(default=float("nan"), init=False)

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started = time.perf_counter()

    def wait_ready(self, timeout: float, ready: Collection[int] = (200,)) -> None:
        """Poll GET ready_path until it answers with a `ready` status (200: serving; a test of a server
        that cannot serve yet also takes 503); raise with the log's tail if the process dies or time runs
        out."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        deadline = time.perf_counter() + timeout
        last = "no answer yet"
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} {self.exit_reason()} before ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310 # the harness's own http://127.0.0.1 URL
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (OSError, ValueError) as exc:
                last = type(exc).__name__
                status = None
            if status in ready:
                self.startup_s = time.perf_counter() - self._started
                return
            if status is not None:
                last = f"HTTP {status}"
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def exit_reason(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name} (not by this script)"
        return f"exited with {code}"

    def processes(self) -> list[int]:
        return group_members(self.proc.pid) if self.proc is not None else []

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole group, wait up to `grace` seconds, then SIGKILL what is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.perf_counter() + grace
            while time.perf_counter() < deadline:
                self.proc.poll()
                if not group_members(pgid):
                    break
                time.sleep(0.1)
            else:
                continue
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


def prediction_server(
    port: int, log_path: Path, env: Mapping[str, str], name: str = "LitServe (ours)"
) -> ManagedServer:
    """`python -m serving` (what `make serve` runs) on 127.0.0.1:`port`, from the repository root, with `env`
    (CHURN_HOME and the rest) and CHURN_SERVE_PORT; ready once GET /health answers."""
    argv = [sys.executable, "-m", "serving"]
    environment = {**env, "CHURN_SERVE_PORT": str(port)}
    return ManagedServer(name, argv, environment, port, SERVING_READY_PATH, log_path, REPO_ROOT)
