"""Shared fixtures: the real data set (from CHURN_SOURCE_CSV or ../shared) and installations in tmp homes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from churn_assets.headless import HeadlessResult
from churn_assets.settings import REPO_ROOT, TELCO_SHA256, Settings


@dataclass
class Installation:
    settings: Settings
    instance: dg.DagsterInstance
    first_result: HeadlessResult | None = None

    def defs(self) -> dg.Definitions:
        from churn_assets.definitions import build_definitions

        return build_definitions(self.settings)

    def run_job(self, job_name: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        job = self.defs().resolve_job_def(job_name)
        return job.execute_in_process(instance=self.instance, run_config=run_config, raise_on_error=False)

    def ingest(self) -> list[dg.ExecuteInProcessResult]:
        """Every landed batch not recorded yet, as the landing sensor would request it."""
        from churn_assets.headless import ingest_landed

        return ingest_landed(self.defs(), self.instance)

    def run_all(self, main_config: dict | None = None) -> HeadlessResult:
        from churn_assets.headless import run_all

        return run_all(self.defs(), self.instance, main_config=main_config)


@pytest.fixture(scope="session")
def real_csv() -> Path:
    """The public IBM file; the tests that need it fail (not skip) when it is missing."""
    configured = os.environ.get("CHURN_SOURCE_CSV")
    path = (
        Path(configured) if configured else REPO_ROOT.parent / "shared" / "data" / "Telco-Customer-Churn.csv"
    )
    if not path.is_file():
        pytest.fail(f"the real data set is needed: set CHURN_SOURCE_CSV to a local copy (looked at {path})")
    from churn_assets.ingest.parse import file_sha256

    assert file_sha256(path.read_bytes()) == TELCO_SHA256, f"{path} is not the public IBM file"
    return path


def new_installation(home: Path) -> Iterator[Installation]:
    settings = Settings(home=home)
    settings.ensure_dirs()
    with dg.instance_for_test(temp_dir=str(settings.dagster_home)) as instance:
        yield Installation(settings, instance)


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    yield from new_installation(tmp_path / "home")


# A tiny search: the tests check the graph's wiring and gates, not the search itself.
FAST_TRAINING = {
    "ops": {
        "model_candidates": {
            "config": {"n_trials": 2, "timeout_s": 30, "cv_folds": 3, "quality_cv_repeats": 1}
        }
    }
}
# Train whatever the retraining rule says (a manual run): for tests that retrain on the same data.
FORCED = {"ops": {"ml__training_snapshot": {"config": {"force": True}}}}


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory, real_csv: Path) -> Iterator[Installation]:
    """A session-wide installation where the whole graph (the batch, then the main job) ran once on the real data."""
    from churn_assets.ingest.fetch import land_dataset

    for inst in new_installation(tmp_path_factory.mktemp("materialized") / "home"):
        s = inst.settings
        land_dataset(s.landing_dir, source=real_csv, url=s.source_url, expected_sha256=s.source_sha256)
        inst.first_result = inst.run_all(FAST_TRAINING)
        yield inst
