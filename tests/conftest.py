"""Shared fixtures: the real data set (from CHURN_SOURCE_CSV or ../shared) and installations in tmp homes."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
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
def golden(tmp_path_factory: pytest.TempPathFactory, real_csv: Path) -> Iterator[Installation]:
    """The installation every test module starts from: the batch, then the main job, run once on the real data.

    Never handed to a test: tests get `materialized`, their module's own copy, so nothing a test writes is
    seen by another module, whatever the order the modules run in.
    """
    from churn_assets.ingest.fetch import land_dataset

    for inst in new_installation(tmp_path_factory.mktemp("golden") / "home"):
        s = inst.settings
        land_dataset(s.landing_dir, source=real_csv, url=s.source_url, expected_sha256=s.source_sha256)
        inst.first_result = inst.run_all(FAST_TRAINING)
        yield inst


def copy_installation(source: Installation, home: Path) -> Iterator[Installation]:
    """A complete, separate copy of `source` at `home`: files copied, and the absolute paths the SQLite
    stores keep (MLflow's artifact locations, Dagster's event records) moved from the old home to the new."""
    shutil.copytree(source.settings.home, home)
    old, new = str(source.settings.home), str(home.resolve())
    for database in home.rglob("*.db"):
        relocate(database, old, new)
    for inst in new_installation(home):
        inst.first_result = source.first_result
        yield inst


def relocate(database: Path, old: str, new: str) -> None:
    with closing(sqlite3.connect(database)) as conn, conn:
        tables = [t for (t,) in conn.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for _, column, kind, *_ in conn.execute(f'pragma table_info("{table}")'):
                if any(word in kind.upper() for word in ("CHAR", "TEXT", "CLOB")) or not kind:
                    conn.execute(
                        f'update "{table}" set "{column}" = replace("{column}", ?, ?) '
                        f'where typeof("{column}") = \'text\' and instr("{column}", ?) > 0',
                        (old, new, old),
                    )


@pytest.fixture(scope="module")
def materialized(golden: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """This module's own copy of the golden installation (the whole graph materialized on the real data)."""
    yield from copy_installation(golden, tmp_path_factory.mktemp("materialized") / "home")


@pytest.fixture
def materialized_copy(golden: Installation, tmp_path: Path) -> Iterator[Installation]:
    """A copy of the golden installation for one test alone: for tests that land data, train or move aliases
    while the other tests of their module read `materialized`."""
    yield from copy_installation(golden, tmp_path / "home")


# Tiers by folder: `make test-fast` runs what neither marker selects (tests/unit, in seconds).
# tests/docs/test_examples.py marks itself e2e (the extractor's own tests there are unit tests).
TIERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e, "deploy": pytest.mark.integration}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        tier = TIERS.get(item.path.relative_to(tests_dir).parts[0])
        if tier is not None:
            item.add_marker(tier)
