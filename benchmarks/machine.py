"""What the numbers were measured on: CPU, cores, memory, Python, package versions, background load."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

PACKAGES = (
    "mlflow",
    "litserve",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "pydantic",
    "scikit-learn",
    "xgboost-cpu",  # the distribution uv.lock installs (module `xgboost`)
    "duckdb",
    "numpy",
    "pandas",
    "polars",
    "pyarrow",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def cpu_busy_share(interval: float = 2.0) -> float:
    """Share of all cores busy over `interval` seconds (0..1), from /proc/stat; NaN where unavailable."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(interval)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total else float("nan")


def wait_quiet(max_wait: float, busy_below: float = 0.10) -> float:
    """Wait (at most `max_wait` s) until other processes keep under `busy_below` of the CPU; return the share."""
    deadline = time.monotonic() + max_wait
    share = cpu_busy_share()
    while share >= busy_below and time.monotonic() < deadline:
        share = cpu_busy_share()
    return share


def _process_jiffies(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


class CpuMonitor:
    """Where the CPU went while the block ran: the server under test, and everything else.

    `server_cpu_s`: CPU seconds of the processes `pids()` returns (sampled at both ends, so processes
    that exit inside the block are missed). `foreign_share`: busy time from /proc/stat minus that and
    minus this process, as a share of all cores (0..1): other people's load. NaN when unavailable.
    """

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.server_cpu_s = float("nan")
        self.foreign_share = float("nan")
        self._start: tuple[int, int, dict[int, int]] | None = None

    def _sample(self) -> tuple[int, int, dict[int, int]]:
        total, idle = _cpu_times()
        return total, idle, {pid: _process_jiffies(pid) for pid in {os.getpid(), *self.pids()}}

    def __enter__(self) -> CpuMonitor:
        try:
            self._start = self._sample()
        except (OSError, ValueError, IndexError):
            self._start = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._start is None:
            return
        try:
            total1, idle1, own1 = self._sample()
        except (OSError, ValueError, IndexError):
            return
        total0, idle0, own0 = self._start
        if total1 <= total0:
            return
        used = {pid: j - own0.get(pid, 0) for pid, j in own1.items()}
        hz = os.sysconf("SC_CLK_TCK")
        self.server_cpu_s = sum(j for pid, j in used.items() if pid != os.getpid()) / hz
        busy = (total1 - total0) - (idle1 - idle0)
        self.foreign_share = max(0.0, (busy - sum(used.values())) / (total1 - total0))


def describe() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(mem_total_gib(), 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "packages": versions(),
    }
