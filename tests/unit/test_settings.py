from pathlib import Path

import pytest

from churn_assets.settings import Settings


def test_everything_derives_from_churn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "home"))
    s = Settings()
    home = (tmp_path / "home").resolve()
    assert s.landing_dir == home / "landing"
    assert s.duckdb_path == home / "warehouse.duckdb"
    assert s.reports_dir == home / "reports"
    assert s.dagster_home == home / "dagster"
    assert s.mlflow_tracking_uri == f"sqlite:///{home}/mlflow/mlflow.db"
    assert s.subprocess_env()["DAGSTER_HOME"] == str(home / "dagster")


def test_single_locations_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("CHURN_DUCKDB_PATH", str(tmp_path / "elsewhere" / "w.duckdb"))
    s = Settings()
    assert s.duckdb_path == (tmp_path / "elsewhere" / "w.duckdb").resolve()
    assert s.landing_dir == tmp_path.resolve() / "landing"


def test_ensure_dirs_writes_the_instance_config_with_the_duckdb_pool(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    s.ensure_dirs()
    instance_yaml = (s.dagster_home / "dagster.yaml").read_text()
    assert "default_limit: 1" in instance_yaml
    assert s.landing_dir.is_dir() and s.reports_dir.is_dir()
