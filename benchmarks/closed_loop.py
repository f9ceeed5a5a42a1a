"""Closed-loop benchmark: from a file dropped in the landing zone to the prediction server answering with the
model trained on it — with only `make ui` and `make serve` running — and the same for a garbage file and a
duplicate file (expected: no training at all).

Protocol
--------
1. A fresh CHURN_HOME (a temporary directory unless --home); `make run` (the whole graph, default search
   budget) gives champion v1.
2. `make ui` (Dagster webserver + daemon: landing sensor and both automation sensors RUNNING by default)
   and `make serve` (the prediction server, polling the registry every second) start; the benchmark waits
   until the UI answers and the server answers /predict.
3. A concept-drift batch lands (`churn data simulate --scenario fiber_growth --rows 3000 --land`). From the
   moment the file is complete in the landing directory, the time at which each stage is recorded: the
   batch's `raw/landed_files` record (ingestion), its `monitoring/batch_drift` report, the rebuilt
   `marts/training_set` (dbt), the `ml/training_snapshot` (a reason to train found), the
   `ml/promotion_decision`, the `ml/champion_model` alias move, and the first /predict answered by the new
   version. Stage times come from the event log (materialization timestamps); "served" is polled every 0.2 s.
4. A garbage file (random bytes, `.csv`) lands; then a copy of the drifted batch under another name. For
   each: the time until its `raw/landed_files` record, then a 90 s watch: training snapshots, candidate
   models and registered versions created after the drop are counted (expected 0).

Run: `.venv/bin/python benchmarks/closed_loop.py [--output-md docs/benchmarks.md]` (~10 min on 2 cores;
needs CHURN_SOURCE_CSV or --csv). Exit code 1 when a stage did not happen or garbage/duplicate trained.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg

from benchmarks.loop_driver import Loop
from churn_assets.ingest.assets import LANDED_FILES
from churn_assets.ingest.schema import LABEL_COLUMN
from churn_assets.ingest.store import batch_id_of, path_sha256
from churn_assets.monitoring.assets import BATCH_DRIFT
from churn_assets.training.keys import CHAMPION_MODEL, PROMOTION_DECISION, TRAINING_SNAPSHOT
from churn_assets.training.snapshot import TRAINING_SET

WATCH_S = 90.0
STAGES = [
    ("ingest", LANDED_FILES, True),
    ("drift", BATCH_DRIFT, True),
    ("dbt (same run)", TRAINING_SET, False),
    ("train: snapshot", TRAINING_SNAPSHOT, False),
    ("decision", PROMOTION_DECISION, False),
    ("champion alias", CHAMPION_MODEL, False),
]


def first_record(csv_path: Path) -> dict[str, str]:
    with csv_path.open(newline="") as handle:
        record = next(csv.DictReader(handle))
    record.pop(LABEL_COLUMN)
    return record


def drifted_cycle(loop: Loop, record: dict[str, str], before: str, rows: int, timeout_s: float) -> dict:
    path = loop.simulate("fiber_growth", rows, 11)
    dropped = path.stat().st_mtime
    batch = batch_id_of(path_sha256(path))
    times: dict[str, float] = {}
    with loop.instance() as instance:

        def progress() -> bool | None:
            for name, key, partitioned in STAGES:
                if name not in times and (
                    found := loop.materialized_after(instance, key, dropped, batch if partitioned else None)
                ):
                    times[name] = found.timestamp - dropped
            if "decision" in times and "champion alias" not in times:
                meta = _decision(instance, dropped)
                if meta["outcome"] != "promoted":
                    return True  # no move to wait for
            if "champion alias" in times and "served" not in times:
                version = loop.served_version(record)
                if version is not None and version != before:
                    times["served"] = time.time() - dropped
            return True if "served" in times else None

        loop.wait_for("the drifted batch to be served", progress, timeout_s, every_s=0.2)
        decision = _decision(instance, dropped)
    return {"batch": batch, "times": times, "decision": decision}


def _decision(instance: dg.DagsterInstance, after: float) -> dict:
    record = Loop.materialized_after(instance, PROMOTION_DECISION, after)
    return {k: v.value for k, v in record.asset_materialization.metadata.items()} if record else {}


def markdown(result: dict) -> str:
    t = result["drifted"]["times"]
    d = result["drifted"]["decision"]
    rows = "\n".join(
        f"| {name} | {t[name]:.1f} |" for name in [s[0] for s in STAGES] + ["served"] if name in t
    )
    refused = "\n".join(
        f"| {r['file']} | {r['status']} | {r['recorded_s']:.1f} | {r['training_snapshots']} | "
        f"{r['candidates_trained']} | {r['new_versions']} |"
        for r in result["refused"]
    )
    return f"""## Closed loop: landed file → served model

`{result["command"]}` on {result["machine"]}, {result["date"]}. `make run` (fresh home, v1): {result["make_run_s"]:.0f} s.
A {result["rows"]:,}-row concept-drift batch (`churn data simulate --scenario fiber_growth --seed 11`) dropped into the
landing directory with only `make ui` and `make serve` running; seconds from the drop (event-log timestamps;
"served" = first /predict answered by the new version, polled every 0.2 s):

| stage | s after drop |
|---|---:|
{rows}

Decision: **{d.get("outcome")}** — {d.get("reason")}

Garbage and duplicate files (seconds until the file's record, then a {WATCH_S:.0f} s watch):

| file | status | recorded (s) | training snapshots | candidates trained | new model versions |
|---|---|---:|---:|---:|---:|
{refused}
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="an empty directory (default: a temporary one)")
    parser.add_argument("--csv", type=Path, default=os.environ.get("CHURN_SOURCE_CSV"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the drifted batch")
    parser.add_argument(
        "--rows",
        type=int,
        default=3000,
        help="rows of the drifted batch (1,500 moves the mixed test rows too little for a win beyond noise)",
    )
    parser.add_argument(
        "--output-md", type=Path, help="replace the closed-loop section of this markdown file"
    )
    args = parser.parse_args()
    if not args.csv:
        parser.error("--csv or CHURN_SOURCE_CSV is needed (the real data set)")
    home = args.home or Path(tempfile.mkdtemp(prefix="closed-loop-"))
    logs = home.parent / f"{home.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    loop = Loop(home=home, logs=logs, source_csv=Path(args.csv).resolve())
    record = first_record(loop.source_csv)
    try:
        make_run_s = loop.make("run")
        loop.start("ui")
        loop.start("serve")
        loop.wait_for("the Dagster UI", loop.ui_ready, 240)
        before = loop.wait_for("the server to answer", lambda: loop.served_version(record), 240)
        drifted = drifted_cycle(loop, record, before, args.rows, args.timeout)
        drifted_file = next((home / "landing").glob("sim-fiber_growth-*.csv"))
        refused = [
            loop.refused_outcome(loop.land("garbage.csv", os.urandom(64 * 1024)), WATCH_S),
            loop.refused_outcome(loop.land("copy-of-drifted.csv", drifted_file.read_bytes()), WATCH_S),
        ]
    finally:
        loop.stop()
    result = {
        "command": "python benchmarks/closed_loop.py",
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "make_run_s": make_run_s,
        "rows": args.rows,
        "drifted": drifted,
        "refused": refused,
    }
    print(json.dumps(result, indent=2, default=str))
    text = markdown(result)
    print(text)
    if args.output_md:
        replace_section(args.output_md, text)
    ok = "served" in drifted["times"] or drifted["decision"].get("outcome") != "promoted"
    ok &= all(r["training_snapshots"] == r["candidates_trained"] == r["new_versions"] == 0 for r in refused)
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


def replace_section(path: Path, text: str) -> None:
    """Replace the `## Closed loop` section of ``path`` (or append it)."""
    doc = path.read_text() if path.exists() else ""
    start = doc.find("## Closed loop")
    if start == -1:
        doc = doc.rstrip() + "\n\n" + text
    else:
        end = doc.find("\n## ", start + 1)
        doc = doc[:start] + text + (doc[end + 1 :] if end != -1 else "")
    path.write_text(doc)


if __name__ == "__main__":
    sys.exit(main())
