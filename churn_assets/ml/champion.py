"""The registry contract (model name, aliases) and every move of the `champion` alias, with its reason.

Who moves the alias — the promotion decision, `churn model promote/approve/rollback` — goes through
:func:`move_champion`, which tags the version with why and by whom, and appends to the registered model's
`champion_history` tag: rollback reads that history. MLflow only, no Dagster.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MODEL_NAME = "telco-churn"
CHAMPION_ALIAS = "champion"
"""The version the prediction server serves."""
CHALLENGER_ALIAS = "challenger"
"""The newest version that passed the floor checks (it may or may not have won)."""
HISTORY_TAG = "champion_history"
DRIFT_REFERENCE_ARTIFACT = "drift_reference/reference.parquet"
"""Logged with every registered version's run: the staged training rows it learned from (drift reference)."""


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    with contextlib.suppress(MlflowException):
        return client.get_model_version_by_alias(name, alias)
    return None


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that held `champion`, oldest first (the current one last)."""
    tags = client.get_registered_model(name).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def move_champion(client: MlflowClient, name: str, version: str, reason: str, actor: str) -> str | None:
    """Point `champion` at ``version``; record why and by whom. Returns the previous champion's version."""
    return _set_champion(
        client, name, str(version), reason, actor, [*champion_history(client, name), str(version)]
    )


def rollback(client: MlflowClient, name: str, reason: str, actor: str) -> tuple[str, str]:
    """Give `champion` back to the version that held it before the current one (the history is a stack:
    rolling back twice goes two versions back). Returns (from, to)."""
    history = champion_history(client, name)
    current = version_by_alias(client, name, CHAMPION_ALIAS)
    if current is None:
        raise ValueError(f"{name} has no {CHAMPION_ALIAS}: nothing to roll back")
    if len(history) < 2 or history[-1] != str(current.version):
        raise ValueError(
            f"{name}: no earlier champion recorded before v{current.version}; use `churn model promote VERSION`"
        )
    _set_champion(client, name, history[-2], reason, actor, history[:-1])
    return str(current.version), history[-2]


def _set_champion(
    client: MlflowClient, name: str, version: str, reason: str, actor: str, history: list[str]
) -> str | None:
    client.get_model_version(name, version)  # fails clearly for an unknown version
    previous = version_by_alias(client, name, CHAMPION_ALIAS)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {"promoted_at": now, "promoted_by": actor, "promotion_reason": reason[:4000]}.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-200:]))
    return None if previous is None else str(previous.version)
