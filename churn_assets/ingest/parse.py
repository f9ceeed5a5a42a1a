"""Parse and validate one landed CSV batch without losing a row.

Every data line ends up either accepted (its text kept exactly as landed) or rejected with its line
number, raw text and every reason it failed; a file that is not a Telco customer CSV at all is
refused as a whole by :class:`FileRejected`. Validation is vectorised in polars; only the split of a
line into fields uses the standard ``csv`` module, so the raw text of each line stays at hand.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from churn_assets.ingest.schema import (
    BLANK_ALLOWED,
    CATEGORIES,
    COLUMNS,
    DECIMAL_COLUMNS,
    ID_COLUMN,
    INTEGER_COLUMNS,
)

ROW_NUMBER = "_row_number"
RAW_LINE = "raw_line"
REASON = "reason"

_INTEGER = r"^[0-9]+$"
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


class FileRejected(ValueError):
    """The file as a whole is not a batch of Telco customer records."""


@dataclass(frozen=True)
class ParsedBatch:
    source_file: str
    sha256: str
    rows_in_file: int
    accepted: pl.DataFrame  # COLUMNS as landed text + _row_number
    rejected: pl.DataFrame  # _row_number, raw_line, reason

    @property
    def batch_id(self) -> str:
        return self.sha256[:16]


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_batch(path: Path) -> ParsedBatch:
    """Read ``path`` and split its data lines into accepted and rejected rows."""
    data = path.read_bytes()
    sha = file_sha256(data)
    lines = _decode(path.name, data).splitlines()
    order = _column_order(path.name, lines[0])

    records: list[list[str]] = []
    malformed: list[tuple[int, str, str]] = []
    for line_number, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line]), [])
        if len(fields) != len(COLUMNS):
            malformed.append((line_number, line, f"expected {len(COLUMNS)} fields, found {len(fields)}"))
        else:
            records.append([str(line_number), line, *(fields[i] for i in order)])

    frame = pl.DataFrame(
        records,
        schema={ROW_NUMBER: pl.String, RAW_LINE: pl.String, **dict.fromkeys(COLUMNS, pl.String)},
        orient="row",
    ).with_columns(pl.col(ROW_NUMBER).cast(pl.Int64))
    checked = frame.with_columns(_reasons().alias(REASON))

    accepted = checked.filter(pl.col(REASON) == "").select(*COLUMNS, ROW_NUMBER)
    rejected = pl.concat(
        [
            checked.filter(pl.col(REASON) != "").select(ROW_NUMBER, RAW_LINE, REASON),
            pl.DataFrame(malformed, schema=[ROW_NUMBER, RAW_LINE, REASON], orient="row"),
        ]
    ).sort(ROW_NUMBER)
    return ParsedBatch(path.name, sha, len(lines) - 1, accepted, rejected)


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"{name}: not UTF-8 text (byte {exc.start}), so not a CSV batch") from exc
    if not text.strip():
        raise FileRejected(f"{name}: the file is empty")
    return text


def _column_order(name: str, header_line: str) -> list[int]:
    """Index of each expected column in the file's header; columns may come in any order."""
    header = [h.strip() for h in next(csv.reader([header_line]), [])]
    missing = [c for c in COLUMNS if c not in header]
    unexpected = [h for h in header if h not in COLUMNS]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if missing or unexpected or duplicated:
        problems = []
        if missing:
            problems.append(f"missing columns {missing}")
        if unexpected:
            problems.append(f"unexpected columns {unexpected[:5]}")
        if duplicated:
            problems.append(f"repeated columns {duplicated}")
        raise FileRejected(f"{name}: not a Telco customer CSV: header has {'; '.join(problems)}")
    return [header.index(c) for c in COLUMNS]


def _reasons() -> pl.Expr:
    """'; '-joined reasons a well-formed row is invalid, or '' when it is valid."""
    checks: list[pl.Expr] = []

    def flag(bad: pl.Expr, column: str, what: str) -> None:
        checks.append(pl.when(bad).then(pl.format(f"{column}: {what} '{{}}'", pl.col(column))))

    value = {c: pl.col(c).str.strip_chars() for c in COLUMNS}
    checks.append(pl.when(value[ID_COLUMN] == "").then(pl.lit(f"{ID_COLUMN}: empty")))
    for column, allowed in CATEGORIES.items():
        flag(~value[column].is_in(list(allowed)), column, "unknown value")
    for column in INTEGER_COLUMNS:
        flag(~value[column].str.contains(_INTEGER), column, "not a whole number")
    for column in DECIMAL_COLUMNS:
        bad = ~value[column].str.contains(_DECIMAL)
        if column in BLANK_ALLOWED:
            bad = bad & (value[column] != "")
        flag(bad, column, "not a non-negative number")
    first_row = pl.col(ROW_NUMBER).min().over(value[ID_COLUMN])
    checks.append(
        pl.when((value[ID_COLUMN] != "") & (pl.col(ROW_NUMBER) != first_row)).then(
            pl.format(f"{ID_COLUMN}: duplicate of line {{}} in this file", first_row)
        )
    )
    return pl.concat_list(checks).list.drop_nulls().list.join("; ")
