"""The parts of the model store that need no registry: the local cache and the error texts."""

from __future__ import annotations

import os
from pathlib import Path

from serving.model_store import prune_cache, redact


def test_the_cache_keeps_the_newest_versions_and_every_last_good_one(tmp_path: Path) -> None:
    for age, version in enumerate(["7", "6", "5", "4", "3"]):  # v7 newest
        folder = tmp_path / f"telco-churn-v{version}-run{version}"
        folder.mkdir()
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "last-good-telco-churn@champion").write_text("telco-churn-v3-run3")
    abandoned = tmp_path / ".telco-churn-v8-run8-1234"  # a download left by a killed worker
    abandoned.mkdir()
    os.utime(abandoned, (1_000, 1_000))
    deleted = prune_cache(tmp_path, keep=3)
    assert sorted(p.name for p in deleted) == [
        ".telco-churn-v8-run8-1234",
        "telco-churn-v4-run4",
        "telco-churn-v5-run5",
    ]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "telco-churn-v3-run3",
        "telco-churn-v6-run6",
        "telco-churn-v7-run7",
    ]


def test_error_texts_name_no_host_path() -> None:
    assert redact("No such file or directory: '/tmp/pytest-7/home/no-such-model'") == (
        "No such file or directory: '<path>'"
    )
    assert redact("cannot open sqlite:////srv/churn/mlflow/mlflow.db") == "cannot open <path>"
    assert redact('no "MLmodel" at "file:///srv/churn/mlflow/artifacts/1/x"') == 'no "MLmodel" at "<path>"'
    assert redact("models:/telco-churn/5 is not a ChurnModel") == "models:/telco-churn/5 is not a ChurnModel"
