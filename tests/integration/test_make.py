"""`make` works however the user holds the environment: with the project's virtualenv activated (its
Python has no pip and, before uv became a dev dependency, no uv module) or not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from churn_assets.settings import REPO_ROOT


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("activated", "uv_on_path"), [(True, True), (False, True), (False, False)], ids=["venv", "plain", "no-uv"]
)
def test_make_manifest_runs_however_the_environment_is_held(
    activated: bool, uv_on_path: bool, tmp_path: Path
) -> None:
    """Activated: what `source .venv/bin/activate` does. No uv: neither on PATH nor a module of the Python
    that `make` is given (Debian's own), so only the project's .venv/bin/uv is left."""
    venv_bin = Path(sys.executable).parent
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin]
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHON"}}
    env["CHURN_HOME"] = str(tmp_path / "home")
    if activated:
        env["VIRTUAL_ENV"] = str(venv_bin.parent)
        path.insert(0, str(venv_bin))
    if not uv_on_path:
        path = [p for p in path if not (Path(p) / "uv").exists()]
        env["PYTHON"] = "/usr/bin/python3"
        no_uv = subprocess.run([env["PYTHON"], "-c", "import uv"], capture_output=True, env=env)
        assert no_uv.returncode != 0 and shutil.which("uv", path=os.pathsep.join(path)) is None
    env["PATH"] = os.pathsep.join(path)
    done = subprocess.run(
        ["make", "-s", "manifest"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (REPO_ROOT / "dbt_project" / "target" / "manifest.json").is_file()
