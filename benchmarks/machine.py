"""What the numbers were measured on: CPU, cores, memory, Python, package versions, background load."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
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
    "xgboost",
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
