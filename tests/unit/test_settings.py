import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from churn_assets.settings import REPO_ROOT, Settings


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


def test_ensure_dirs_makes_churn_home_owner_only(tmp_path: Path) -> None:
    fresh = Settings(home=tmp_path / "fresh")
    fresh.ensure_dirs()
    assert stat.S_IMODE(fresh.home.stat().st_mode) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    Settings(home=existing).ensure_dirs()
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700


def _python(code: str, env: dict[str, str] | None = None) -> None:
    """Run ``code`` in a fresh interpreter, so this process's umask is never touched."""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env=env)


def test_restrict_to_owner_leaves_no_group_or_other_bits(tmp_path: Path) -> None:
    _python(
        "import os\n"
        "os.umask(0o022)\n"
        "import churn_assets.cli  # importing changes nothing\n"
        "assert os.umask(0o022) == 0o022\n"
        "from churn_assets.settings import restrict_to_owner\n"
        "restrict_to_owner()\n"
        f"open({str(tmp_path / 'file')!r}, 'w').write('x')\n"
        f"os.mkdir({str(tmp_path / 'dir')!r})\n"
    )
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "dir").stat().st_mode) == 0o700


def test_the_churn_cli_writes_owner_only_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env["CHURN_HOME"] = str(tmp_path / "home")
    _python(
        "import os, sys\nos.umask(0o022)\nfrom churn_assets.cli import main\nsys.exit(main(['env']))", env
    )
    s = Settings(home=tmp_path / "home")
    assert stat.S_IMODE((s.dagster_home / "dagster.yaml").stat().st_mode) == 0o600
    for directory in (s.home, s.landing_dir, s.dagster_home, s.mlflow_artifacts_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.mark.integration  # a real dbt call: seconds
def test_the_installation_dbt_profile_names_its_own_warehouse(tmp_path: Path) -> None:
    import yaml

    from churn_assets.definitions import build_definitions

    s = Settings(home=tmp_path / "home", duckdb_path=tmp_path / "elsewhere" / "w.duckdb")
    dbt = build_definitions(s).resources["dbt"]
    profiles = yaml.safe_load(dbt.profile())
    (outputs,) = [p["outputs"] for p in profiles.values()]
    assert outputs["dev"]["path"] == str(tmp_path / "elsewhere" / "w.duckdb")
    assert outputs["analysis"]["path"] == ":memory:"
    assert outputs["prod"]["path"].startswith("md:")  # the project's other outputs are kept as they are

    dbt.cli(["debug"], target="analysis").wait()  # a real dbt call reads the written profile
    assert yaml.safe_load((s.dbt_profiles_dir / "profiles.yml").read_text()) == profiles


# What the code imports, imported first: their own changes at import (MLflow's telemetry session id, jemalloc
# settings of the native libraries) are theirs; the test holds the project's modules to none.
LIBRARIES = (
    "dagster, dagster_dbt, mlflow, polars, pyarrow, duckdb, pandas, sklearn, xgboost, litserve, fastapi"
)
PROJECT = (
    "churn_assets.definitions, churn_assets.monitoring.drift, churn_assets.monitoring.profile, serving.server"
)


@pytest.mark.integration  # imports everything in a fresh interpreter: seconds
def test_importing_the_code_changes_no_environment_and_writes_nothing(tmp_path: Path) -> None:
    """No side effects at import: the definitions, the reports' modules and the server."""
    probe = (
        f"import os, json; import {LIBRARIES}; before = dict(os.environ); import {PROJECT}; "
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))"
    )
    home = tmp_path / "home"
    env = {**os.environ, "CHURN_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
    assert not home.exists()


def test_service_addresses_are_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("UI_HOST", "UI_PORT", "UI_URL", "MLFLOW_UI_HOST", "MLFLOW_UI_PORT"):
        monkeypatch.delenv(f"CHURN_{name}", raising=False)
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    assert Settings().dagster_ui_url == "http://127.0.0.1:3000"
    monkeypatch.setenv("CHURN_UI_PORT", "3100")
    assert Settings().dagster_ui_url == "http://127.0.0.1:3100"
    monkeypatch.setenv("CHURN_UI_URL", "https://dagster.example.org")
    monkeypatch.setenv("CHURN_MLFLOW_UI_PORT", "5100")
    s = Settings()
    assert s.dagster_ui_url == "https://dagster.example.org"
    assert s.subprocess_env()["CHURN_MLFLOW_UI_PORT"] == "5100"
