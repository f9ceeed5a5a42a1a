"""Server settings: the challenger share and shadow mode, validated when the server starts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from churn_assets.settings import REPO_ROOT
from serving.config import ServeSettings


def test_by_default_the_challenger_is_off() -> None:
    settings = ServeSettings(_env_file=None)
    assert settings.challenger_share == 0 and settings.shadow_challenger is False
    assert not settings.challenger_on


@pytest.mark.parametrize(
    ("env", "share", "shadow", "on"),
    [
        ({"CHURN_CHALLENGER_SHARE": "0.3"}, 0.3, False, True),
        ({"CHURN_CHALLENGER_SHARE": "1"}, 1.0, False, True),
        ({"CHURN_CHALLENGER_SHARE": "0", "CHURN_SHADOW_CHALLENGER": "true"}, 0.0, True, True),
        ({"CHURN_CHALLENGER_SHARE": "0.0", "CHURN_SHADOW_CHALLENGER": "0"}, 0.0, False, False),
    ],
)
def test_share_and_shadow_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env, share, shadow, on
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServeSettings()
    assert (settings.challenger_share, settings.shadow_challenger, settings.challenger_on) == (
        share,
        shadow,
        on,
    )


@pytest.mark.parametrize("share", ["-0.1", "1.5", "30%", "nan", "inf", "", True])
def test_a_share_outside_zero_to_one_is_refused_by_name(share) -> None:
    with pytest.raises(ValidationError) as refused:
        ServeSettings(challenger_share=share)
    assert "CHURN_CHALLENGER_SHARE must be a share of customers between 0 and 1" in str(refused.value)


def test_shadow_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError, match="shadow_challenger"):
        ServeSettings(shadow_challenger="sometimes")


def test_the_server_refuses_to_start_with_a_bad_share(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CHURN_HOME": str(tmp_path), "CHURN_CHALLENGER_SHARE": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "serving"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "invalid server settings" in result.stderr and "CHURN_CHALLENGER_SHARE" in result.stderr
    assert "Traceback" not in result.stderr
