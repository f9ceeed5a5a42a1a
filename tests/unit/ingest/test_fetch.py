from pathlib import Path

import pytest

from churn_assets.ingest.fetch import FetchError, land_dataset
from churn_assets.ingest.parse import file_sha256
from tests.csv_fixtures import GOOD_ROWS, write_csv

UNREACHABLE = "http://127.0.0.1:9/Telco-Customer-Churn.csv"  # discard port: connection refused at once


def test_local_copy_is_landed_once(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "src" / "Telco.csv", GOOD_ROWS)
    sha = file_sha256(source.read_bytes())
    first = land_dataset(tmp_path / "landing", source=source, url=UNREACHABLE, expected_sha256=sha)
    again = land_dataset(tmp_path / "landing", source=source, url=UNREACHABLE, expected_sha256=sha)
    assert first.path.read_bytes() == source.read_bytes()
    assert first.path.name.endswith("_Telco.csv")
    assert first.matches_public_file and not first.already_landed
    assert again.already_landed and again.path == first.path
    assert [p.name for p in (tmp_path / "landing").iterdir()] == [first.path.name]


def test_local_copy_with_other_content_is_landed_but_flagged(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "Telco.csv", GOOD_ROWS)
    landed = land_dataset(tmp_path / "landing", source=source, url=UNREACHABLE, expected_sha256="0" * 64)
    assert not landed.matches_public_file


def test_no_network_and_no_path_names_both_options(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as info:
        land_dataset(
            tmp_path / "landing", source=None, url=UNREACHABLE, expected_sha256="0" * 64, timeout_s=5
        )
    message = str(info.value)
    assert "--source PATH" in message and "CHURN_SOURCE_CSV" in message
    assert list((tmp_path / "landing").iterdir()) == []


def test_missing_source_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="not a file"):
        land_dataset(tmp_path / "landing", source=tmp_path / "nope.csv", url=UNREACHABLE, expected_sha256="")
