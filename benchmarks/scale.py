"""Cost as data grows: ingestion, ``dbt build``, the training snapshot and the model search at growing sizes.

For each size, a CSV batch of that many customers is made by resampling the real file's rows (uniformly,
seeded) with fresh unique ``customerID``s, written to disk chunk by chunk (never held whole in memory).
Then, in a fresh scratch ``CHURN_HOME`` per size, each stage runs in its own subprocess, the same code the
graph runs:

``ingest``    ``churn_assets.ingest.store.ingest_file`` on a DuckDB connection (what ``raw_batch`` runs);
``dbt``       ``dbt build`` through the project's ``DbtCliResource`` with the warehouse's environment
              (what ``churn_dbt_models`` runs: every model, data test and unit test);
``snapshot``  the ``ml/training_snapshot`` asset, forced, with the project's resources;
``search``    the ``ml/candidate_*`` assets (Optuna search, final fit, MLflow logging) with the default
              ``TrainingConfig``, on the snapshot above.

Per stage: wall seconds of the work inside the subprocess (after its imports), and peak RSS of the whole
process tree (the stage's process and every descendant, e.g. the ``dbt`` process), sampled from /proc
every 20 ms and never below the stage process's own ``ru_maxrss``; plus each size's ratio to the previous
size, so the growth curve is on record.

Run: ``.venv/bin/python benchmarks/scale.py --sizes 100000,1000000,10000000 --output-json /tmp/scale.json``
(the source defaults to ``$CHURN_SOURCE_CSV``). The search runs only at the sizes in ``--search-sizes``
(default 100k and 1M), with ``--search-trials`` Optuna trials per family if given. A stage whose process
tree passes ``--max-rss-mb`` is killed and recorded as such (the machine is shared). Exit code 1 when a
stage failed or a row count is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("ingest", "dbt", "snapshot", "search")
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
DEFAULT_SEARCH_SIZES = (100_000, 1_000_000)
CHUNK_ROWS = 500_000
SAMPLE_S = 0.02
SEARCH_TRIALS_ENV = "CHURN_SCALE_SEARCH_TRIALS"  # how --search-trials reaches the search stage's process
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 2**20


# --- data ------------------------------------------------------------------------------------------


def generate(source: Path, rows: int, path: Path, seed: int) -> Path:
    """``rows`` customers resampled from ``source`` with fresh ids ``S0000000001``..., streamed to ``path``."""
    import numpy as np
    import polars as pl

    from churn_assets.ingest.parse import parse_batch
    from churn_assets.ingest.schema import ID_COLUMN

    real = parse_batch(source).accepted.drop("_row_number")
    rng = np.random.default_rng(seed)
    width = len(str(rows))
    partial = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as out:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            chunk = real[rng.integers(0, real.height, size=count)].with_columns(
                ("S" + pl.int_range(start + 1, start + count + 1).cast(pl.String).str.zfill(width)).alias(
                    ID_COLUMN
                )
            )
            chunk.write_csv(out, include_header=start == 0)
    partial.replace(path)
    return path


# --- stages (run inside the stage's subprocess) -------------------------------------------------------


def _settings(home: Path):
    from churn_assets.settings import Settings

    os.environ["CHURN_HOME"] = str(home)
    settings = Settings(home=home)
    settings.ensure_dirs()
    return settings


def stage_ingest(home: Path, data: Path) -> dict:
    import duckdb

    from churn_assets.ingest.store import ingest_file

    settings = _settings(home)
    with duckdb.connect(str(settings.duckdb_path)) as conn:
        started = time.perf_counter()
        outcome = ingest_file(conn, data)
        wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "status": outcome.status,
        "reason": outcome.reason,
        "rows_in_file": outcome.rows_in_file,
        "rows_accepted": outcome.rows_accepted,
        "rows_rejected": outcome.rows_rejected,
    }


def stage_dbt(home: Path, data: Path) -> dict:
    import duckdb

    from churn_assets.definitions import build_definitions
    from churn_assets.transform.relations import TRAINING_SET_TABLE

    settings = _settings(home)
    resources = build_definitions(settings).resources
    started = time.perf_counter()
    invocation = resources["dbt"].cli(["build"], raise_on_error=False).wait()
    wall = time.perf_counter() - started
    results = json.loads((invocation.target_path / "run_results.json").read_text())["results"]
    statuses = [r["status"] for r in results]
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        (rows,) = conn.execute(f"select count(*) from {TRAINING_SET_TABLE}").fetchone()
    return {
        "wall_s": wall,
        "success": invocation.is_successful(),
        "nodes": len(results),
        "not_passed": [r["unique_id"] for r in results if r["status"] not in ("success", "pass")],
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "training_set_rows": rows,
    }


def _materialize(home: Path, assets: list, selection=None, run_config: dict | None = None):
    import dagster as dg

    from churn_assets.definitions import build_definitions

    resources = build_definitions(_settings(home)).resources
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            selection=selection,
            resources=resources,
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    return wall, result.success, events


def stage_snapshot(home: Path, data: Path) -> dict:
    from churn_assets.training.snapshot import training_snapshot

    wall, success, events = _materialize(
        home, [training_snapshot], run_config={"ops": {"ml__training_snapshot": {"config": {"force": True}}}}
    )
    meta = events.get("ml/training_snapshot", {})
    return {
        "wall_s": wall,
        "success": success,
        "snapshot_rows": meta["dagster/row_count"].value if "dagster/row_count" in meta else None,
    }


def stage_search(home: Path, data: Path) -> dict:
    from churn_assets.training.candidates import model_candidates
    from churn_assets.training.snapshot import training_snapshot

    trials = os.environ.get(SEARCH_TRIALS_ENV)
    config = {"ops": {"model_candidates": {"config": {"n_trials": int(trials)}}}} if trials else None
    wall, success, events = _materialize(
        home, [training_snapshot, model_candidates], selection=list(model_candidates.keys), run_config=config
    )
    return {
        "wall_s": wall,
        "success": success,
        "candidates": {
            key: {"n_trials": meta["n_trials"].value, "validation_roc_auc": meta["validation_roc_auc"].value}
            for key, meta in events.items()
        },
    }


STAGE_FUNCTIONS = {
    "ingest": stage_ingest,
    "dbt": stage_dbt,
    "snapshot": stage_snapshot,
    "search": stage_search,
}


def run_stage_here(stage: str, home: Path, data: Path, result_path: Path) -> None:
    """The child side: run one stage, write its figures (and this process's own peak RSS) as JSON."""
    figures = STAGE_FUNCTIONS[stage](home, data)
    figures["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result_path.write_text(json.dumps(figures))


# --- measuring a stage's process tree -----------------------------------------------------------------


def _tree_rss_bytes(root: int) -> int:
    """Summed RSS of ``root`` and all its descendants, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except OSError:
            continue
    return total


def _stage_env(search_trials: int | None) -> dict[str, str]:
    """This environment with the venv's scripts (``dbt``) first on PATH, as ``make`` targets have it."""
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    if search_trials is not None:
        env[SEARCH_TRIALS_ENV] = str(search_trials)
    return env


def run_stage(
    stage: str, home: Path, data: Path, log_dir: Path, max_rss_mb: float, env: dict[str, str]
) -> dict:
    """Run ``stage`` in a subprocess, sampling its process tree's RSS; its figures plus the peak.

    A stage whose tree grows past ``max_rss_mb`` is killed (the machine is shared: better a recorded
    "killed above the cap" than the kernel's OOM killer choosing a victim)."""
    result_path = log_dir / f"{stage}.json"
    result_path.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--run-stage", stage]
    command += ["--home", str(home), "--data", str(data), "--result", str(result_path)]
    started = time.perf_counter()
    peak, killed = 0, False
    with (log_dir / f"{stage}.log").open("wb") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        while child.poll() is None:
            peak = max(peak, _tree_rss_bytes(child.pid))
            if peak > max_rss_mb * MB and not killed:
                os.killpg(child.pid, signal.SIGKILL)  # the stage's own session: it and its descendants
                killed = True
            time.sleep(SAMPLE_S)
    figures = json.loads(result_path.read_text()) if result_path.exists() else {"wall_s": None}
    figures["exit_code"] = child.returncode
    figures["killed_above_mb"] = max_rss_mb if killed else None
    figures["process_s"] = time.perf_counter() - started
    figures["peak_rss_mb"] = max(peak / MB, figures.get("self_maxrss_mb", 0.0))
    return figures


def problems(stage: str, size: int, figures: dict) -> list[str]:
    """What is wrong with a stage's outcome (failed, or a row count that is not ``size``)."""
    if figures["killed_above_mb"]:
        return [f"{stage} at {size:,}: killed, its process tree passed {figures['killed_above_mb']:,.0f} MB"]
    if figures["exit_code"] != 0:
        return [f"{stage} at {size:,}: exit code {figures['exit_code']}"]
    expected = {
        "ingest": {"status": "loaded", "rows_in_file": size, "rows_accepted": size, "rows_rejected": 0},
        "dbt": {"success": True, "training_set_rows": size},
        "snapshot": {"success": True, "snapshot_rows": size},
        "search": {"success": True},
    }[stage]
    return [
        f"{stage} at {size:,}: {key} = {figures.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if figures.get(key) != value
    ]


# --- the benchmark ----------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    """Markdown: one row per size and stage, with wall s, peak RSS and both as ratios to the previous size."""
    lines = [
        "| rows | stage | wall s | peak RSS MB | wall ratio | RSS ratio |",
        "|--:|---|--:|--:|--:|--:|",
    ]
    previous: dict[str, dict] = {}
    for entry in results:
        for stage, figures in entry["stages"].items():
            before = previous.get(stage)
            wall, rss = figures["wall_s"], figures["peak_rss_mb"]
            wall_ratio = f"{wall / before['wall_s']:.1f}x" if before and wall and before["wall_s"] else ""
            rss_ratio = f"{rss / before['peak_rss_mb']:.1f}x" if before else ""
            wall_text = f"{wall:.1f}" if wall is not None else "failed"
            if figures.get("killed_above_mb"):
                wall_text = f"killed above {figures['killed_above_mb']:,.0f} MB"
            lines.append(
                f"| {entry['rows']:,} | {stage} | {wall_text} | {rss:,.0f} | {wall_ratio} | {rss_ratio} |"
            )
            previous[stage] = figures
        if {"ingest", "dbt"} <= entry["stages"].keys():
            both = [entry["stages"][s] for s in ("ingest", "dbt")]
            if all(f["wall_s"] is not None for f in both):
                lines.append(
                    f"| {entry['rows']:,} | ingest + dbt | {sum(f['wall_s'] for f in both):.1f} | "
                    f"{max(f['peak_rss_mb'] for f in both):,.0f} |  |  |"
                )
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return sizes


def _stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(f"unknown stages {unknown}: choose from {', '.join(STAGES)}")
    return [s for s in STAGES if s in stages]  # the order the graph runs them in


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="rows, comma-separated")
    parser.add_argument("--stages", type=_stages, default=list(STAGES), help=f"of {','.join(STAGES)}")
    parser.add_argument(
        "--search-sizes",
        type=_sizes,
        default=list(DEFAULT_SEARCH_SIZES),
        help="sizes at which the search stage runs (it is not run at the others)",
    )
    parser.add_argument(
        "--search-trials", type=int, help="Optuna trials per family (default: TrainingConfig's default)"
    )
    parser.add_argument(
        "--max-rss-mb", type=float, default=16_000, help="kill a stage whose process tree passes this"
    )
    parser.add_argument("--source-csv", type=Path, default=os.environ.get("CHURN_SOURCE_CSV"))
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temporary one, removed)")
    parser.add_argument("--output-json", type=Path)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep each size's data and CHURN_HOME")
    parser.add_argument("--run-stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_stage:
        run_stage_here(args.run_stage, args.home, args.data, args.result)
        return 0
    if args.source_csv is None or not args.source_csv.is_file():
        parser.error(f"the real data set is needed: --source-csv or CHURN_SOURCE_CSV (got {args.source_csv})")

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="churn-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results, failures = [], []
    try:
        for size in args.sizes:
            size_dir = work / f"rows-{size}"
            shutil.rmtree(size_dir, ignore_errors=True)
            home, logs = size_dir / "home", size_dir / "logs"
            logs.mkdir(parents=True)
            started = time.perf_counter()
            data = generate(args.source_csv, size, size_dir / f"scale-{size}.csv", args.seed)
            entry = {
                "rows": size,
                "file_mb": data.stat().st_size / MB,
                "generate_s": time.perf_counter() - started,
                "stages": {},
            }
            print(
                f"{size:,} rows: {entry['file_mb']:,.1f} MB written in {entry['generate_s']:.1f} s",
                flush=True,
            )
            for stage in args.stages:
                if stage == "search" and size not in args.search_sizes:
                    continue
                figures = run_stage(stage, home, data, logs, args.max_rss_mb, _stage_env(args.search_trials))
                entry["stages"][stage] = figures
                wall = "failed" if figures["wall_s"] is None else f"{figures['wall_s']:.1f} s"
                print(f"  {stage}: {wall}, peak RSS {figures['peak_rss_mb']:,.0f} MB", flush=True)
                failures += problems(stage, size, figures)
                if figures["exit_code"] != 0:  # the later stages need this one's output
                    print(f"  {stage} failed: see {logs / (stage + '.log')}", flush=True)
                    break
            results.append(entry)
            if not args.keep:
                shutil.rmtree(size_dir, ignore_errors=True)
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    for failure in failures:
        print(f"FAILED: {failure}")
    if args.output_json:
        args.output_json.write_text(
            json.dumps({"command": sys.argv, "results": results, "failures": failures}, indent=2)
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
