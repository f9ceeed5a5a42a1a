"""The evaluation report: every candidate's repeated-CV quality on the train split and its figures on the
held-out test split, and the choice among them."""

from dataclasses import dataclass

import dagster as dg
import mlflow
import numpy as np
from sklearn.metrics import roc_auc_score

from churn_assets.ml.crossval import compare
from churn_assets.ml.explain import feature_importance, mean_abs_shap, plot_shap_summary
from churn_assets.ml.families import CANDIDATES
from churn_assets.ml.matrix import feature_matrix, labels, split_frames
from churn_assets.ml.metrics import bootstrap_ci, classification_metrics, lift_table
from churn_assets.ml.plots import write_comparison_plots
from churn_assets.ml.report import (
    CV_METRICS,
    FamilyEvaluation,
    cv_design,
    markdown_summary,
    noise_verdict,
    quality_markdown,
    write_report,
)
from churn_assets.resources import StateDirs
from churn_assets.training.candidates import Candidate
from churn_assets.training.keys import EVALUATION_REPORT, TRAINING_SNAPSHOT, candidate_key
from churn_assets.training.snapshot import TrainingSnapshot
from churn_assets.training.tracking import MlflowTracking


@dataclass(frozen=True)
class Evaluation:
    chosen: Candidate
    test_metrics: dict[str, dict[str, float]]  # family -> metrics on the test split
    test_proba: np.ndarray  # the chosen candidate's test-split probabilities (in-memory model)


def choose(candidates: list[Candidate]) -> Candidate:
    """Lowest validation log loss: a proper scoring rule on data no candidate was tuned on."""
    return min(candidates, key=lambda c: c.validation["log_loss"])


@dg.asset(
    key=EVALUATION_REPORT,
    ins={"training_snapshot": dg.AssetIn(key=TRAINING_SNAPSHOT)}
    | {name: dg.AssetIn(key=candidate_key(name)) for name in CANDIDATES},
    group_name="ml",
    kinds={"mlflow", "html"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Candidates compared by repeated CV on the train split (intervals, paired corrected tests) "
    "and on the test split: metrics, CIs, lift, curves, importance, SHAP.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    training_snapshot: TrainingSnapshot,
    logistic_regression: Candidate,
    random_forest: Candidate,
    xgboost: Candidate,
    ensemble: Candidate,
    mlflow_tracking: MlflowTracking,
    state: StateDirs,
) -> dg.Output[Evaluation]:
    candidates = [logistic_regression, random_forest, xgboost, ensemble]
    comparisons = [compare({c.family: c.quality for c in candidates}, metric) for metric in CV_METRICS]
    splits = split_frames(training_snapshot.features)
    test = splits.test
    X_test, y_test = feature_matrix(test, training_snapshot.feature_columns), labels(test)
    out_dir = state.reports / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)

    probas: dict[str, np.ndarray] = {c.family: c.estimator.predict_proba(X_test)[:, 1] for c in candidates}
    evaluations = []
    for c in candidates:
        p = probas[c.family]
        shap = None
        if c.family == "xgboost":
            shap = mean_abs_shap(c.estimator, X_test, training_snapshot.feature_columns)
            plot_shap_summary(
                c.estimator, X_test, training_snapshot.feature_columns, out_dir / "shap_xgboost.png"
            )
        evaluations.append(
            FamilyEvaluation(
                family=c.family,
                threshold=c.threshold.threshold,
                threshold_rule=c.threshold.rule,
                validation_log_loss=c.validation["log_loss"],
                validation_brier=c.validation["brier"],
                test=classification_metrics(y_test, p, c.threshold.threshold),
                roc_auc_ci=bootstrap_ci(y_test, p, roc_auc_score, n_boot=1000, seed=0),
                lift=lift_table(y_test, p),
                importance=feature_importance(c.estimator, training_snapshot.feature_columns, X_test, y_test),
                shap=shap,
            )
        )
    chosen = choose(candidates)
    plots = write_comparison_plots(y_test, probas, out_dir)
    if (out_dir / "shap_xgboost.png").exists():
        plots.append(out_dir / "shap_xgboost.png")
    facts = {
        "data_version": training_snapshot.data_version,
        "test rows": len(y_test),
        "test churn rate": float(y_test.mean()),
        "features": len(training_snapshot.feature_columns),
        "data set": "IBM Telco Customer Churn, 21-column public file",
    }
    design = cv_design(comparisons, splits.train.height)
    html_path, json_path = write_report(
        out_dir, evaluations, chosen.family, plots, facts, comparisons, design
    )

    client = mlflow_tracking.client()
    for e, c in zip(evaluations, candidates, strict=True):
        for name, value in e.test.items():
            client.log_metric(c.run_id, f"test_{name}", value)
        client.log_metric(c.run_id, "test_roc_auc_ci_low", e.roc_auc_ci[0])
        client.log_metric(c.run_id, "test_roc_auc_ci_high", e.roc_auc_ci[1])
        for comparison in comparisons:
            if d := comparison.differences.get(c.family):
                client.log_metric(c.run_id, f"cv_{d.metric}_diff_from_best", d.difference.mean)
                client.log_metric(c.run_id, f"cv_{d.metric}_diff_from_best_p_holm", d.p_holm)
    with mlflow_tracking.child_run(context, "evaluation-report", tags={"chosen": chosen.family}):
        mlflow.log_artifacts(str(out_dir), artifact_path="evaluation")

    best = next(e for e in evaluations if e.family == chosen.family)
    summary = markdown_summary(evaluations, chosen.family)
    quality = quality_markdown(evaluations, comparisons, chosen.family)
    context.log.info(f"{summary}\n\n{quality}")
    return dg.Output(
        Evaluation(chosen, {e.family: e.test for e in evaluations}, probas[chosen.family]),
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "cv_quality": dg.MetadataValue.md(f"{quality}\n\n{design}"),
            **{f"cv_{c.metric}_verdict": noise_verdict(c) for c in comparisons},
            "chosen_family": chosen.family,
            "test_roc_auc": best.test["roc_auc"],
            "test_roc_auc_ci_low": best.roc_auc_ci[0],
            "test_roc_auc_ci_high": best.roc_auc_ci[1],
            "test_pr_auc": best.test["pr_auc"],
            "test_brier": best.test["brier"],
            "test_f1": best.test["f1"],
            "report_html": dg.MetadataValue.path(str(html_path)),
            "report_json": dg.MetadataValue.path(str(json_path)),
        },
    )
