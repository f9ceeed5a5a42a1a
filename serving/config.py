"""Server settings: environment variables with local defaults, state under CHURN_HOME."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_assets.settings import Settings


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    serve_workers: int = Field(2, ge=1)
    api_key: SecretStr | None = None
    batch_limit: int = Field(10_000, ge=1)
    # 10,000 records of the data set are ~5 MB of compact JSON, ~6 MB indented: 8 MiB admits a full batch.
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # A client must send its request headers, and then its whole body, within these many seconds.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(10.0, gt=0)
    model_name: str = "telco-churn"
    model_alias: str = "champion"
    model_poll_s: float = Field(10.0, gt=0)
    log_flush_s: float = Field(2.0, gt=0)
    log_flush_rows: int = Field(5_000, ge=1)
    # Days of prediction log kept; older date partitions are deleted by the workers.
    prediction_log_retention_days: int = Field(30, ge=1)
    request_timeout_s: float = 30.0

    home: Path | None = None  # CHURN_HOME, as Settings reads it; set here to name another installation

    @cached_property
    def paths(self) -> Settings:
        return Settings() if self.home is None else Settings(home=self.home)

    @property
    def state_dir(self) -> Path:
        return self.paths.home / "serving"

    @property
    def prediction_log_dir(self) -> Path:
        return self.paths.prediction_log_dir

    @property
    def instance_dir(self) -> Path:
        return instance_dir(self.state_dir, self.serve_port)

    @property
    def metrics_dir(self) -> Path:
        return self.instance_dir / "metrics"

    @property
    def status_dir(self) -> Path:
        return self.instance_dir / "workers"

    @property
    def model_cache_dir(self) -> Path:
        """The last versions that loaded, kept locally so a restart can serve one when the registry can't."""
        return self.state_dir / "model-cache"


def instance_dir(state_dir: Path, port: int) -> Path:
    """The state of the server on `port` (its processes' metrics, its workers' status files). Servers on
    other ports may share the home (replicas, tests): each starts by clearing only its own."""
    return state_dir / f"port-{port}"
