"""The closed loop with the real daemon, as a user runs it: `make run`, then only `make ui` and `make serve`.

A concept-drift batch dropped into the landing directory is ingested, drift-checked, trained on, decided on
and served without anyone touching Dagster; a garbage file and a duplicate change no model; a rollback moves
the alias back and the server follows; the Dagster UI shows the lineage, the automation and the decision.
One installation for the module (its `make run` alone takes minutes); each test checks one promise.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.loop_driver import REPO_ROOT, Loop
from churn_assets.definitions import build_definitions
from churn_assets.ml.champion import MODEL_NAME
from churn_assets.settings import Settings
from churn_assets.training.keys import PROMOTION_DECISION
from tests.e2e.dagster_ui import dagster_ui

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
DRIFTED_ROWS = 3000  # two of the benchmark's batches' worth: a win beyond noise on the mixed test rows


@pytest.fixture(scope="module")
def record(real_csv: Path) -> dict[str, str]:
    with real_csv.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    row.pop("Churn")
    return row


@pytest.fixture(scope="module")
def loop(real_csv: Path, tmp_path_factory: pytest.TempPathFactory, record) -> Iterator[Loop]:
    base = tmp_path_factory.mktemp("closed-loop")
    (base / "logs").mkdir()
    loop = Loop(home=base / "home", logs=base / "logs", source_csv=real_csv)
    try:
        loop.make("run")
        loop.start("ui")
        loop.start("serve")
        loop.wait_for("the Dagster UI", loop.ui_ready, 300)
        loop.wait_for("the server to answer", lambda: loop.served_version(record), 300)
        yield loop
    finally:
        loop.stop()


@pytest.fixture(scope="module")
def promoted(loop: Loop, record) -> dict:
    """Land a concept-drift batch and wait until the decision is recorded (and served, if promoted)."""
    before = loop.served_version(record)
    path = loop.simulate("fiber_growth", DRIFTED_ROWS, 21)
    dropped = path.stat().st_mtime
    with loop.instance() as instance:
        decision = loop.wait_for(
            "the promotion decision on the drifted batch",
            lambda: loop.materialized_after(instance, PROMOTION_DECISION, dropped),
            900,
            every_s=2,
        )
        meta = {k: v.value for k, v in decision.asset_materialization.metadata.items()}
    if meta["outcome"] != "promoted":
        return {"before": before, "after": before, "decision": meta, "file": path, "decided_s": 0.0}
    after = loop.wait_for(
        "the server to answer with the new champion",
        lambda: v if (v := loop.served_version(record)) != before else None,
        120,
        every_s=0.5,
    )
    return {
        "before": before,
        "after": after,
        "decision": meta,
        "file": path,
        "decided_s": decision.timestamp - dropped,
    }


def test_a_drifted_batch_reaches_a_served_better_model_with_no_human_action(promoted) -> None:
    decision = promoted["decision"]
    assert decision["outcome"] == "promoted", decision["reason"]
    assert decision["auc_gain_lower_bound"] > 0
    assert decision["challenger_roc_auc"] > decision["champion_roc_auc"] + decision["margin"]
    assert promoted["after"] == str(decision["version"]) != promoted["before"]
    print(f"\ndrop → decision {promoted['decided_s']:.0f} s: {decision['reason']}")


def test_garbage_and_a_duplicate_change_no_model(loop: Loop, promoted) -> None:
    for name, data, status in [
        ("garbage.csv", b"\x00\x01 not a csv \xff" * 4096, "rejected"),
        ("copy-of-drifted.csv", promoted["file"].read_bytes(), "duplicate"),
    ]:
        outcome = loop.refused_outcome(loop.land(name, data), watch_s=60)
        seen = (outcome["status"], outcome["training_snapshots"], outcome["candidates_trained"])
        assert seen == (status, 0, 0), outcome  # outcome names the runs that trained, if any
        assert outcome["new_versions"] == 0, outcome


def _churn(loop: Loop, *args: str) -> str:
    churn = Path(sys.executable).parent / "churn"
    done = subprocess.run([str(churn), *args], cwd=REPO_ROOT, env=loop.env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rollback_moves_the_alias_back_and_the_server_follows(loop: Loop, promoted, record) -> None:
    new, old = promoted["after"], promoted["before"]
    assert f"v{new} → v{old}" in _churn(loop, "model", "rollback", "--reason", "e2e rollback")
    loop.wait_for(
        "the server on the rolled-back version", lambda: loop.served_version(record) == old or None, 30
    )
    assert loop.registry().get_model_version(MODEL_NAME, old).tags["promotion_reason"] == "e2e rollback"

    assert f"v{old} → v{new}" in _churn(loop, "model", "promote", new, "--reason", "e2e promote back")
    loop.wait_for(
        "the server on the promoted version", lambda: loop.served_version(record) == new or None, 30
    )
    assert "history    1 → " in _churn(loop, "model", "status")


def test_the_dagster_ui_shows_the_lineage_the_automation_and_the_decision(loop: Loop, promoted) -> None:
    """Debian's chromium (Playwright) on the UI `make ui` started; screenshots land beside the test logs."""
    expected = {
        key.to_user_string()
        for key in build_definitions(Settings(home=loop.home)).resolve_asset_graph().get_all_asset_keys()
    }
    with dagster_ui(f"http://127.0.0.1:{loop.ui_port}", loop.logs / "screenshots") as ui:
        assert ui.dismiss_first_visit_dialog()  # a fresh CHURN_HOME: the community dialog is due
        assert ui.lineage_asset_keys() == expected
        sensors = ui.sensor_states()
        assert sensors["landing_sensor"] and sensors["data_automation"] and sensors["training_automation"], (
            sensors
        )
        decision = ui.latest_materialization_metadata(PROMOTION_DECISION.to_user_string())
    assert decision["outcome"] == promoted["decision"]["outcome"]
    assert decision["reason"] == promoted["decision"]["reason"]
    assert decision["version"] == str(promoted["decision"]["version"])
