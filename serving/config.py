"""Server settings: environment variables with local defaults, state under CHURN_HOME."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_assets.ml.champion import CHAMPION_ALIAS, MODEL_NAME
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
    model_name: str = MODEL_NAME
    model_alias: str = CHAMPION_ALIAS
    model_poll_s: float = Field(10.0, gt=0)
    # The registry's `challenger` version, scored besides the champion (both off: it is not even loaded).
    # A/B: this share of customers (by a stable hash of customerID, so a customer always gets the same
    # model) is answered by the challenger. 0 = all traffic to the champion, 1 = all to the challenger.
    challenger_share: float = 0.0
    # Shadow: the challenger also scores what the champion answers; its scores go only to the prediction
    # log (rows flagged `shadow`), never into a response, and its failures never fail a request.
    shadow_challenger: bool = False
    log_flush_s: float = Field(2.0, gt=0)
    log_flush_rows: int = Field(5_000, ge=1)
    # Days of prediction log kept; older date partitions are deleted by the workers.
    prediction_log_retention_days: int = Field(30, ge=1)
    request_timeout_s: float = 30.0

    home: Path | None = None  # CHURN_HOME, as Settings reads it; set here to name another installation

    @cached_property
    def paths(self) -> Settings:
        return Settings() if self.home is None else Settings(home=self.home)

    @field_validator("challenger_share", mode="before")
    @classmethod
    def _share(cls, value: object) -> float:
        try:
            share = float("nan") if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            share = float("nan")
        if not 0 <= share <= 1:  # also refuses nan
            raise ValueError(
                f"CHURN_CHALLENGER_SHARE must be a share of customers between 0 and 1 "
                f"(0.1 = 10 % to the challenger), got {value!r}"
            )
        return share

    @property
    def challenger_on(self) -> bool:
        """Whether the workers follow the challenger alias at all (A/B share above 0 or shadow mode)."""
        return self.challenger_share > 0 or self.shadow_challenger

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
