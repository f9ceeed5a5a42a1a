"""Moves of the `champion` alias: recorded reason and actor, history as a stack, clear errors."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from churn_assets.ml.champion import (
    CHAMPION_ALIAS,
    MODEL_NAME,
    champion_history,
    move_champion,
    rollback,
    version_by_alias,
)

NAME = MODEL_NAME


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model(NAME)
    for _ in range(3):
        client.create_model_version(NAME, source=str(tmp_path / "model"))
    return client


def _champion(client: MlflowClient) -> str:
    return str(version_by_alias(client, NAME, CHAMPION_ALIAS).version)


def test_a_move_records_why_and_who_and_returns_the_previous_champion(client) -> None:
    assert move_champion(client, NAME, "1", "no champion yet", "promotion_decision") is None
    assert move_champion(client, NAME, "2", "gain +0.02", "promotion_decision") == "1"
    tags = client.get_model_version(NAME, "2").tags
    assert (tags["promotion_reason"], tags["promoted_by"]) == ("gain +0.02", "promotion_decision")
    assert _champion(client) == "2"
    assert champion_history(client, NAME) == ["1", "2"]


def test_rollback_walks_the_history_back_like_a_stack(client) -> None:
    for version in ("1", "2", "3"):
        move_champion(client, NAME, version, "won", "promotion_decision")
    assert rollback(client, NAME, "v3 misbehaves", "ops") == ("3", "2")
    assert rollback(client, NAME, "v2 too", "ops") == ("2", "1")
    assert _champion(client) == "1"
    assert client.get_model_version(NAME, "1").tags["promotion_reason"] == "v2 too"
    with pytest.raises(ValueError, match="no earlier champion"):
        rollback(client, NAME, "again", "ops")


def test_rollback_without_a_champion_and_a_move_to_an_unknown_version_fail_clearly(client) -> None:
    with pytest.raises(ValueError, match="has no champion"):
        rollback(client, NAME, "why", "ops")
    with pytest.raises(Exception, match="9"):
        move_champion(client, NAME, "9", "typo", "ops")
    assert version_by_alias(client, NAME, CHAMPION_ALIAS) is None
