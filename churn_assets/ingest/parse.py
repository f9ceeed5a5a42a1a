"""Parse and validate one landed CSV batch without losing a record.

Records are read the way a CSV reader reads them (RFC 4180, Python's ``csv`` module in strict mode):

* A record ends at ``\\n``, ``\\r\\n`` or ``\\r`` outside quotes, and only there. A quoted field may
  hold those line breaks as data, so one record can span several physical lines. Other characters
  that ``str.splitlines`` treats as line breaks (``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``,
  U+2028, U+2029) never end a record: they are data of the field they are in.
* Every record after the header ends up either accepted (its fields kept exactly as landed) or
  rejected with its row number, its raw text (every physical line of it, without the final line
  break) and every reason it failed. ``rows_in_file`` is the number of records read (counted apart
  from the split), so it equals accepted + rejected.
* ``_row_number`` is the number of the physical line a record starts on, counting the file's first
  line as 1 (so the first record under a header on line 1 is row 2). A record that spans lines 5-7
  is row 5; the next record is row 8.
* A blank record (empty, or only whitespace as ``str.strip`` sees it) is not a row: it is neither
  accepted, rejected nor counted, wherever it is. Blank lines before the header are skipped too.
* A record the ``csv`` module cannot read (a field over ``csv.field_size_limit()``, a character
  after a closing quote, a quote left open at the end of the file) is rejected with the reason
  ``not valid CSV: ...``; reading goes on at the next physical line. If such a record spans more
  than one physical line, a quote was left open, so where the following records begin is unknown:
  the whole file is refused instead.

Validation (vectorised in polars) compares each value with surrounding spaces removed, as the dbt
staging model's ``trim`` does, and nothing else: a tab, a control character or a line separator
makes a category or a number invalid. ``customerID`` is free text but a key, so one containing a
control character (Unicode category Cc, e.g. ``\\x00``, ``\\x0c``, ``\\x1e``, ``\\x85``) or a line or
paragraph separator (U+2028, U+2029) is rejected. Values quoted in reasons show those characters
escaped (``'7590\\u2028VHVEG'``); the raw text keeps them as landed. ``TotalCharges`` may be blank
only when ``tenure`` is :data:`~churn_assets.ingest.schema.BLANK_TOTAL_CHARGES_TENURE` (0).

A file that is not a batch of Telco customer records at all (not UTF-8, empty, a wrong header,
a header and no records, an open quote running over lines) is refused as a whole by
:class:`FileRejected`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from churn_assets.ingest.schema import (
    AMOUNT_PATTERN,
    BLANK_ALLOWED,
    BLANK_TOTAL_CHARGES_TENURE,
    CATEGORIES,
    COLUMNS,
    DECIMAL_COLUMNS,
    ID_COLUMN,
    ID_FORBIDDEN_CHARACTERS,
    ID_MAX_LENGTH,
    INTEGER_COLUMNS,
    RANGES,
    WHOLE_NUMBER_PATTERN,
)

ROW_NUMBER = "_row_number"
RAW_LINE = "raw_line"
REASON = "reason"

_END_LINE = "_end_line"  # number of the physical line after the record (0-based end of its span)
_FIRST_ROW = "_first_row"  # row number of the first record with the same customerID

_UNSAFE_IN_ID = f"[{ID_FORBIDDEN_CHARACTERS}]"
# Every character _UNSAFE_IN_ID matches, and how a reason shows it (as Python's repr does).
_ESCAPES = {ch: repr(ch)[1:-1] for ch in map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029])}


class FileRejected(ValueError):
    """The file as a whole is not a batch of Telco customer records."""


@dataclass(frozen=True)
class ParsedBatch:
    source_file: str
    sha256: str
    rows_in_file: int  # records after the header, blank ones not counted: accepted + rejected
    accepted: pl.DataFrame  # COLUMNS as landed text + _row_number
    rejected: pl.DataFrame  # _row_number, raw_line (the record's raw text), reason

    @property
    def batch_id(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True)
class _Records:
    """The records under the header: the well-formed ones field by field, the others as rejects."""

    fields: list[str]  # every field of every well-formed record, record after record, file order
    firsts: list[int]  # index of the first physical line of each well-formed record
    ends: list[int]  # index of the physical line after each well-formed record
    malformed: list[tuple[int, str, str]]  # (_row_number, raw text, reason)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_batch(path: Path) -> ParsedBatch:
    """Read ``path`` and split its records into accepted and rejected rows."""
    data = path.read_bytes()
    sha = file_sha256(data)
    lines = physical_lines(_decode(path.name, data))
    reader = csv.reader(lines, strict=True)
    order = _column_order(path.name, _header(path.name, reader, lines))
    records = _read_records(path.name, reader, lines, width=len(order))
    rows_in_file = len(records.firsts) + len(records.malformed)  # counted apart from the split below
    if not rows_in_file:
        raise FileRejected(f"{path.name}: header only, no records")

    frame = _frame(records, order)
    bad = frame.select(pl.any_horizontal(*(is_bad for is_bad, _ in _checks())).alias("bad"))["bad"]
    accepted = frame.filter(~bad).select(*COLUMNS, ROW_NUMBER)
    invalid = frame.filter(bad)
    raw = [raw_text(lines, first - 1, end) for first, end in invalid.select(ROW_NUMBER, _END_LINE).rows()]
    rejected = pl.concat(
        [
            invalid.select(ROW_NUMBER, pl.Series(RAW_LINE, raw, pl.String), _reasons().alias(REASON)),
            pl.DataFrame(
                records.malformed,
                schema={ROW_NUMBER: pl.Int64, RAW_LINE: pl.String, REASON: pl.String},
                orient="row",
            ),
        ]
    ).sort(ROW_NUMBER)
    return ParsedBatch(path.name, sha, rows_in_file, accepted, rejected)


def physical_lines(text: str) -> list[str]:
    """``text`` cut after each ``\\n``, ``\\r\\n`` or ``\\r``, line breaks kept; no other character cuts."""
    return io.StringIO(text, newline="").readlines()


def raw_text(lines: list[str], first: int, end: int) -> str:
    """The text of physical lines ``first`` up to (not including) ``end``, without the last line break."""
    text = "".join(lines[first:end])
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"{name}: not UTF-8 text (byte {exc.start}), so not a CSV batch") from exc
    if not text.strip():
        raise FileRejected(f"{name}: the file is empty")
    return text


def _header(name: str, reader, lines: list[str]) -> list[str]:
    """The first record that is not blank; the reader is left at the record after it."""
    first = reader.line_num
    try:
        for record in reader:
            if len(record) > 1 or not _is_blank(lines, first, reader.line_num):
                return record
            first = reader.line_num
    except csv.Error as exc:
        raise FileRejected(f"{name}: the header is not valid CSV: {exc}") from exc
    raise FileRejected(f"{name}: the file is empty")  # unreachable: _decode refused blank text


def _is_blank(lines: list[str], first: int, end: int) -> bool:
    return not raw_text(lines, first, end).strip()


def _read_records(name: str, reader, lines: list[str], width: int) -> _Records:
    """Every record the reader has left: well-formed (``width`` fields), malformed, or blank (dropped).

    This is the only per-record Python loop, so it does as little as it can: the ``csv`` module
    splits records, ``reader.line_num`` tells which physical lines each one took.
    """
    fields: list[str] = []
    firsts: list[int] = []
    ends: list[int] = []
    malformed: list[tuple[int, str, str]] = []
    first = reader.line_num
    while True:
        try:
            for record in reader:
                end = reader.line_num
                if len(record) == width:
                    fields.extend(record)
                    firsts.append(first)
                    ends.append(end)
                elif not _is_blank(lines, first, end):
                    reason = f"expected {width} fields, found {len(record)}"
                    malformed.append((first + 1, raw_text(lines, first, end), reason))
                first = end
            return _Records(fields, firsts, ends, malformed)
        except csv.Error as exc:
            end = reader.line_num
            if end - first > 1:
                raise FileRejected(
                    f"{name}: not valid CSV: {exc} in the record starting on line {first + 1}, which "
                    f"runs over {end - first} lines (a quote left open?), so where the records after "
                    "it begin is unknown"
                ) from exc
            malformed.append((first + 1, raw_text(lines, first, end), f"not valid CSV: {exc}"))
            first = end


def _column_order(name: str, header_fields: list[str]) -> list[int]:
    """Index of each expected column in the file's header; columns may come in any order."""
    header = [h.strip() for h in header_fields]
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


def _frame(records: _Records, order: list[int]) -> pl.DataFrame:
    """The well-formed records as text columns named COLUMNS, with row number and span end."""
    width = len(order)
    return pl.DataFrame(
        [
            *(pl.Series(c, records.fields[i::width], pl.String) for c, i in zip(COLUMNS, order, strict=True)),
            pl.Series(ROW_NUMBER, records.firsts, pl.Int64) + 1,
            pl.Series(_END_LINE, records.ends, pl.Int64),
        ]
    ).with_columns(pl.col(ROW_NUMBER).min().over(_value(ID_COLUMN)).alias(_FIRST_ROW))


def _value(column: str) -> pl.Expr:
    """The value as the staging model reads it: surrounding spaces (only spaces) removed."""
    return pl.col(column).str.strip_chars(" ")


def _shown(column: str) -> pl.Expr:
    """The value as landed, control characters and line separators escaped, for a reason text."""
    return pl.col(column).str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))


def _checks() -> list[tuple[pl.Expr, pl.Expr]]:
    """Every rule a well-formed row must pass, as (row breaks it, reason text), in reporting order."""
    checks: list[tuple[pl.Expr, pl.Expr]] = []

    def flag(bad: pl.Expr, column: str, what: str) -> None:
        checks.append((bad, pl.format(f"{column}: {what} '{{}}'", _shown(column))))

    value = {c: _value(c) for c in COLUMNS}
    checks.append((value[ID_COLUMN] == "", pl.lit(f"{ID_COLUMN}: empty")))
    flag(
        pl.col(ID_COLUMN).str.contains(_UNSAFE_IN_ID),
        ID_COLUMN,
        "contains a control or line-separator character",
    )
    flag(
        value[ID_COLUMN].str.len_chars() > ID_MAX_LENGTH, ID_COLUMN, f"longer than {ID_MAX_LENGTH} characters"
    )
    for column, allowed in CATEGORIES.items():
        flag(~value[column].is_in(list(allowed)), column, "unknown value")
    for column in INTEGER_COLUMNS:
        flag(~value[column].str.contains(WHOLE_NUMBER_PATTERN), column, "not a whole number")
    for column in DECIMAL_COLUMNS:
        bad = ~value[column].str.contains(AMOUNT_PATTERN)
        if column in BLANK_ALLOWED:
            bad = bad & (value[column] != "")
        flag(bad, column, "not a non-negative number")
    for column, (low, high) in RANGES.items():
        # Only values in the data set's formats (the format checks flag the rest): null otherwise.
        number = pl.when(value[column].str.contains(AMOUNT_PATTERN)).then(
            value[column].cast(pl.Float64, strict=False)
        )
        flag(((number < low) | (number > high)).fill_null(False), column, f"outside {low} to {high}")
    checks.append(_blank_total_charges_check(value["TotalCharges"], value["tenure"]))
    checks.append(
        (
            (value[ID_COLUMN] != "") & (pl.col(ROW_NUMBER) != pl.col(_FIRST_ROW)),
            pl.format(f"{ID_COLUMN}: duplicate of line {{}} in this file", pl.col(_FIRST_ROW)),
        )
    )
    return checks


def _blank_total_charges_check(total_charges: pl.Expr, tenure: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A blank TotalCharges is plausible only for a customer who has not been billed yet."""
    first_month = (tenure.cast(pl.Int64, strict=False) == BLANK_TOTAL_CHARGES_TENURE).fill_null(False)
    reason = pl.format(
        f"TotalCharges: blank, but tenure is '{{}}' (blank only when tenure is {BLANK_TOTAL_CHARGES_TENURE})",
        _shown("tenure"),
    )
    return (total_charges == "") & ~first_month, reason


def _reasons() -> pl.Expr:
    """'; '-joined reasons a well-formed row is invalid ('' when it is valid)."""
    return (
        pl.concat_list([pl.when(bad).then(reason) for bad, reason in _checks()])
        .list.drop_nulls()
        .list.join("; ")
    )
