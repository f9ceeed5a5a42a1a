from pathlib import Path

import dagster as dg

from churn_assets.resources import StateDirs
from churn_assets.sensors import landing_sensor
from tests.csv_fixtures import GOOD_ROWS, write_csv


def _tick(landing: Path, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    state = StateDirs(landing_dir=str(landing), reports_dir=str(landing.parent / "reports"))
    context = dg.build_sensor_context(cursor=cursor, resources={"state": state})
    return landing_sensor(context)


def test_requests_one_run_per_new_landing_and_skips_when_nothing_changed(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "a.csv", GOOD_ROWS)
    first = _tick(landing, None)
    assert isinstance(first, dg.SensorResult)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["churn/landed_files"] == "a.csv"

    assert isinstance(_tick(landing, first.cursor), dg.SkipReason)

    write_csv(landing / "b.csv", GOOD_ROWS[:1])
    write_csv(landing / "c.csv.part", GOOD_ROWS[:1])  # still downloading: not yet
    second = _tick(landing, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert second.run_requests[0].tags["churn/landed_files"] == "b.csv"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
