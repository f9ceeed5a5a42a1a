"""Monitoring as code: Prometheus config, rules and their unit tests, Alertmanager config, Grafana dashboards,
checked by the real promtool and amtool, and the alert thresholds held equal to the project's own settings."""

import json
import re
import shutil
import subprocess  # nosec B404 # runs promtool and amtool, fixed arguments
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from churn_assets.monitoring import exporter
from churn_assets.monitoring.assets import DriftConfig
from churn_assets.settings import REPO_ROOT

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((REPO_ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is needed (Debian packages prometheus and prometheus-alertmanager)")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["promtool", "check", "config", "prometheus.yml"],
        ["promtool", "check", "rules", *map(str, RULES)],
        ["promtool", "test", "rules", *map(str, RULE_TESTS)],
        ["amtool", "check-config", str(REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml")],
    ],
    ids=["check-config", "check-rules", "test-rules", "amtool"],
)
def test_real_tools_accept_the_config(args: list[str]) -> None:
    done = subprocess.run(  # nosec B603
        [_tool(args[0]), *args[1:]], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _rules() -> list[dict]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def test_every_alert_has_for_severity_annotations_and_a_firing_unit_test() -> None:
    tested: dict[str, list[list]] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], []).append(check["exp_alerts"])
    alerts = _alerts()
    assert {
        "ReplicaDown",
        "HighErrorRate",
        "HighP99Latency",
        "NoModelLoaded",
        "ServedModelStale",
        "PredictionDistributionShift",
        "DriftShareOverThreshold",
    } <= alerts.keys()
    for name, rule in alerts.items():
        assert rule["for"] and rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= rule["annotations"].keys(), name
        # fires somewhere, and stays silent somewhere (an unmatched series in the same case counts too)
        assert any(tested.get(name, [])), f"{name}: no promtool test expects it to fire"


def _threshold(alert: str) -> float:
    return float(re.search(r"(?:>|>=)\s*([0-9.]+)\s*$", _alerts()[alert]["expr"].strip()).group(1))


def test_staleness_threshold_is_the_champion_freshness_fail_window() -> None:
    from churn_assets.definitions import build_definitions
    from churn_assets.settings import Settings
    from churn_assets.training.keys import CHAMPION_MODEL

    spec = next(s for s in build_definitions(Settings()).resolve_all_asset_specs() if s.key == CHAMPION_MODEL)
    window = spec.freshness_policy.fail_window
    assert _threshold("ServedModelStale") == window.to_timedelta().total_seconds()
    assert window.to_timedelta() == timedelta(days=30)


def test_drift_threshold_is_the_drift_assets_threshold() -> None:
    assert _threshold("DriftShareOverThreshold") == DriftConfig().drift_share_threshold


PROMQL_WORDS = {
    "sum", "rate", "increase", "max", "min", "avg", "by", "without", "on", "unless", "and", "or", "time",
    "abs", "histogram_quantile", "le", "count", "irate", "delta",
}  # fmt: skip


def _names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", "", expr)
    return {n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if n not in PROMQL_WORDS} - {
        "endpoint", "status", "decision", "alias", "instance", "version", "asset"
    }  # fmt: skip


def _exported() -> set[str]:
    from serving import metrics

    served = set()
    for value in vars(metrics).values():
        if hasattr(value, "_type") and hasattr(value, "_name"):
            base = value._name
            served |= {base, f"{base}_total"} if value._type == "counter" else {base}
            if value._type == "histogram":
                served |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    pipeline = set(re.findall(r'"(churn_pipeline_[a-z_]+)"', Path(exporter.__file__).read_text()))
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    return served | pipeline | recorded | {"up"}


def _panels(panels: list[dict]) -> list[dict]:
    return [p for panel in panels for p in [panel, *_panels(panel.get("panels", []))]]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_use_only_exported_metrics(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    panels = _panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    exported = _exported()
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        assert _names(expr) <= exported, expr
    for p in panels:
        assert p["datasource"]["uid"] == "churn-prometheus"
