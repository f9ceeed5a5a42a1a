"""A scoring request's body, from bytes to records: every failure a `Refused` with a 4xx and a message.

Parsed in the model workers (the API servers pass the bytes through untouched): JSON with duplicate keys
refused (422 naming row and field), nesting that would exhaust the parser refused, `text/csv` read record
by record as a CSV reader does (quoted newlines are data; any line ending), a repeated header column
refused, and a row with more or fewer fields than the header refused by its number — never padded with
blanks.
"""

import csv
import io
import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from churn_assets.ingest.schema import LABEL_COLUMN


class Refused(Exception):
    """A request answered here, before it reaches the application."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def body(self) -> dict[str, Any]:
        if self.details is None:
            return {"detail": self.message}
        return {"detail": self.details, "message": self.message}

    def response(self) -> JSONResponse:
        # After a refused body the rest of it may still be on the wire: do not keep that connection.
        headers = {"connection": "close"} if self.status in (408, 413) else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def parse_body(body: bytes, content_type: str) -> Any:
    """The JSON value or the CSV records of a body the edge accepted (`application/json` or `text/csv`)."""
    if content_type != "text/csv" and (payload := _plain_json(body)) is not _NOT_PLAIN:
        return payload
    try:
        text = body.decode("utf-8-sig" if content_type == "text/csv" else "utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"unreadable {content_type} body: not UTF-8 (byte {exc.start})") from exc
    return csv_records(text) if content_type == "text/csv" else json_payload(text)


class _Record(dict):
    """A JSON object, remembering the keys it held more than once."""

    repeated: tuple[str, ...] = ()


def printable(text: str) -> str:
    """`text` safe to put in a JSON answer: lone surrogates (valid in JSON escapes, not in UTF-8) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _object(pairs: list[tuple[str, Any]]) -> _Record:
    record = _Record(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        record.repeated = tuple(repeated)
    return record


def json_payload(text: str) -> Any:
    """The JSON body, or Refused(422) for invalid JSON, nesting too deep to parse, or a repeated key."""
    try:
        payload = json.loads(text, object_pairs_hook=_object)
    except RecursionError as exc:
        raise _invalid("body is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise _invalid(f"body is not valid JSON ({exc})") from exc
    rows = enumerate(payload) if isinstance(payload, list) else [(None, payload)]
    errors = [
        {
            "loc": ["body", *([] if row is None else [row]), printable(key)],
            "msg": f"key '{printable(key)}' appears more than once",
            "type": "duplicate_key",
        }
        for row, record in rows
        if isinstance(record, _Record)
        for key in record.repeated
    ]
    if errors:
        raise Refused(422, "; ".join(describe(e) for e in errors[:10]), errors)
    return payload


def _invalid(message: str) -> Refused:
    return Refused(422, message, [{"loc": ["body"], "msg": message, "type": "json_invalid"}])


_NOT_PLAIN = object()


def _plain_json(body: bytes) -> Any:
    """The body parsed by orjson (~3x faster than `json`), when it provably repeats no key; else _NOT_PLAIN.

    orjson keeps the last of repeated keys without saying so. Without a backslash in the body no string
    holds a quote, so the body has two quotes per key and per string value; re-encoding the parsed value
    gives two per *distinct* key and per string value. The counts are equal exactly when no object repeats
    a key. Anything else (escapes, invalid JSON, nesting orjson refuses) goes to the exact parser.
    """
    if b"\\" in body:
        return _NOT_PLAIN
    try:
        payload = orjson.loads(body)
        encoded = orjson.dumps(payload)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # e.g. nesting deeper than orjson encodes
        return _NOT_PLAIN
    return payload if encoded.count(b'"') == body.count(b'"') else _NOT_PLAIN


def csv_records(text: str) -> list[dict[str, str]]:
    """Rows of a CSV export with the data set's header; the label column, if present, is dropped.

    Read as ingestion reads a landed file: records (newline="": quoted newlines are data; \\n, \\r\\n and
    \\r end a record), strict quoting, header names without surrounding spaces, blank records skipped. A
    repeated header column is a 422; a record with more or fewer fields than the header (rows count
    records from 0, the header not counted), or text the reader cannot parse, is a 400 naming it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # A blank record (an empty or whitespace-only line) is not a row, as in ingestion.
    records = (fields for fields in reader if len(fields) > 1 or (fields and fields[0].strip()))
    try:
        header = [h.strip(" ") for h in next(records, [])]
        if not header:
            raise Refused(400, "unreadable text/csv body: it is empty")
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            errors = [
                {
                    "loc": ["body", c],
                    "msg": "column appears more than once in the header",
                    "type": "duplicate_key",
                }
                for c in repeated
            ]
            raise Refused(422, f"CSV header repeats columns {repeated}", errors)
        rows = []
        for row, fields in enumerate(records):
            if len(fields) != len(header):
                raise Refused(
                    400,
                    f"unreadable text/csv body: row {row} has {len(fields)} fields, the header has {len(header)}",
                )
            record = dict(zip(header, fields, strict=True))
            record.pop(LABEL_COLUMN, None)
            rows.append(record)
    except csv.Error as exc:
        raise Refused(400, f"unreadable text/csv body: line {reader.line_num}: {exc}") from exc
    return rows


def describe(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"body is not valid JSON ({error.get('msg')})"
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if loc and loc[0].isdigit():
        where = f"row {loc[0]}" + (f", field {'.'.join(loc[1:])}" if len(loc) > 1 else "")
    else:
        where = f"field {'.'.join(loc)}" if loc else "body"
    return f"{where}: {error.get('msg')}"


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` → `application/json`."""
    return content_type.split(";")[0].strip().lower()
