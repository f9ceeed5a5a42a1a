"""Registration, the promotion decision, and the `champion` alias.

* `ml/registered_model` registers the chosen candidate as a new version. Floor checks (ROC AUC, PR AUC)
  and a reproduction check run on it; only a version that passes the floors becomes `challenger`. A version
  that does not reproduce its probabilities from the registry is broken: that check is blocking.
* `ml/promotion_decision` is materialized for every registered version: promoted, champion kept, refused
  by the floors, or awaiting approval — with both models' ROC AUC on the same current test rows, the
  margin, the paired bootstrap bound and the reason. It is also tagged on the version in MLflow.
* `ml/champion_model` moves `champion` only when the decision is "promoted" (otherwise it does not
  materialize, and serving keeps the champion it has).
"""

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl

from churn_assets.ml.champion import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DRIFT_REFERENCE_ARTIFACT,
    move_champion,
    version_by_alias,
)
from churn_assets.ml.gate import GatePolicy, GateResult, floor_results, reproduction_result
from churn_assets.ml.matrix import labels, split_frames
from churn_assets.ml.promotion import Decision, PromotionPolicy, decide, paired_auc_gain
from churn_assets.settings import get_settings
from churn_assets.training.evaluation import Evaluation
from churn_assets.training.keys import (
    CHAMPION_MODEL,
    EVALUATION_REPORT,
    PROMOTION_DECISION,
    REGISTERED_MODEL,
    TRAINING_SNAPSHOT,
)
from churn_assets.training.snapshot import TrainingSnapshot
from churn_assets.training.tracking import MlflowTracking

GATE_CHECKS = {
    "roc_auc_floor": (f"Test ROC AUC at or above the floor ({GatePolicy.min_roc_auc} by default).", False),
    "pr_auc_floor": (f"Test PR AUC at or above the floor ({GatePolicy.min_pr_auc} by default).", False),
    "reproduces_test_predictions": (
        "The version loaded back from the registry reproduces the test-split probabilities.",
        True,
    ),
}


class GateConfig(dg.Config):
    min_roc_auc: float = GatePolicy.min_roc_auc
    min_pr_auc: float = GatePolicy.min_pr_auc


class DecisionConfig(dg.Config):
    min_auc_gain: float = PromotionPolicy.min_auc_gain
    """The challenger must beat the champion's test ROC AUC by at least this..."""
    confidence: float = PromotionPolicy.confidence
    """...with the paired bootstrap's one-sided lower bound of the gain above 0 at this level."""
    n_bootstrap: int = PromotionPolicy.n_bootstrap
    requires_approval: bool | None = None
    """None: CHURN_PROMOTION_REQUIRES_APPROVAL decides. True: a win waits for `churn model approve VERSION`."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    family: str
    threshold: float
    test_metrics: dict[str, float]
    data_version: str
    gate: list[GateResult]
    test_proba: np.ndarray  # the registry copy's probabilities on the snapshot's test rows


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    decision: Decision
    champion_version: str | None


def holdout_records(snapshot: TrainingSnapshot) -> tuple[pl.DataFrame, np.ndarray]:
    """Raw records of the held-out test customers, in the order of the test split's feature rows, and their
    labels: what the registered version and the champion are scored on."""
    test = split_frames(snapshot.features).test
    raw = snapshot.raw_records.with_columns(customer_id=pl.col("customerID").str.strip_chars())
    ordered = test.select("customer_id").join(raw, on="customer_id", how="left", maintain_order="left")
    return ordered.drop("customer_id"), labels(test)


def _score(model_uri: str, records: pl.DataFrame) -> np.ndarray:
    return mlflow.pyfunc.load_model(model_uri).predict(records.to_pandas())["churn_probability"].to_numpy()


@dg.asset(
    key=REGISTERED_MODEL,
    ins={
        "training_snapshot": dg.AssetIn(key=TRAINING_SNAPSHOT),
        "evaluation_report": dg.AssetIn(key=EVALUATION_REPORT),
    },
    check_specs=[
        dg.AssetCheckSpec(name, asset=REGISTERED_MODEL, blocking=blocking, description=text)
        for name, (text, blocking) in GATE_CHECKS.items()
    ],
    group_name="ml",
    kinds={"mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The chosen candidate as a new version of the registered model; alias `challenger` once it "
    "passes the floor checks.",
)
def registered_model(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    training_snapshot: TrainingSnapshot,
    evaluation_report: Evaluation,
    mlflow_tracking: MlflowTracking,
):
    chosen = evaluation_report.chosen
    name = mlflow_tracking.registered_model_name
    client = mlflow_tracking.client()
    train_ids = split_frames(training_snapshot.features).train.get_column("customer_id")
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / Path(DRIFT_REFERENCE_ARTIFACT).name
        training_snapshot.staged.filter(pl.col("customer_id").is_in(train_ids.implode())).write_parquet(
            reference
        )
        client.log_artifact(chosen.run_id, str(reference), str(Path(DRIFT_REFERENCE_ARTIFACT).parent))

    test_metrics = evaluation_report.test_metrics[chosen.family]
    version = mlflow.register_model(
        chosen.model_uri,
        name,
        tags={
            "family": chosen.family,
            "threshold": f"{chosen.threshold.threshold:.6f}",
            "data_version": training_snapshot.data_version,
            "data_cutoff": training_snapshot.data_cutoff,
            "training_rows": str(training_snapshot.features.height),
            "dagster_run_id": context.run.run_id,
            **{f"test_{k}": f"{v:.6f}" for k, v in test_metrics.items()},
        },
    )
    records, _ = holdout_records(training_snapshot)
    reloaded_proba = _score(f"models:/{name}/{version.version}", records)
    policy = GatePolicy(config.min_roc_auc, config.min_pr_auc)
    gate = [
        *floor_results(test_metrics, policy),
        reproduction_result(evaluation_report.test_proba, reloaded_proba, policy),
    ]
    for result in gate:
        client.set_model_version_tag(
            name, version.version, f"gate.{result.name}", "passed" if result.passed else "failed"
        )
    if all(r.passed for r in gate):
        client.set_registered_model_alias(name, CHALLENGER_ALIAS, version.version)
    context.log.info(
        f"registered {name} v{version.version} ({chosen.family}); gate: {[(r.name, r.passed) for r in gate]}"
    )

    yield dg.Output(
        RegisteredVersion(
            name=name,
            version=version.version,
            run_id=chosen.run_id,
            family=chosen.family,
            threshold=chosen.threshold.threshold,
            test_metrics=test_metrics,
            data_version=training_snapshot.data_version,
            gate=gate,
            test_proba=reloaded_proba,
        ),
        metadata={
            "model": f"{name} v{version.version}",
            "version": int(version.version),
            "family": chosen.family,
            "test_roc_auc": test_metrics["roc_auc"],
            "test_pr_auc": test_metrics["pr_auc"],
            "challenger": all(r.passed for r in gate),
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(chosen.run_id)),
        },
    )
    for result in gate:
        yield dg.AssetCheckResult(
            check_name=result.name,
            passed=result.passed,
            metadata={"detail": result.detail, "version": version.version},
        )


@dg.asset(
    key=PROMOTION_DECISION,
    ins={
        "registered_model": dg.AssetIn(key=REGISTERED_MODEL),
        "training_snapshot": dg.AssetIn(key=TRAINING_SNAPSHOT),
    },
    group_name="ml",
    kinds={"mlflow"},
    automation_condition=dg.AutomationCondition.eager()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description="For every registered version: promoted, champion kept, refused, or awaiting approval. "
    "The challenger is promoted only if it beats the champion's ROC AUC on the same current test rows by "
    "the margin, with the paired bootstrap's lower bound of the gain above 0; both scores and the reason "
    "are recorded here and as `decision*` tags on the MLflow version.",
)
def promotion_decision(
    context: dg.AssetExecutionContext,
    config: DecisionConfig,
    registered_model: RegisteredVersion,
    training_snapshot: TrainingSnapshot,
    mlflow_tracking: MlflowTracking,
) -> dg.Output[PromotionDecision]:
    name, version = registered_model.name, registered_model.version
    client = mlflow_tracking.client()
    champion = version_by_alias(client, name, CHAMPION_ALIAS)
    policy = PromotionPolicy(config.min_auc_gain, config.confidence, config.n_bootstrap)
    comparison = None
    if champion is not None and str(champion.version) != version:
        records, y_test = holdout_records(training_snapshot)
        champion_proba = _score(f"models:/{name}/{champion.version}", records)
        comparison = paired_auc_gain(y_test, registered_model.test_proba, champion_proba, policy)
    approval = (
        config.requires_approval
        if config.requires_approval is not None
        else get_settings().promotion_requires_approval
    )
    failures = [r.detail for r in registered_model.gate if not r.passed]
    decision = decide(comparison, failures, policy, approval)
    champion_version = None if champion is None else str(champion.version)
    tags = {"decision": decision.outcome, "decision_reason": decision.reason[:4000]}
    if comparison is not None and champion_version is not None:
        tags |= {
            "decision_compared_with": champion_version,
            "decision_challenger_auc": f"{comparison.challenger_auc:.6f}",
            "decision_champion_auc": f"{comparison.champion_auc:.6f}",
            "decision_auc_gain": f"{comparison.gain:+.6f}",
            "decision_gain_lower": f"{comparison.gain_lower:+.6f}",
        }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    context.log.info(f"{name} v{version}: {decision.outcome} — {decision.reason}")
    return dg.Output(
        PromotionDecision(version, decision, champion_version),
        metadata=decision_metadata(name, version, champion_version, decision, policy),
    )


def decision_metadata(
    name: str, version: str, champion_version: str | None, decision: Decision, policy: PromotionPolicy | None
) -> dict:
    """What the UI shows for a decision (also for one taken by hand with `churn model ...`)."""
    c = decision.comparison
    nan = float("nan")
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "version": int(version),
        "model": f"{name} v{version}",
        "champion_version": int(champion_version) if champion_version else 0,
        "challenger_roc_auc": c.challenger_auc if c else nan,
        "champion_roc_auc": c.champion_auc if c else nan,
        "auc_gain": c.gain if c else nan,
        "auc_gain_lower_bound": c.gain_lower if c else nan,
        "test_rows_compared": c.n_rows if c else 0,
        "margin": policy.min_auc_gain if policy else nan,
        "confidence": policy.confidence if policy else nan,
    }


@dg.asset(
    key=CHAMPION_MODEL,
    ins={
        "promotion_decision": dg.AssetIn(key=PROMOTION_DECISION),
        "registered_model": dg.AssetIn(key=REGISTERED_MODEL),
    },
    group_name="ml",
    kinds={"mlflow"},
    output_required=False,
    automation_condition=dg.AutomationCondition.eager()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=30), warn_window=timedelta(days=8)
    ),
    description="The registry alias `champion`, which the prediction server follows. Moves only when the "
    "promotion decision is `promoted` (or by hand: `churn model promote|approve|rollback`).",
)
def champion_model(
    context: dg.AssetExecutionContext,
    promotion_decision: PromotionDecision,
    registered_model: RegisteredVersion,
    mlflow_tracking: MlflowTracking,
):
    name, version = registered_model.name, registered_model.version
    decision = promotion_decision.decision
    if decision.outcome != "promoted":
        context.log.info(
            f"{name}@{CHAMPION_ALIAS} stays v{promotion_decision.champion_version}: {decision.outcome}"
        )
        return
    previous = move_champion(mlflow_tracking.client(), name, version, decision.reason, "promotion_decision")
    context.log.info(f"{name}@{CHAMPION_ALIAS}: v{previous} → v{version}")
    metrics = registered_model.test_metrics
    yield dg.Output(
        None,
        metadata={
            "model_uri": f"models:/{name}@{CHAMPION_ALIAS}",
            "version": int(version),
            "previous_version": int(previous) if previous else 0,
            "family": registered_model.family,
            "threshold": registered_model.threshold,
            "test_roc_auc": metrics["roc_auc"],
            "test_pr_auc": metrics["pr_auc"],
            "test_brier": metrics["brier"],
            "data_version": registered_model.data_version,
            "reason": decision.reason,
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(registered_model.run_id)),
        },
    )
