"""The evaluation report as files: a self-contained HTML page (plots embedded) and a JSON twin."""

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from churn_assets.ml.crossval import Comparison

METRIC_ORDER = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class FamilyEvaluation:
    family: str
    threshold: float
    threshold_rule: str
    validation_log_loss: float
    validation_brier: float
    test: dict[str, float]
    roc_auc_ci: tuple[float, float]
    lift: pl.DataFrame
    importance: list[tuple[str, float]]
    shap: list[tuple[str, float]] | None = None


CV_METRICS = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC"}


def cv_design(comparisons: Sequence[Comparison], train_rows: int) -> str:
    c = comparisons[0]
    return (
        f"{c.n_repeats} x {c.n_splits}-fold stratified cross-validation of each candidate's final, calibrated "
        f"configuration on the {train_rows} train rows (the ensemble: its members' split probabilities "
        "averaged, exactly what soft voting computes). Intervals: 95% Nadeau-Bengio corrected resampled t "
        f"(variance x (1/J + n_test/n_train), {c.n_repeats * c.n_splits - 1} df), because split scores "
        "overlap and the naive interval is too narrow. Differences: paired over the same splits, the same "
        "correction, two-sided; 'beyond noise' means a Holm-adjusted p below 0.05 over the comparisons "
        "with the best (the difference intervals are not adjusted). The hyperparameters were chosen by CV "
        "on these rows, so the means lean optimistic; the test split is the unbiased check."
    )


def noise_verdict(comparison: Comparison) -> str:
    """One plain sentence: is any candidate's difference from the best beyond resampling noise?"""
    label = CV_METRICS[comparison.metric]
    best = comparison.intervals[comparison.best].mean
    beyond = [d for d in comparison.differences.values() if d.beyond_noise]
    head = f"{label}: best {comparison.best} ({best:.4f});"
    if not beyond:
        return f"{head} no other candidate differs from it beyond noise (every Holm-adjusted p >= 0.05)."
    worse = ", ".join(f"{d.candidate} ({d.difference.mean:+.4f}, p = {d.p_holm:.3g})" for d in beyond)
    return f"{head} beyond noise below it: {worse}; the others are within noise."


def _quality_rows(
    evaluations: Sequence[FamilyEvaluation], comparisons: Sequence[Comparison]
) -> list[list[str]]:
    rows = []
    for e in evaluations:
        row = [e.family]
        for c in comparisons:
            i = c.intervals[e.family]
            d = c.differences.get(e.family)
            gap = (
                "best"
                if d is None
                else f"{d.difference.mean:+.4f} (p {d.p_holm:.3f}{', beyond noise' if d.beyond_noise else ''})"
            )
            row += [f"{i.mean:.4f} ({i.low:.3f}–{i.high:.3f})", gap]
        rows.append([*row, f"{e.validation_log_loss:.4f}", f"{e.validation_brier:.4f}"])
    return rows


def _quality_columns(comparisons: Sequence[Comparison]) -> list[str]:
    columns = ["candidate"]
    for c in comparisons:
        label = CV_METRICS[c.metric]
        columns += [f"CV {label} (95% CI)", f"{label} vs best (Holm p)"]
    return [*columns, "validation log loss", "validation Brier"]


def quality_markdown(
    evaluations: Sequence[FamilyEvaluation], comparisons: Sequence[Comparison], chosen: str
) -> str:
    columns = _quality_columns(comparisons)
    lines = [
        f"**Repeated CV on the train split.** Chosen by validation log loss: **{chosen}**.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in _quality_rows(evaluations, comparisons)),
        "",
        *(f"* {noise_verdict(c)}" for c in comparisons),
    ]
    return "\n".join(lines)


def markdown_summary(evaluations: Sequence[FamilyEvaluation], chosen: str) -> str:
    header = (
        "| family | ROC AUC (95% CI) | PR AUC | log loss | Brier | F1 | threshold | top-decile precision |"
    )
    lines = [
        f"**Chosen: {chosen}** (lowest validation log loss). Test split, held out from tuning.",
        "",
        header,
    ]
    lines.append("|" + "---|" * 8)
    for e in evaluations:
        low, high = e.roc_auc_ci
        top = e.lift.row(0, named=True)["precision"]
        t = e.test
        lines.append(
            f"| {e.family} | {t['roc_auc']:.4f} ({low:.3f}–{high:.3f}) | {t['pr_auc']:.4f} | {t['log_loss']:.4f} "
            f"| {t['brier']:.4f} | {t['f1']:.3f} | {e.threshold:.3f} | {top:.3f} |"
        )
    return "\n".join(lines)


def write_report(
    out_dir: Path,
    evaluations: Sequence[FamilyEvaluation],
    chosen: str,
    plots: Sequence[Path],
    context: Mapping[str, Any],
    comparisons: Sequence[Comparison],
    design: str,
) -> tuple[Path, Path]:
    """Write evaluation.html and evaluation.json into `out_dir`; `context` is data version, split sizes…

    `comparisons` are the repeated-CV comparisons (one per metric), `design` says how they were made.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "chosen": chosen,
        "context": dict(context),
        "cross_validation": {
            "design": design,
            "metrics": {
                c.metric: {
                    "best": c.best,
                    "verdict": noise_verdict(c),
                    "intervals": {name: asdict(i) for name, i in c.intervals.items()},
                    "differences_from_best": {name: asdict(d) for name, d in c.differences.items()},
                }
                for c in comparisons
            },
        },
        "families": {
            e.family: {
                "threshold": e.threshold,
                "threshold_rule": e.threshold_rule,
                "validation_log_loss": e.validation_log_loss,
                "validation_brier": e.validation_brier,
                "test": e.test,
                "roc_auc_ci95": list(e.roc_auc_ci),
                "lift": e.lift.to_dicts(),
                "importance": e.importance,
                "shap_mean_abs": e.shap,
            }
            for e in evaluations
        },
    }
    json_path = out_dir / "evaluation.json"
    json_path.write_text(json.dumps(payload, indent=2))
    html_path = out_dir / "evaluation.html"
    html_path.write_text(
        _html(evaluations, chosen, plots, context, _quality_html(evaluations, comparisons, design))
    )
    return html_path, json_path


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></figure>'


def _quality_html(
    evaluations: Sequence[FamilyEvaluation], comparisons: Sequence[Comparison], design: str
) -> str:
    return (
        f"<h2>Repeated cross-validation on the train split</h2><p>{html.escape(design)}</p>"
        + _table(_quality_columns(comparisons), _quality_rows(evaluations, comparisons))
        + "<ul>"
        + "".join(f"<li>{html.escape(noise_verdict(c))}</li>" for c in comparisons)
        + "</ul>"
    )


def _html(
    evaluations: Sequence[FamilyEvaluation],
    chosen: str,
    plots: Sequence[Path],
    context: Mapping[str, Any],
    quality: str,
) -> str:
    metrics = _table(
        ["family", *METRIC_ORDER, "ROC AUC 95% CI", "threshold", "rule"],
        [
            [
                e.family,
                *(e.test[m] for m in METRIC_ORDER),
                f"{e.roc_auc_ci[0]:.3f}–{e.roc_auc_ci[1]:.3f}",
                e.threshold,
                e.threshold_rule,
            ]
            for e in evaluations
        ],
    )
    confusion = _table(
        ["family", "tn", "fp", "fn", "tp"],
        [[e.family, *(int(e.test[k]) for k in ("tn", "fp", "fn", "tp"))] for e in evaluations],
    )
    sections = []
    for e in evaluations:
        lift = e.lift.select(
            "bin", "share_contacted", "precision", "cumulative_recall", "lift", "cumulative_lift"
        )
        sections.append(f"<h3>{html.escape(e.family)}: lift by decile (highest scores first)</h3>")
        sections.append(_table(lift.columns, lift.rows()))
        sections.append(
            "<h3>Feature importance (top 15)</h3>" + _table(["feature", "importance"], e.importance[:15])
        )
        if e.shap:
            sections.append("<h3>Mean |SHAP| (top 15)</h3>" + _table(["feature", "mean |SHAP|"], e.shap[:15]))
    facts = _table(["", ""], [[k, v] for k, v in context.items()])
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:520px;display:inline-block}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>churn-mlops evaluation</title>"
        f"<style>{style}</style></head><body><h1>Model evaluation</h1>"
        f"<p>Chosen candidate: <b>{html.escape(chosen)}</b> (lowest validation log loss). The threshold was "
        f"chosen on the validation split; all figures after the cross-validation section are on the held-out "
        f"test split.</p>{facts}{quality}"
        f"<h2>Test split: metrics at each model's threshold</h2>{metrics}<h2>Confusion matrices</h2>{confusion}"
        f"<h2>Curves</h2>{''.join(_image(p) for p in plots)}<h2>Per family</h2>{''.join(sections)}"
        "</body></html>"
    )
