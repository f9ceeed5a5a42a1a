"""Server settings: environment variables with local defaults, state under CHURN_HOME."""

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
    model_name: str = "telco-churn"
    model_alias: str = "champion"
    model_poll_s: float = Field(10.0, gt=0)
    log_flush_s: float = Field(2.0, gt=0)
    log_flush_rows: int = Field(5_000, ge=1)
    request_timeout_s: float = 30.0

    @property
    def paths(self) -> Settings:
        return Settings()

    @property
    def state_dir(self) -> Path:
        return self.paths.home / "serving"

    @property
    def prediction_log_dir(self) -> Path:
        return self.paths.prediction_log_dir

    @property
    def metrics_dir(self) -> Path:
        return self.state_dir / "metrics"

    @property
    def status_dir(self) -> Path:
        return self.state_dir / "workers"
