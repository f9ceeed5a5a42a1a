"""Every path and URI of an installation, derived from one state directory.

Pointing ``CHURN_HOME`` at an empty directory gives a complete, separate installation
(warehouse, landing zone, MLflow store, Dagster instance, reports); tests and benchmarks rely on it.
Each derived location can be overridden on its own with a ``CHURN_*`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DAGSTER_YAML_TEMPLATE = REPO_ROOT / "dagster.yaml"

TELCO_URL = (
    "https://raw.githubusercontent.com/IBM/telco-customer-churn-on-icp4d/master/data/Telco-Customer-Churn.csv"
)
TELCO_SHA256 = "16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91"


class Settings(BaseSettings):
    """Resolved, absolute locations; read from the environment each time it is built."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    home: Path = Path("data")
    # Each location defaults to its place under `home` (the factories see the fields above them).
    landing_dir: Path = Field(default_factory=lambda data: data["home"] / "landing")
    duckdb_path: Path = Field(default_factory=lambda data: data["home"] / "warehouse.duckdb")
    reports_dir: Path = Field(default_factory=lambda data: data["home"] / "reports")
    dagster_home: Path = Field(default_factory=lambda data: data["home"] / "dagster")
    mlflow_tracking_uri: str = Field(
        default_factory=lambda data: (
            f"sqlite:///{data['home'].expanduser().resolve() / 'mlflow' / 'mlflow.db'}"
        )
    )
    mlflow_artifacts_dir: Path = Field(default_factory=lambda data: data["home"] / "mlflow" / "artifacts")
    source_csv: Path | None = None
    source_url: str = TELCO_URL
    source_sha256: str = TELCO_SHA256
    dbt_target: str = "dev"
    dagster_yaml: Path = DAGSTER_YAML_TEMPLATE
    """The Dagster instance config copied into `dagster_home` (CHURN_DAGSTER_YAML): the embedded default
    (SQLite storage), or a deployment's own, e.g. deploy/dagster/dagster.yaml (Postgres storage)."""
    ui_host: str = "127.0.0.1"
    """Interface the Dagster UI that `churn ui` starts listens on (CHURN_UI_HOST; 0.0.0.0 in a container)."""
    ui_port: int = 3000
    """Port of the Dagster UI that `churn ui` starts (CHURN_UI_PORT)."""
    ui_url: str | None = None
    """Address users reach the Dagster UI at, for links in alerts (CHURN_UI_URL); unset: http://ui_host:ui_port."""
    mlflow_ui_host: str = "127.0.0.1"
    """Interface of the MLflow UI that `make mlflow-ui` starts (CHURN_MLFLOW_UI_HOST)."""
    mlflow_ui_port: int = 5000
    """Port of the MLflow UI that `make mlflow-ui` starts (CHURN_MLFLOW_UI_PORT)."""
    alert_webhook_url: str | None = None
    """Slack-compatible incoming webhook the alert sensors POST to (CHURN_ALERT_WEBHOOK_URL); unset: log only."""
    promotion_requires_approval: bool = False
    """When true, a winning challenger waits for `churn model approve VERSION` (CHURN_PROMOTION_REQUIRES_APPROVAL)."""

    @model_validator(mode="after")
    def _absolute(self) -> Settings:
        for name in (
            "home",
            "landing_dir",
            "duckdb_path",
            "reports_dir",
            "dagster_home",
            "mlflow_artifacts_dir",
            "dagster_yaml",
        ):
            setattr(self, name, getattr(self, name).expanduser().resolve())
        if self.source_csv is not None:
            self.source_csv = self.source_csv.expanduser().resolve()
        return self

    @property
    def prediction_log_dir(self) -> Path:
        """Where the prediction server logs what it served (Parquet), read by the drift report."""
        return self.home / "serving" / "predictions"

    @property
    def dbt_profiles_dir(self) -> Path:
        """The installation's dbt profiles.yml, naming this warehouse (written by `churn_assets.resources.Dbt`)."""
        return self.home / "dbt"

    @property
    def dagster_ui_url(self) -> str:
        return self.ui_url or f"http://{self.ui_host}:{self.ui_port}"

    def ensure_dirs(self) -> None:
        """Create the state tree and the Dagster instance config (`dagster_yaml`: storage, the DuckDB pool).

        CHURN_HOME itself is owner-only (0o700), also when it already existed with wider bits: it holds
        customer records, models and run logs, and no one else can then reach files created under it
        before `restrict_to_owner` was in place.
        """
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.chmod(0o700)
        for path in (self.landing_dir, self.reports_dir, self.dagster_home, self.mlflow_artifacts_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.dagster_home / "dagster.yaml", self.dagster_yaml.read_text())

    def subprocess_env(self) -> dict[str, str]:
        """Variables that child processes (dbt, dagster dev, mlflow) read to find this installation."""
        return {
            "CHURN_HOME": str(self.home),
            "CHURN_DUCKDB_PATH": str(self.duckdb_path),
            "CHURN_DBT_TARGET": self.dbt_target,
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFLOW_TRACKING_URI": str(self.mlflow_tracking_uri),
            "CHURN_MLFLOW_UI_HOST": self.mlflow_ui_host,
            "CHURN_MLFLOW_UI_PORT": str(self.mlflow_ui_port),
        }


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def restrict_to_owner() -> None:
    """Make every file and directory this process creates from now on owner-only (umask 0o077).

    The warehouse, the Dagster and MLflow stores, reports and served-prediction logs hold customer records;
    DuckDB, SQLite, dbt, MLflow and Dagster create their files with the process umask (usually 0o022,
    i.e. world-readable), and child processes (`dagster dev`, its code server and run workers, dbt)
    inherit it. Called at the start of each entry point's ``main`` rather than at import, so importing
    this package changes nothing.
    """
    os.umask(0o077)


def get_settings() -> Settings:
    return Settings()
