"""Serving benchmark: our LitServe server vs `mlflow models serve` vs the in-process floor.

Same champion (`models:/telco-churn@champion` of the installation at --home), same machine, same run,
one after the other so no two servers compete for the CPU.

Protocol
--------
1. Floor (in-process, no HTTP): the champion is loaded from the registry; the server's own code
   (`serving.validation`, the feature SQL prepared once by `serving.model_store.LoadedModel`,
   `predict_proba`, the worker's whole path), DuckDB's planning of the feature SQL alone, the pyfunc's own
   predict (which plans the SQL on every call) and MLflow's `pyfunc.predict`, on one record and on a batch
   (see floor.py). Each timed call by call with `time.perf_counter()`; warm-up calls (10 %) discarded;
   p50/p99.
2. A do-nothing HTTP server (`null_server.py`) driven exactly like the real ones: the load generator's
   own ceiling and cost on this machine. And LitServe with a do-nothing model laid out like ours
   (`litserve_trivial.py`): what the framework costs, for attribution.
3. `mlflow models serve -m models:/telco-churn@champion --env-manager local -w 2` (MLFLOW_TRACKING_URI
   pointing at the store; PATH must contain the venv's bin: MLflow execs a bare `uvicorn`). Ready on
   GET /ping. Single: POST /invocations `{"dataframe_records": [record]}`; batch: the same with 1,000
   records.
4. Ours: `python -m serving` with CHURN_SERVE_PORT, CHURN_SERVE_WORKERS=2; ready on GET /health. Single:
   POST /predict with the record as a JSON object; batch: POST /batch-predict with a JSON list. By default
   its CHURN_HOME is a scratch directory with CHURN_MLFLOW_TRACKING_URI pinned to --home's registry, so
   benchmark traffic does not land in the installation's prediction log (`--serving-state home` to
   run it on --home itself).

Every server is a subprocess on a free 127.0.0.1 port, in its own process group, killed at the end
(also on error or Ctrl-C). The request body is a real record read from the CSV at run time (values as
strings, as in the file; `--record-index`), the batch is the file's first 1,000 records; every server
gets the same record(s), only the envelope its API requires differs. Load: closed loop over keep-alive
connections at fixed concurrency levels (default 1, 8, 32); per level `--warmup` discarded requests, then
at most `--requests` measured ones or `--max-seconds`, whichever comes first; batches at concurrency 1.
Every response must be 200 and carry the churn probability the in-process model gives for that record
(1e-6); anything else is counted as an error and left out of the latencies. Reported: p50/p95/p99 and
requests/s per level, the client's CPU per request (event-loop thread), the server's CPU per request (its
process group, from /proc) and the CPU share other processes took meanwhile, batch p50/p99, the machine,
the ratios and the team's targets (ours p50 <= 2 ms at c=1; >= 6x mlflow's req/s at c=8 with a lower
p99; 1,000-row batch p50 <= 10 ms and >= 4x faster than mlflow serve).

Run: `.venv/bin/python benchmarks/serving_benchmark.py --wait-quiet 300 --output-md docs/benchmarks.md`
(pure Python, nothing beyond uv.lock; ~3.5 minutes; exit code 1 if a server failed or a response was wrong)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))  # churn_assets, when run from elsewhere
# Nothing leaves 127.0.0.1: MLflow 3 otherwise sends usage telemetry (set before mlflow is imported).
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
os.environ.update(NO_TELEMETRY)

import floor as floor_mod  # noqa: E402
import loadgen  # noqa: E402
import machine  # noqa: E402
from servers import ManagedServer, free_port, prediction_server, rss_mib  # noqa: E402

from churn_assets.ingest.schema import LABEL_COLUMN  # noqa: E402
from churn_assets.ml.champion import CHAMPION_ALIAS  # noqa: E402
from churn_assets.ml.champion import MODEL_NAME as CHAMPION_MODEL_NAME  # noqa: E402

# CHURN_SOURCE_CSV, else the shared data folder next to the checkout (as the tests look for it).
DEFAULT_CSV = Path(
    os.environ.get("CHURN_SOURCE_CSV", REPO_ROOT.parent / "shared" / "data" / "Telco-Customer-Churn.csv")
)
MODEL_NAME, MODEL_ALIAS = CHAMPION_MODEL_NAME, CHAMPION_ALIAS
MD_START, MD_END = "<!-- benchmark-results:start -->", "<!-- benchmark-results:end -->"
HOST = "127.0.0.1"
SERVER_ORDER = ("null", "mlflow", "trivial", "ours")
# Issue 9: single p50 <= 2 ms at c=1; >= 6x mlflow serve req/s at c=8 with a lower p99; batch p50 <= 10 ms and
# >= 4x faster than mlflow serve on the same batch.
TARGET_P50_MS, TARGET_RPS_RATIO, TARGET_BATCH_P50_MS, TARGET_BATCH_SPEEDUP = 2.0, 6.0, 10.0, 4.0


# --------------------------------------------------------------------------------------------- inputs


def read_records(path: Path) -> list[dict[str, str]]:
    """The CSV's rows as the data set has them (strings), without the Churn label."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != LABEL_COLUMN} for row in csv.DictReader(f)]


def probabilities(payload: Any) -> list[float]:
    """Every number under a key containing 'probability', in document order (any response shape)."""
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if "probability" in key and isinstance(value, int | float) and not isinstance(value, bool):
                    found.append(float(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload)
    return found


def probability_check(expected: np.ndarray | None) -> loadgen.Check:
    """200, JSON, and exactly the expected probabilities (or, with None, one probability in [0, 1])."""

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}"
        try:
            found = probabilities(json.loads(body))
        except ValueError:
            return "body is not JSON"
        if expected is None:
            return None if len(found) == 1 and 0.0 <= found[0] <= 1.0 else "no probability in [0, 1]"
        if len(found) != expected.size:
            return f"{len(found)} probabilities, expected {expected.size}"
        if expected.size == 1:
            return None if abs(found[0] - expected[0]) <= 1e-6 else "probability differs from in-process"
        return None if np.allclose(found, expected, atol=1e-6, rtol=0) else "probabilities differ"

    return check


# ------------------------------------------------------------------------------------------- servers


@dataclass
class Endpoint:
    path: str
    body: bytes


@dataclass
class ServerPlan:
    """How to start one server and what to send it."""

    key: str
    label: str
    make: Callable[[int, Path], ManagedServer]
    single: Endpoint
    batch: Endpoint | None
    expected_single: np.ndarray | None
    expected_batch: np.ndarray | None


@dataclass
class ServerResult:
    key: str
    label: str
    status: str = "not run"
    detail: str = ""
    startup_s: float = math.nan
    processes: int = 0
    rss_mib: float = math.nan
    levels: list[loadgen.LevelResult] = field(default_factory=list)
    batch: loadgen.LevelResult | None = None

    def level(self, concurrency: int) -> loadgen.LevelResult | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "status": self.status,
            "detail": self.detail,
            "startup_s": round(self.startup_s, 2),
            "processes": self.processes,
            "rss_mib": round(self.rss_mib, 1),
            "single": [lv.summary() for lv in self.levels],
            "batch": self.batch.summary() if self.batch else None,
        }


def base_env() -> dict[str, str]:
    """The environment servers inherit: ours minus an API key and stale locations, telemetry off."""
    env = dict(os.environ)
    for name in ("CHURN_API_KEY", "MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env | NO_TELEMETRY


def mlflow_server(model_uri: str, tracking_uri: str, workers: int) -> Callable[[int, Path], ManagedServer]:
    venv_bin = str(Path(sys.executable).parent)

    def make(port: int, scratch: Path) -> ManagedServer:
        env = base_env() | {
            "MLFLOW_TRACKING_URI": tracking_uri,
            # `mlflow models serve` runs `exec uvicorn ...` through bash: the venv's bin must be on PATH.
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-w",
            str(workers),
            "-h",
            HOST,
            "-p",
            str(port),
        ]
        return ManagedServer("mlflow models serve", argv, env, port, "/ping", scratch / "mlflow-serve.log")

    return make


def litserve_server(
    home: Path, tracking_uri: str, workers: int, in_place: bool
) -> Callable[..., ManagedServer]:
    def make(port: int, scratch: Path) -> ManagedServer:
        env = base_env() | {"CHURN_SERVE_HOST": HOST, "CHURN_SERVE_WORKERS": str(workers)}
        if in_place:
            env["CHURN_HOME"] = str(home)
        else:
            env["CHURN_HOME"] = str(scratch / "serving-home")
            env["CHURN_MLFLOW_TRACKING_URI"] = tracking_uri
        return prediction_server(port, scratch / "litserve.log", env)

    return make


def null_server() -> Callable[[int, Path], ManagedServer]:
    def make(port: int, scratch: Path) -> ManagedServer:
        argv = [sys.executable, str(BENCH_DIR / "null_server.py"), str(port)]
        return ManagedServer("null server", argv, base_env(), port, "/", scratch / "null-server.log")

    return make


def trivial_litserve(workers: int) -> Callable[[int, Path], ManagedServer]:
    def make(port: int, scratch: Path) -> ManagedServer:
        argv = [sys.executable, str(BENCH_DIR / "litserve_trivial.py"), str(port), str(workers)]
        return ManagedServer(
            "LitServe, trivial model", argv, base_env(), port, "/health", scratch / "trivial.log"
        )

    return make


def run_server(
    plan: ServerPlan, args: argparse.Namespace, scratch: Path, log: Callable[[str], None]
) -> ServerResult:
    """Start, check, load at every level, batch, stop. Failures end up in the result, not as exceptions."""
    result = ServerResult(plan.key, plan.label)
    port = free_port()
    server = plan.make(port, scratch)
    log(f"\n== {plan.label}: starting on port {port}: {shlex.join(server.argv)}")
    try:
        with server:
            server.wait_ready(args.startup_timeout)
            result.startup_s = server.startup_s
            log(f"   ready after {server.startup_s:.1f} s")
            single_raw = loadgen.build_request(HOST, port, "POST", plan.single.path, plan.single.body)
            single_check = probability_check(plan.expected_single)
            status, body = loadgen.fetch(HOST, port, single_raw)
            problem = single_check(status, body)
            if problem:
                raise RuntimeError(f"pre-flight {plan.single.path}: {problem}: {body[:300]!r}")
            for concurrency in args.concurrency:
                with machine.CpuMonitor(server.processes) as cpu:
                    level = loadgen.run_level(
                        HOST,
                        port,
                        single_raw,
                        concurrency=concurrency,
                        requests=args.requests,
                        warmup=args.warmup,
                        max_seconds=args.max_seconds,
                        timeout=args.timeout,
                        check=single_check,
                    )
                level.foreign_cpu, level.server_cpu_s = cpu.foreign_share, cpu.server_cpu_s
                result.levels.append(level)
                log(f"   c={concurrency:<3} {fmt_level(level)}")
                check_alive(server, level)
            if plan.batch is not None and args.batch_requests > 0:
                batch_raw = loadgen.build_request(HOST, port, "POST", plan.batch.path, plan.batch.body)
                batch_check = probability_check(plan.expected_batch)
                status, body = loadgen.fetch(HOST, port, batch_raw, timeout=60)
                problem = batch_check(status, body)
                if problem:
                    raise RuntimeError(f"pre-flight {plan.batch.path}: {problem}: {body[:300]!r}")
                with machine.CpuMonitor(server.processes) as cpu:
                    result.batch = loadgen.run_level(
                        HOST,
                        port,
                        batch_raw,
                        concurrency=1,
                        requests=args.batch_requests,
                        warmup=args.batch_warmup,
                        max_seconds=args.max_seconds,
                        timeout=60,
                        check=batch_check,
                    )
                result.batch.foreign_cpu, result.batch.server_cpu_s = cpu.foreign_share, cpu.server_cpu_s
                log(f"   batch {fmt_level(result.batch)}")
                check_alive(server, result.batch)
            pids = server.processes()
            result.processes, result.rss_mib = len(pids), rss_mib(pids)
            result.status = "ok"
    except Exception as exc:
        result.status, result.detail = "failed", f"{type(exc).__name__}: {exc}"
        log(f"   FAILED: {result.detail}")
    return result


def check_alive(server: ManagedServer, level: loadgen.LevelResult) -> None:
    """Raise (with the server's log) if it died; show the log when a level had transport errors."""
    if server.proc is not None and server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} {server.exit_reason()} during the run:\n{server.log_tail()}")
    if any(kind.startswith("transport") for kind in level.errors):
        log(f"   transport errors {dict(level.errors)}; server log tail:\n{server.log_tail()}")


def fmt_level(level: loadgen.LevelResult) -> str:
    cut = " (stopped by --max-seconds)" if level.stopped_by_time else ""
    return (
        f"{level.ok:>6} ok {level.error_count:>3} err  {level.rps:8.1f} req/s  p50 {level.pct(50):7.2f}  "
        f"p95 {level.pct(95):7.2f}  p99 {level.pct(99):7.2f} ms  client {level.client_cpu_us:5.0f} µs/req "
        f"({level.client_core_share:.0%} of a core), server {level.server_cpu_ms:.2f} ms CPU/req, "
        f"others {level.foreign_cpu:.0%} of the CPU{cut}"
    )


# -------------------------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> float:
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else math.nan


def f2(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


@dataclass
class Report:
    started: str
    command: str
    machine: dict[str, Any]
    busy_before: float
    busy_after: float
    model: dict[str, Any]
    record_id: str
    batch_rows: int
    args: dict[str, Any]
    floor: floor_mod.Floor | None
    floor_foreign: float
    servers: dict[str, ServerResult]
    wall_s: float = math.nan

    def ratios(self) -> list[tuple[str, str, str]]:
        """(comparison, measured, target and verdict) rows; a row is left out when its inputs are missing."""
        rows: list[tuple[str, str, str]] = []

        def add(what: str, value: str, target: str = "") -> None:
            rows.append((what, value, target))

        def ok(key: str) -> ServerResult | None:
            res = self.servers.get(key)
            return res if res is not None and res.status == "ok" else None

        ours, ml, null, trivial = ok("ours"), ok("mlflow"), ok("null"), ok("trivial")
        fl = self.floor
        full1 = fl.get(floor_mod.FULL_1) if fl else None
        full_n = fl.get(floor_mod.FULL_N.format(n=self.batch_rows)) if fl else None
        pyfunc1 = fl.get(floor_mod.PYFUNC_1) if fl else None
        o1, o8 = (ours.level(1), ours.level(8)) if ours else (None, None)
        m1, m8 = (ml.level(1), ml.level(8)) if ml else (None, None)
        ob, mb = (ours.batch if ours else None), (ml.batch if ml else None)

        if o1:
            p50 = o1.pct(50)
            add(
                "ours p50 at c=1",
                f"{f2(p50)} ms",
                f"<= {TARGET_P50_MS:g} ms: {verdict(p50 <= TARGET_P50_MS)}",
            )
        if o8 and m8:
            r = ratio(o8.rps, m8.rps)
            add(
                "ours / mlflow serve, req/s at c=8",
                f"{f2(r)}x ({f2(o8.rps, 0)} vs {f2(m8.rps, 0)})",
                f">= {TARGET_RPS_RATIO:g}x: {verdict(r >= TARGET_RPS_RATIO)}",
            )
            r = ratio(o8.pct(99), m8.pct(99))
            add(
                "ours / mlflow serve, p99 at c=8",
                f"{f2(r)} ({f2(o8.pct(99))} vs {f2(m8.pct(99))} ms)",
                f"< 1: {verdict(r < 1)}",
            )
        if o1 and m1:
            r = ratio(o1.pct(50), m1.pct(50))
            add("ours / mlflow serve, p50 at c=1", f"{f2(r)} ({f2(o1.pct(50))} vs {f2(m1.pct(50))} ms)")
        if ob:
            p50 = ob.pct(50)
            add(
                f"ours {self.batch_rows:,}-row batch p50",
                f"{f2(p50)} ms",
                f"<= {TARGET_BATCH_P50_MS:g} ms: {verdict(p50 <= TARGET_BATCH_P50_MS)}",
            )
        if ob and mb:
            r = ratio(mb.pct(50), ob.pct(50))
            add(
                "mlflow serve / ours, batch p50 (how many times faster)",
                f"{f2(r)}x ({f2(mb.pct(50))} vs {f2(ob.pct(50))} ms)",
                f">= {TARGET_BATCH_SPEEDUP:g}x: {verdict(r >= TARGET_BATCH_SPEEDUP)}",
            )
        if o1 and full1:
            extra = o1.pct(50) - full1.p50_ms
            add(
                "ours p50 c=1 / floor full path, 1 record",
                f"{f2(ratio(o1.pct(50), full1.p50_ms))}x ({extra:+.2f} ms over {f2(full1.p50_ms)} ms)",
            )
        if ob and full_n:
            extra = ob.pct(50) - full_n.p50_ms
            add(
                f"ours batch p50 / floor full path, {self.batch_rows:,} records",
                f"{f2(ratio(ob.pct(50), full_n.p50_ms))}x ({extra:+.2f} ms over {f2(full_n.p50_ms)} ms)",
            )
        t1, t8 = (trivial.level(1), trivial.level(8)) if trivial else (None, None)
        if o1 and t1 and full1:
            rest = o1.pct(50) - t1.pct(50) - full1.p50_ms
            add(
                "ours p50 c=1 = floor + LitServe (trivial model) + our code",
                f"{f2(full1.p50_ms)} + {f2(t1.pct(50))} + {f2(rest)} ms",
            )
        if o8 and t8:
            add(
                "ours / LitServe trivial, req/s at c=8",
                f"{f2(ratio(o8.rps, t8.rps))} ({f2(o8.rps, 0)} vs {f2(t8.rps, 0)})",
            )
        if m1 and pyfunc1:
            extra = m1.pct(50) - pyfunc1.p50_ms
            add(
                "mlflow serve p50 c=1 / floor pyfunc.predict, 1 record",
                f"{f2(ratio(m1.pct(50), pyfunc1.p50_ms))}x ({extra:+.2f} ms over {f2(pyfunc1.p50_ms)} ms)",
            )
        if null and null.levels:
            best = max(null.levels, key=lambda lv: lv.rps)
            cpu = [lv.client_cpu_us for lv in null.levels]
            add(
                "client ceiling (null server)",
                f"{f2(best.rps, 0)} req/s at c={best.concurrency}; {f2(min(cpu), 0)}-{f2(max(cpu), 0)} µs client CPU/request",
            )
        return rows

    def text(self) -> str:
        lines = [f"\nResults ({self.started}, {self.wall_s:.0f} s)"]
        if self.floor:
            lines.append("\nIn-process floor (ms)")
            lines.append(f"  {'path':<66} {'p50':>8} {'p99':>8} {'mean':>8} {'calls':>6}")
            for t in self.floor.timings:
                lines.append(f"  {t.name:<66} {t.p50_ms:8.3f} {t.p99_ms:8.3f} {t.mean_ms:8.3f} {t.calls:6d}")
        lines.append("\nSingle record over HTTP (latency ms)")
        lines.append(
            f"  {'server':<28} {'c':>3} {'ok':>6} {'err':>4} {'req/s':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'client µs/req':>14} {'server CPU ms/req':>18} {'other CPU':>10}"
        )
        for res in self.servers.values():
            if res.status != "ok":
                lines.append(
                    f"  {res.label:<28} {res.status}: {res.detail.splitlines()[0] if res.detail else ''}"
                )
            for lv in res.levels:
                lines.append(
                    f"  {res.label:<28} {lv.concurrency:>3} {lv.ok:>6} {lv.error_count:>4} {lv.rps:8.1f} {lv.pct(50):7.2f} {lv.pct(95):7.2f} {lv.pct(99):7.2f} {lv.client_cpu_us:14.0f} {lv.server_cpu_ms:18.2f} {lv.foreign_cpu:10.0%}"
                )
        lines.append(f"\n{self.batch_rows:,}-record batch at c=1 (latency ms)")
        for res in self.servers.values():
            if res.batch:
                b = res.batch
                lines.append(
                    f"  {res.label:<28} {b.ok:>4} ok {b.error_count:>3} err  p50 {b.pct(50):8.2f}  p99 {b.pct(99):8.2f}  {self.batch_rows * b.rps:10,.0f} rows/s"
                )
        lines.append("\nRatios and targets")
        for what, value, target in self.ratios():
            lines.append(f"  {what:<52} {value:<40} {target}")
        return "\n".join(lines)

    def markdown(self) -> str:
        m = self.machine
        pk = m["packages"]
        out = [
            MD_START,
            "",
            f"## Results ({self.started})",
            "",
            "Written by `benchmarks/serving_benchmark.py`; rerun it to replace this section.",
            "",
            f"* **Command:** `{self.command}` ({self.wall_s:.0f} s wall)",
            f"* **Machine:** {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
            f"{m['memory_gib']} GiB, {m['kernel']}; {m['python']}",
            "* **Packages:** "
            + ", ".join(f"{k} {v}" for k, v in pk.items())
            + f"; client loop {loadgen.LOOP_NAME}",
            f"* **Background load (other processes):** {f2(100 * self.busy_before, 0)} % of the CPU busy before the run, "
            f"{f2(100 * self.busy_after, 0)} % after (2 s samples)",
            f"* **Model:** `models:/{MODEL_NAME}@{MODEL_ALIAS}` = version {self.model.get('version')} "
            f"({self.model.get('estimator')}, {self.model.get('features')} features, threshold {f2(self.model.get('threshold', math.nan), 3)})",
            f"* **Request:** record `{self.record_id}` from the CSV (strings, as in the file); batch = the file's first "
            f"{self.batch_rows:,} records. {self.args['requests']} measured requests per level after "
            f"{self.args['warmup']} warm-up (or {self.args['max_seconds']:g} s), batches: {self.args['batch_requests']} after {self.args['batch_warmup']}.",
            "",
        ]
        if self.floor:
            out += [
                "### In-process floor",
                "",
                "| path | p50 ms | p99 ms | mean ms | calls |",
                "|---|--:|--:|--:|--:|",
            ]
            out += [
                f"| {t.name} | {t.p50_ms:.3f} | {t.p99_ms:.3f} | {t.mean_ms:.3f} | {t.calls} |"
                for t in self.floor.timings
            ]
            out.append("")
        out += [
            "### Single record over HTTP",
            "",
            "| server | concurrency | ok | errors | req/s | p50 ms | p95 ms | p99 ms | client CPU µs/req | server CPU ms/req | other processes' CPU |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        notes = []
        for res in self.servers.values():
            if res.status != "ok":
                notes.append(
                    f"* **{res.label}:** {res.status} — {res.detail.splitlines()[0] if res.detail else ''}"
                )
            for lv in res.levels:
                cut = " (time bound)" if lv.stopped_by_time else ""
                out.append(
                    f"| {res.label} | {lv.concurrency} | {lv.ok}{cut} | {lv.error_count} | {lv.rps:,.0f} | {lv.pct(50):.2f} | {lv.pct(95):.2f} | {lv.pct(99):.2f} | {lv.client_cpu_us:.0f} | {f2(lv.server_cpu_ms)} | {f2(100 * lv.foreign_cpu, 0)} % |"
                )
        out += ["", *notes] + ([""] if notes else [])
        out += [
            f"### {self.batch_rows:,}-record batch (concurrency 1)",
            "",
            "| server | ok | errors | p50 ms | p99 ms | rows/s | server CPU ms/req | other processes' CPU |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for res in self.servers.values():
            if res.batch:
                b = res.batch
                out.append(
                    f"| {res.label} | {b.ok} | {b.error_count} | {b.pct(50):.2f} | {b.pct(99):.2f} | {self.batch_rows * b.rps:,.0f} | {f2(b.server_cpu_ms)} | {f2(100 * b.foreign_cpu, 0)} % |"
                )
        out += [
            "",
            "### Servers",
            "",
            "| server | startup s | processes | RSS MiB (sum) |",
            "|---|--:|--:|--:|",
        ]
        for res in self.servers.values():
            if res.status == "ok":
                out.append(f"| {res.label} | {res.startup_s:.1f} | {res.processes} | {res.rss_mib:,.0f} |")
        out += ["", "### Ratios and targets", "", "| comparison | measured | target |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in self.ratios()]
        out += ["", MD_END]
        return "\n".join(out) + "\n"

    def json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "command": self.command,
            "wall_s": round(self.wall_s, 1),
            "machine": self.machine,
            "busy_before": self.busy_before,
            "busy_after": self.busy_after,
            "model": self.model,
            "record_id": self.record_id,
            "batch_rows": self.batch_rows,
            "args": self.args,
            "floor": [t.summary() for t in self.floor.timings] if self.floor else None,
            "floor_foreign_cpu_share": self.floor_foreign,
            "servers": {k: v.summary() for k, v in self.servers.items()},
            "ratios": self.ratios(),
        }


def write_markdown(path: Path, section: str) -> None:
    """Replace the results section between the markers; create the file or append if there is none."""
    text = path.read_text() if path.exists() else "# Serving benchmark\n\n"
    start, end = text.find(MD_START), text.find(MD_END)
    if start >= 0 and end > start:
        text = text[:start] + section.rstrip("\n") + text[end + len(MD_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("CHURN_HOME", REPO_ROOT / "data")),
        help="installation with the registered champion (default: $CHURN_HOME or ./data)",
    )
    p.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help="Telco CSV the request records are read from"
    )
    p.add_argument("--requests", type=int, default=2000, help="measured single-record requests per level")
    p.add_argument("--warmup", type=int, default=200, help="discarded requests before each level")
    p.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8, 32],
        help="comma-separated levels (default 1,8,32)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="time bound per level (warm-up and measured phase each)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s), single records")
    p.add_argument("--batch-rows", type=int, default=1000)
    p.add_argument("--batch-requests", type=int, default=40, help="measured batch requests (0 = no batch)")
    p.add_argument("--batch-warmup", type=int, default=5)
    p.add_argument("--floor-calls", type=int, default=500, help="timed calls per single-record floor path")
    p.add_argument("--floor-batch-calls", type=int, default=50, help="timed calls per batch floor path")
    p.add_argument("--record-index", type=int, default=0, help="CSV row used as the single request")
    p.add_argument("--workers", type=int, default=2, help="worker processes for both servers")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVER_ORDER),
        help="comma-separated subset of " + ",".join(SERVER_ORDER),
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the in-process floor (servers are still checked against the model)",
    )
    p.add_argument(
        "--serving-state",
        choices=["scratch", "home"],
        default="scratch",
        help="CHURN_HOME of our server: a scratch dir with --home's registry (default) or --home itself",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other load to drop under 10 %% of the CPU",
    )
    p.add_argument("--output-md", type=Path, help="(re)write the results section of this markdown file")
    p.add_argument("--output-json", type=Path, help="also write every number as JSON")
    return p.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the servers' context managers


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started_at = time.perf_counter()

    os.environ["CHURN_HOME"] = str(args.home.resolve())
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from churn_assets.settings import Settings

    paths = Settings()
    tracking_uri = str(paths.mlflow_tracking_uri)
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    info = machine.describe()
    log(
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable), {info['memory_gib']} GiB, {info['kernel']}"
    )
    log(f"Python:  {info['python']}; client loop {loadgen.LOOP_NAME}")
    log("Packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    busy = machine.wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else machine.cpu_busy_share()
    log(
        f"Background load: {100 * busy:.0f} % of the CPU busy over 2 s"
        + ("  <-- numbers will be noisy" if busy > 0.10 else "")
    )

    from mlflow import MlflowClient

    model_uri = f"models:/{MODEL_NAME}@{MODEL_ALIAS}"
    version = MlflowClient(tracking_uri).get_model_version_by_alias(MODEL_NAME, MODEL_ALIAS)
    records = read_records(args.csv)
    record = records[args.record_index]
    # Past the file's 7,043 rows the batch takes them again from the top (the same customers twice).
    batch = list(itertools.islice(itertools.cycle(records), args.batch_rows))
    log(f"Model:   {model_uri} = version {version.version} (run {version.run_id}), store {tracking_uri}")
    log(
        f"Request: record {record['customerID']} (row {args.record_index} of {args.csv}); batch of {len(batch)}"
    )

    floor: floor_mod.Floor | None = None
    calls, batch_calls = (20, 3) if args.no_floor else (args.floor_calls, args.floor_batch_calls)
    log("\n== in-process floor" + (" (correctness reference only)" if args.no_floor else ""))
    with machine.CpuMonitor(list) as floor_foreign:
        measured = floor_mod.measure_floor(model_uri, record, batch, calls, batch_calls)
    if not args.no_floor:
        floor = measured
        for t in floor.timings:
            log(f"   {t.name:<66} p50 {t.p50_ms:8.3f}  p99 {t.p99_ms:8.3f} ms")
        log(f"   (other processes used {floor_foreign.foreign_share:.0%} of the CPU meanwhile)")
    model_meta = {
        "name": MODEL_NAME,
        "alias": MODEL_ALIAS,
        "version": version.version,
        "run_id": version.run_id,
        "estimator": measured.model_class,
        "features": measured.features,
        "threshold": measured.threshold,
    }
    exp1, exp_n = np.array([measured.expected_single]), measured.expected_batch

    record_json = json.dumps(record).encode()
    plans = {
        "null": ServerPlan(
            "null",
            "null server (client ceiling)",
            null_server(),
            Endpoint("/predict", record_json),
            None,
            None,
            None,
        ),
        "trivial": ServerPlan(
            "trivial",
            "LitServe, trivial model",
            trivial_litserve(args.workers),
            Endpoint("/predict", record_json),
            None,
            None,
            None,
        ),
        "mlflow": ServerPlan(
            "mlflow",
            "mlflow models serve",
            mlflow_server(model_uri, tracking_uri, args.workers),
            Endpoint("/invocations", json.dumps({"dataframe_records": [record]}).encode()),
            Endpoint("/invocations", json.dumps({"dataframe_records": batch}).encode()),
            exp1,
            exp_n,
        ),
        "ours": ServerPlan(
            "ours",
            "LitServe (ours)",
            litserve_server(args.home.resolve(), tracking_uri, args.workers, args.serving_state == "home"),
            Endpoint("/predict", record_json),
            Endpoint("/batch-predict", json.dumps(batch).encode()),
            exp1,
            exp_n,
        ),
    }
    results: dict[str, ServerResult] = {}
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        for key in SERVER_ORDER:
            if key not in args.servers:
                continue
            results[key] = run_server(plans[key], args, Path(tmp), log)

    busy_after = machine.cpu_busy_share()
    log(f"\nBackground load after the run: {100 * busy_after:.0f} % of the CPU busy over 2 s")
    report = Report(
        started=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        command=".venv/bin/python benchmarks/serving_benchmark.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        machine=info,
        busy_before=busy,
        busy_after=busy_after,
        model=model_meta,
        record_id=record["customerID"],
        batch_rows=len(batch),
        args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        floor=floor,
        floor_foreign=floor_foreign.foreign_share,
        servers=results,
    )
    report.wall_s = time.perf_counter() - started_at
    log(report.text())
    if args.output_md:
        write_markdown(args.output_md, report.markdown())
        log(f"\nwrote the results section of {args.output_md}")
    if args.output_json:
        args.output_json.write_text(json.dumps(report.json(), indent=2, default=str))
        log(f"wrote {args.output_json}")
    failed = [r.label for r in results.values() if r.status == "failed"]
    errors = sum(
        lv.error_count for r in results.values() for lv in [*r.levels, *([r.batch] if r.batch else [])]
    )
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
