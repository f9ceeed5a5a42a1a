"""The scale benchmark's smallest sizes as a smoke test: every stage runs and reports sane figures (not timed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from churn_assets.ml.families import FAMILIES
from churn_assets.settings import REPO_ROOT
from churn_assets.training.candidates import model_candidates

SIZES = (1_000, 2_000)


def test_every_stage_runs_at_the_smallest_sizes_with_figures_and_row_counts(
    tmp_path: Path, real_csv: Path
) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "scale.py")]
    command += [
        "--sizes",
        ",".join(map(str, SIZES)),
        "--search-sizes",
        str(SIZES[-1]),
        "--search-trials",
        "1",
    ]
    command += [
        "--source-csv",
        str(real_csv),
        "--work-dir",
        str(tmp_path / "work"),
        "--output-json",
        str(out),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads(out.read_text())
    assert report["failures"] == []
    assert [entry["rows"] for entry in report["results"]] == list(SIZES)
    for entry in report["results"]:
        rows, stages = entry["rows"], entry["stages"]
        expected_stages = (
            ["ingest", "dbt", "snapshot", "search"] if rows == SIZES[-1] else ["ingest", "dbt", "snapshot"]
        )
        assert list(stages) == expected_stages
        for stage, figures in stages.items():
            assert figures["exit_code"] == 0 and figures["killed_above_mb"] is None, stage
            assert 0 < figures["wall_s"] < figures["process_s"], stage  # the work, inside the whole process
            # a Python process with polars/DuckDB loaded is tens of MB at least; the tree's peak is at
            # least what the stage's own process reported for itself
            assert 50 < figures["self_maxrss_mb"] <= figures["peak_rss_mb"] < 16_000, stage
        ingest = stages["ingest"]
        assert (
            ingest["status"],
            ingest["rows_in_file"],
            ingest["rows_accepted"],
            ingest["rows_rejected"],
        ) == (
            "loaded",
            rows,
            rows,
            0,
        )
        assert stages["dbt"]["success"] and stages["dbt"]["not_passed"] == []
        assert stages["dbt"]["training_set_rows"] == rows
        assert (
            stages["dbt"]["peak_rss_mb"] > stages["dbt"]["self_maxrss_mb"]
        )  # the dbt process is counted too
        assert stages["snapshot"]["success"] and stages["snapshot"]["snapshot_rows"] == rows
    search = report["results"][-1]["stages"]["search"]
    assert search["success"]
    assert sorted(search["candidates"]) == sorted(key.to_user_string() for key in model_candidates.keys)
    for candidate in search["candidates"].values():
        assert 0.6 < candidate["validation_roc_auc"] <= 1.0
    assert [search["candidates"][f"ml/candidate_{family}"]["n_trials"] for family in FAMILIES] == [1] * len(
        FAMILIES
    )  # the one trial asked for

    # the printed table: one row per size and stage, ratios to the previous size from the second size on
    for stage in ("ingest", "dbt", "snapshot"):
        first, second = (
            re.search(
                rf"^\| {size:,} \| {stage} \| ([0-9.]+) \| ([0-9,]+) \| (\S*) \| (\S*) \|$", run.stdout, re.M
            )
            for size in SIZES
        )
        assert first and second, (stage, run.stdout)
        assert first.group(3) == "" and second.group(3).endswith("x") and second.group(4).endswith("x")
        wall_ratio = float(second.group(3)[:-1])
        before = report["results"][0]["stages"][stage]["wall_s"]
        after = report["results"][1]["stages"][stage]["wall_s"]
        assert abs(wall_ratio - after / before) < 0.06
    assert re.search(rf"^\| {SIZES[-1]:,} \| search \| [0-9.]+ \| [0-9,]+ \|", run.stdout, re.M)
