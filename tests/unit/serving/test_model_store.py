"""The parts of the model store that need no registry: the local cache and the error texts."""

from __future__ import annotations

import os
from pathlib import Path

from serving.model_store import LAST_GOOD, prune_cache, redact


def test_the_cache_keeps_the_newest_versions_and_the_last_good_one(tmp_path: Path) -> None:
    for age, version in enumerate(["7", "6", "5", "4", "3"]):  # v7 newest
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / LAST_GOOD).write_text("3")
    deleted = prune_cache(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["v4", "v5"]
    assert sorted(p.name for p in tmp_path.glob("v*")) == ["v3", "v6", "v7"]


def test_error_texts_name_no_host_path() -> None:
    assert redact("No such file or directory: '/tmp/pytest-7/home/no-such-model'") == (
        "No such file or directory: '<path>'"
    )
    assert redact("cannot open sqlite:////srv/churn/mlflow/mlflow.db") == "cannot open <path>"
    assert redact('no "MLmodel" at "file:///srv/churn/mlflow/artifacts/1/x"') == 'no "MLmodel" at "<path>"'
    assert redact("models:/telco-churn/5 is not a ChurnModel") == "models:/telco-churn/5 is not a ChurnModel"
