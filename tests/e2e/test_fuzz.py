"""Generated hostile bodies against a real server: CSV with any encoding, line ending, stray character or
truncation; JSON of any shape and depth; records with any value in any field. Whatever is sent, the
answer is a 2xx or a 4xx with a message — never a 5xx. (The OpenAPI-driven run is test_schemathesis.py.)

Derandomized: the same examples on every run, so a failure in CI reproduces locally.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Server

ENDPOINTS = ["/predict", "/predict?explain=true", "/batch-predict", "/batch-predict?explain=true"]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Characters that break naive parsers: quotes, separators, line breaks of every kind, NUL, BOM, surrogates.
NASTY = st.sampled_from(
    [
        '"',
        ",",
        "\n",
        "\r",
        "\r\n",
        "\x00",
        "\u2028",
        "\u2029",
        "\x85",
        "\x0c",
        "\x1e",
        "\ufeff",
        "\\",
        "'",
        " ",
    ]
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _assert_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.json()["detail"], response.text[:500]


@pytest.fixture(scope="module")
def csv_text(csv_records) -> str:
    rows = csv_records[:6]
    header = list(rows[0])
    return "\n".join([",".join(header), *(",".join(r[k] for k in header) for r in rows)]) + "\n"


@FUZZ
@given(data=st.data())
def test_generated_csv_bodies_get_no_5xx(server: Server, csv_text: str, data: st.DataObject) -> None:
    text = csv_text.replace("\n", data.draw(st.sampled_from(["\n", "\r\n", "\r"]), label="ending"))
    for _ in range(data.draw(st.integers(0, 4), label="insertions")):
        at = data.draw(st.integers(0, len(text)), label="at")
        text = text[:at] + data.draw(NASTY | st.text(max_size=3), label="inserted") + text[at:]
    if data.draw(st.booleans(), label="truncate"):
        text = text[: data.draw(st.integers(0, len(text)), label="cut")]
    if data.draw(st.integers(0, 9), label="big") == 0:
        text = text.replace(",", "," + "x" * 140_000, 1)
    body = text.encode(data.draw(ENCODINGS, label="encoding"), errors="replace")
    endpoint = data.draw(st.sampled_from(ENDPOINTS[2:]), label="endpoint")
    with server.client() as http:
        _assert_answered(http.post(endpoint, content=body, headers={"content-type": "text/csv"}))


@FUZZ
@given(
    payload=JSON_VALUES,
    depth=st.sampled_from([0, 0, 1, 50, 999, 1_000, 5_000, 50_000]),
    endpoint=st.sampled_from(ENDPOINTS),
)
def test_generated_json_bodies_get_no_5xx(server: Server, payload, depth: int, endpoint: str) -> None:
    body = "[" * depth + json.dumps(payload) + "]" * depth
    with server.client() as http:
        _assert_answered(http.post(endpoint, content=body, headers={"content-type": "application/json"}))


@FUZZ
@given(data=st.data())
def test_records_with_any_value_in_any_field_get_no_5xx(
    server: Server, csv_records, data: st.DataObject
) -> None:
    record = dict(data.draw(st.sampled_from(csv_records[:50]), label="record"))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        field = data.draw(st.sampled_from([*record, "explain", "extra"]), label="field")
        if data.draw(st.booleans(), label="drop"):
            record.pop(field, None)
        else:
            record[field] = data.draw(JSON_VALUES | NASTY, label="value")
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    body = record if endpoint.startswith("/predict") else [record]
    raw = json.dumps(body, allow_nan=True)
    with server.client() as http:
        _assert_answered(http.post(endpoint, content=raw, headers={"content-type": "application/json"}))
