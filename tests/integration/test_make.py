"""`make` works however the user holds the environment: with the project's virtualenv activated (its
Python has no pip and, before uv became a dev dependency, no uv module) or not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn_assets.settings import REPO_ROOT


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("activated", [True, False])
def test_make_manifest_runs_with_or_without_the_virtualenv_activated(activated: bool, tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin]
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHON"}}
    env["CHURN_HOME"] = str(tmp_path / "home")
    if activated:  # what `source .venv/bin/activate` does
        env["VIRTUAL_ENV"] = str(venv_bin.parent)
        path.insert(0, str(venv_bin))
    env["PATH"] = os.pathsep.join(path)
    done = subprocess.run(
        ["make", "-s", "manifest"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (REPO_ROOT / "dbt_project" / "target" / "manifest.json").is_file()
