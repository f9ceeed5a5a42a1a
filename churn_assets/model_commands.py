"""`churn model status|promote|approve|rollback`: move the champion by hand, in one step, with a reason.

Each move goes through :func:`churn_assets.ml.champion.move_champion` (tags on the version, the champion
history) and is reported to Dagster as a runless materialization of `ml/champion_model` (and an observation
of `ml/promotion_decision`), so the UI shows who moved it and why. The prediction server follows the alias
within its poll interval.
"""

from __future__ import annotations

import getpass

import dagster as dg
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churn_assets.ml import champion as registry
from churn_assets.settings import Settings
from churn_assets.training.keys import CHAMPION_MODEL, PROMOTION_DECISION


class ModelCommandError(Exception):
    pass


def run_model_command(settings: Settings, command: str, version: str | None, reason: str) -> str:
    client = MlflowClient(tracking_uri=str(settings.mlflow_tracking_uri))
    name = registry.MODEL_NAME
    try:
        if command == "status":
            return status(client, name)
        actor = f"churn model {command} ({getpass.getuser()})"
        previous: str | None
        if command == "rollback" and version is None:
            previous, version = registry.rollback(client, name, reason or "rollback", actor)
        elif version is None:
            raise ModelCommandError(f"`churn model {command}` needs a version")
        else:
            if command == "approve":
                _check_awaiting(client, name, version)
            previous = registry.move_champion(client, name, version, reason or command, actor)
    except (ValueError, MlflowException) as exc:  # no champion, no history, unknown version
        raise ModelCommandError(str(exc)) from exc
    if command == "approve":
        client.set_model_version_tag(name, version, "decision", "approved")
    _report(settings, name, version, previous, command, reason, actor)
    return f"{name}@{registry.CHAMPION_ALIAS}: v{previous} → v{version} ({command}{': ' + reason if reason else ''})"


def _check_awaiting(client: MlflowClient, name: str, version: str) -> None:
    decision = client.get_model_version(name, version).tags.get("decision")
    if decision != "awaiting_approval":
        raise ModelCommandError(
            f"v{version}'s decision is {decision!r}, not 'awaiting_approval'; use promote"
        )


def _report(
    settings: Settings, name: str, version: str, previous: str | None, command: str, reason: str, actor: str
) -> None:
    metadata: dict[str, int | str] = {
        "version": int(version),
        "previous_version": int(previous) if previous else 0,
        "model_uri": f"models:/{name}@{registry.CHAMPION_ALIAS}",
        "moved_by": actor,
        "reason": reason or command,
    }
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(CHAMPION_MODEL, metadata=metadata))
        instance.report_runless_asset_event(
            dg.AssetObservation(PROMOTION_DECISION, metadata={"outcome": f"{command} by hand", **metadata})
        )


def status(client: MlflowClient, name: str) -> str:
    champion = registry.version_by_alias(client, name, registry.CHAMPION_ALIAS)
    challenger = registry.version_by_alias(client, name, registry.CHALLENGER_ALIAS)
    lines = [
        f"champion   v{champion.version if champion else '-'}",
        f"challenger v{challenger.version if challenger else '-'}",
        f"history    {' → '.join(registry.champion_history(client, name)) or '-'}",
    ]
    for v in client.search_model_versions(
        f"name = '{name}'", max_results=5, order_by=["creation_timestamp DESC"]
    ):
        lines.append(f"  v{v.version}: {v.tags.get('decision', '-')}: {v.tags.get('decision_reason', '')}")
    return "\n".join(lines)
