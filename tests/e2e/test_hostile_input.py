"""What an outside tester sent, as regression tests: each input gets a correct answer or a 4xx naming the
problem — never a silent wrong score, never a 5xx, never a body read before the key is checked."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Installation
from tests.e2e.conftest import Server, running_server

CSV = {"content-type": "text/csv"}
JSON = {"content-type": "application/json"}
ENDPOINTS = ["/predict", "/predict?explain=true", "/batch-predict", "/batch-predict?explain=true"]


def _by_id(csv_records: list[dict[str, str]], customer_id: str) -> dict[str, str]:
    return next(r for r in csv_records if r["customerID"] == customer_id)


def _csv(records: list[dict[str, str]], drop: str | None = None) -> str:
    header = [k for k in records[0] if k != drop]
    return "\n".join([",".join(header), *(",".join(r[k] for k in header) for r in records)]) + "\n"


# Customers whose score collapsed when TotalCharges was missing: 0.861 -> 0.002 and 0.76 -> 0.005.
CHURNERS = ["9305-CDSKC", "9237-HQITU"]


@pytest.mark.parametrize("customer_id", CHURNERS)
def test_a_record_without_total_charges_is_refused_not_scored_as_new(
    server: Server, csv_records, customer_id: str
) -> None:
    record = _by_id(csv_records, customer_id)
    omitted = {k: v for k, v in record.items() if k != "TotalCharges"}
    with server.client() as http:
        scored = http.post("/predict", json=record)
        assert scored.status_code == 200 and scored.json()["churn_probability"] > 0.5
        for body in (omitted, {**record, "TotalCharges": None}, {**record, "TotalCharges": " "}):
            response = http.post("/predict", json=body)
            assert response.status_code == 422, response.text
            assert "TotalCharges" in response.json()["message"]
        missing_column = http.post("/batch-predict", content=_csv([record], drop="TotalCharges"), headers=CSV)
        assert missing_column.status_code == 422
        assert "row 0, field TotalCharges" in missing_column.json()["message"]
        one_short = _csv([record]).rstrip("\n").rsplit(",", 1)[0]
        short = http.post("/batch-predict", content=one_short, headers=CSV)
        assert short.status_code == 400
        assert "row 0 has 19 fields, the header has 20" in short.json()["detail"]


def test_a_new_customer_may_still_have_a_blank_total(server: Server, csv_records) -> None:
    new_customer = next(r for r in csv_records if not r["TotalCharges"].strip())
    assert new_customer["tenure"] == "0"
    with server.client() as http:
        assert http.post("/predict", json=new_customer).status_code == 200
        assert http.post("/batch-predict", content=_csv([new_customer]), headers=CSV).status_code == 200


def test_duplicate_json_keys_are_refused_not_last_one_wins(server: Server, csv_records) -> None:
    record = json.dumps(csv_records[0])
    with server.client() as http:
        single = http.post("/predict", content=record[:-1] + ', "Contract": "Two year"}', headers=JSON)
        batch = http.post(
            "/batch-predict", content=f'[{record}, {record[:-1]}, "tenure": "70"}}]', headers=JSON
        )
    assert single.status_code == 422 and "field Contract" in single.json()["message"]
    assert batch.status_code == 422 and "row 1, field tenure" in batch.json()["message"]


def test_duplicate_csv_columns_are_refused(server: Server, csv_records) -> None:
    body = _csv(csv_records[:2]).splitlines()
    body = [body[0] + ",Contract", body[1] + ",Two year", body[2] + ",Two year"]
    with server.client() as http:
        response = http.post("/batch-predict", content="\n".join(body), headers=CSV)
    assert response.status_code == 422 and "Contract" in response.json()["message"]


@pytest.mark.parametrize("value", ["1_000", "1e3", "0x10", " 1 000"])
def test_numbers_only_in_the_data_sets_formats(server: Server, csv_records, value: str) -> None:
    with server.client() as http:
        response = http.post("/predict", json={**csv_records[0], "tenure": value})
    assert response.status_code == 422 and "tenure" in response.json()["message"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_deeply_nested_json_is_a_4xx(server: Server, endpoint: str) -> None:
    with server.client() as http:
        response = http.post(endpoint, content="[" * 10_000 + "]" * 10_000, headers=JSON)
    assert response.status_code == 422 and "nested too deeply" in response.json()["message"]


@pytest.mark.parametrize("field", ["tenure", "MonthlyCharges", "TotalCharges", "\\ud800"])
def test_a_lone_surrogate_anywhere_is_a_422(server: Server, csv_records, field: str) -> None:
    """Valid in a JSON escape, not in UTF-8: once echoed in an error message it made the answer a 500."""
    record = json.dumps(csv_records[0])
    body = (
        record[:-1] + f', "{field}": "\\ud800"}}'
        if field.startswith("\\")
        else record.replace(f'"{field}": "{csv_records[0][field]}"', f'"{field}": "\\ud800"')
    )
    with server.client() as http:
        response = http.post("/predict", content=body, headers=JSON)
        duplicated = http.post("/predict", content='{"\\ud800": 1, "\\ud800": 2}', headers=JSON)
    assert response.status_code == 422, response.text
    assert duplicated.status_code == 422, duplicated.text


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
def test_csv_with_any_line_ending_is_read_record_by_record(server: Server, csv_records, ending: str) -> None:
    records = csv_records[:5]
    with server.client() as http:
        as_json = http.post("/batch-predict", json=records).json()["predictions"]
        response = http.post("/batch-predict", content=_csv(records).replace("\n", ending), headers=CSV)
    assert response.status_code == 200, response.text
    assert [p["churn_probability"] for p in response.json()["predictions"]] == [
        p["churn_probability"] for p in as_json
    ]


@pytest.mark.parametrize("endpoint", ["/batch-predict", "/batch-predict?explain=true"])
def test_a_csv_field_over_the_reader_limit_is_a_400(server: Server, csv_records, endpoint: str) -> None:
    body = _csv(csv_records[:1]).replace(csv_records[0]["customerID"], "x" * 140_000)
    with server.client() as http:
        response = http.post(endpoint, content=body, headers=CSV)
    assert response.status_code == 400 and "field larger than field limit" in response.json()["detail"]


# A server with a key, a small body limit and short timeouts: the limits, without waiting long for them.
LIMITS = {
    "CHURN_API_KEY": "s3cret-key",
    "CHURN_SERVE_WORKERS": "1",
    "CHURN_MAX_BODY_BYTES": "200000",
    "CHURN_HEADER_TIMEOUT_S": "1",
    "CHURN_BODY_TIMEOUT_S": "1",
}
KEY = {"X-API-Key": "s3cret-key"}


@pytest.fixture(scope="module")
def limited(materialized: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(materialized.settings.home, tmp_path_factory.mktemp("limited"), **LIMITS) as running:
        yield running


def test_no_body_is_read_before_the_key_is_checked(limited: Server) -> None:
    huge = b"a" * 50_000_000
    with limited.client() as http:
        for endpoint in ENDPOINTS:
            started = time.perf_counter()
            response = http.post(endpoint, content=huge, headers=CSV)
            assert response.status_code == 401, endpoint
            assert time.perf_counter() - started < 5
            deep = http.post(endpoint, content="[" * 10_000 + "]" * 10_000, headers=JSON)
            assert deep.status_code == 401, endpoint


def test_a_body_over_the_limit_is_refused_before_parsing(limited: Server) -> None:
    with limited.client(headers=KEY) as http:
        declared = http.post("/batch-predict", content=b"a" * 50_000_000, headers=CSV)
        assert declared.status_code == 413 and "200000 bytes" in declared.json()["detail"]
        chunks = (b"a" * 65_536 for _ in range(100))  # no Content-Length: counted while reading
        streamed = http.post("/batch-predict", content=chunks, headers=CSV)
        assert streamed.status_code == 413
        assert http.get("/health").status_code == 200


def _raw_exchange(server: Server, request: bytes, wait_s: float = 15) -> tuple[bytes, float]:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as conn:
        started = time.perf_counter()
        conn.sendall(request)
        answer = conn.recv(4096)
        return answer, time.perf_counter() - started


def test_a_body_shorter_than_its_content_length_times_out(limited: Server) -> None:
    answer, waited = _raw_exchange(
        limited,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert waited < 10


def test_a_trickled_body_times_out_and_the_connection_closes(limited: Server) -> None:
    host, port = limited.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        started = time.perf_counter()
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        answer = b""
        for _ in range(20):  # one byte every 0.3 s: each read is quick, the whole body never comes
            try:
                conn.sendall(b" ")
            except OSError:
                break
            conn.settimeout(0.3)
            try:
                answer += conn.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
        waited = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()
    assert waited < 5


def test_stalled_request_headers_time_out(limited: Server) -> None:
    answer, waited = _raw_exchange(limited, b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert waited < 10
    with limited.client() as http:  # the server is still fine
        assert http.get("/health").status_code == 200


def test_model_info_needs_the_key_and_shows_no_host_paths(limited: Server) -> None:
    with limited.client() as http:
        assert http.get("/model-info").status_code == 401
        info = http.get("/model-info", headers=KEY)
        health = http.get("/health")
    assert info.status_code == 200 and info.json()["version"]
    for text in (info.text, health.text):
        assert str(limited.home) not in text and "/tmp" not in text


def test_the_prediction_log_is_owner_only(server: Server, csv_records) -> None:
    with server.client() as http:
        assert http.post("/predict", json=csv_records[1]).status_code == 200
    folder = server.home / "serving" / "predictions"
    deadline = time.monotonic() + 15
    while not list(folder.glob("date=*/part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.25)
    written = [p for p in folder.rglob("*") if not p.name.startswith(".")]
    assert written
    for path in written:
        assert path.stat().st_mode & 0o077 == 0, f"{path.relative_to(folder)} is readable by others"
