"""Where a single-record request's time goes in our server: py-spy on every server process under load.

Starts the prediction server (`python -m serving`, as the serving benchmark does: scratch state, the
champion of `--home`), sends single records at concurrency 1 for `--seconds`, and meanwhile samples each
of its processes with `py-spy record` (raw stacks, idle frames excluded). Prints, per process role, the
share of its active samples in each part of the path, and the hottest leaf frames.

    .venv/bin/python benchmarks/serving_profile.py --home "$CHURN_HOME" --seconds 20

py-spy needs permission to read other processes' memory (root, or ptrace allowed); it is a dev
dependency in `uv.lock`. Shares are of sampled *active* time per process: a process waiting in a
blocking read counts only when py-spy cannot tell the wait from work (the manager-queue reads below).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: `benchmarks.*` and the project importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.servers import free_port  # noqa: E402
from benchmarks.serving_benchmark import DEFAULT_CSV, HOST, litserve_server, read_records  # noqa: E402

# (label, substring of a frame in the stack): a sample counts in every part whose frame it holds.
PARTS = [
    ("worker: feature SQL (DuckDB, prepared)", "features (serving/model_store.py"),
    ("worker: predict_proba (scikit-learn)", "predict_proba ("),
    ("worker: validation", "validate (serving/validation.py"),
    ("worker: parse body", "parse_body (serving/payload.py"),
    ("worker: scoring (all, incl. the two above)", "score (serving/scoring.py"),
    ("worker: metrics", "serving/metrics.py"),
    ("worker: prediction log flush", "flush (serving/prediction_log.py"),
    ("worker: LitServe put_response", "put_response ("),
    ("any: multiprocessing manager queue", "multiprocessing/managers.py"),
    ("api: edge middleware", "__call__ (serving/edge.py"),
    ("api: spec endpoint (queue put, wait)", "handle (serving/spec.py"),
    ("api: fastapi", "fastapi/"),
    ("api: starlette", "starlette/"),
    ("api: uvicorn", "uvicorn/"),
    ("api: LitServe response_queue_to_buffer", "response_queue_to_buffer"),
]


def role(pid: int) -> str:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if "spawn_main" in cmdline:
        return "inference worker"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    return "server process"


def summarize(path: Path) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    stacks: list[tuple[str, int]] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack, int(count)))
    total = sum(c for _, c in stacks)
    parts = [(label, sum(c for s, c in stacks if key in s)) for label, key in PARTS]
    leaves = collections.Counter()
    for stack, count in stacks:
        leaves[stack.split(";")[-1]] += count
    return total, [(label, n) for label, n in parts if n], leaves.most_common(6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True, help="installation with the registered champion")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--seconds", type=float, default=20.0, help="sampling time under load")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output-json", type=Path)
    args = p.parse_args(argv)
    record = read_records(args.csv)[0]
    tracking_uri = f"sqlite:///{args.home / 'mlflow' / 'mlflow.db'}"
    py_spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory(prefix="serving-profile-") as tmp:
        scratch, port = Path(tmp), free_port()
        with litserve_server(args.home, tracking_uri, args.workers, in_place=False)(port, scratch) as server:
            server.wait_ready(180)
            raw = loadgen.build_request(HOST, port, "POST", "/predict", json.dumps(record).encode())
            spies = {}
            for pid in server.processes():
                out = scratch / f"spy-{pid}.txt"
                spies[pid] = (
                    out,
                    subprocess.Popen(
                        [
                            str(py_spy),
                            "record",
                            "--pid",
                            str(pid),
                            "--duration",
                            str(int(args.seconds)),
                            "--rate",
                            str(args.rate),
                            "--format",
                            "raw",
                            "--nonblocking",
                            "--output",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
            time.sleep(1)
            level = loadgen.run_level(
                HOST,
                port,
                raw,
                concurrency=1,
                requests=10**9,
                warmup=50,
                max_seconds=args.seconds,
                timeout=10,
                check=lambda status, body: None if status == 200 else str(status),
            )
            for _, spy in spies.values():
                spy.wait(timeout=args.seconds + 30)
            report = {"requests": level.ok, "p50_ms": level.pct(50), "processes": []}
            print(
                f"{level.ok} requests at c=1, p50 {level.pct(50):.2f} ms, while sampling at {args.rate} Hz\n"
            )
            for pid, (out, _) in spies.items():
                if not out.is_file():
                    continue
                total, parts, leaves = summarize(out)
                if total < 20:  # idle helpers (resource tracker, the manager between requests)
                    continue
                print(f"{role(pid)} {pid}: {total} active samples")
                for label, n in parts:
                    print(f"  {label:45s} {100 * n / total:5.1f} %")
                for frame, n in leaves:
                    print(f"    leaf {100 * n / total:5.1f} % {frame[:100]}")
                report["processes"].append(
                    {"pid": pid, "role": role(pid), "samples": total, "parts": dict(parts), "leaves": leaves}
                )
    if args.output_json:
        args.output_json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
