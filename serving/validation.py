"""Validating a request's records column by column, against the landed-file contract.

A batch is checked as a whole: each column's values are tested together (a set of the values against the
category values, one pass of `int`/`float` over a column of numbers), and only a column that fails its
whole-column test is walked value by value to say which rows are wrong and why. Every error of every row
and field is found, each with its row index (batch) and field name, in one 422, as before.

The rules are the landed-file contract's (`churn_assets.ingest.schema`) and the same as the request model
`serving.schemas.CustomerRecord` (which documents them in the OpenAPI schema; a test proves the two accept
and refuse the same records): every field present and no other; category values exactly (after surrounding
spaces); `SeniorCitizen` 0/1 as text or integer; `tenure` a whole number as a JSON integer or digits;
charges as JSON numbers or the data set's amount text, finite and in range; `TotalCharges` blank or null
only for a customer with tenure 0; `customerID` 1-64 characters without control characters; `explain` a
JSON boolean.

The result holds each column as the text the CSV would hold (what the feature SQL reads): strings with
surrounding spaces removed, numbers written out, a blank `TotalCharges` as null.
"""

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from churn_assets.ingest.schema import (
    AMOUNT_PATTERN,
    BLANK_TOTAL_CHARGES_TENURE,
    CATEGORIES,
    ID_COLUMN,
    ID_FORBIDDEN_CHARACTERS,
    ID_MAX_LENGTH,
    RANGES,
    WHOLE_NUMBER_PATTERN,
    ColumnKind,
    column_kind,
)
from churn_assets.ml.pyfunc import RAW_COLUMNS
from serving.payload import Refused, describe, printable

EXPLAIN = "explain"
FIELDS = frozenset(RAW_COLUMNS)
FIELDS_AND_EXPLAIN = FIELDS | {EXPLAIN}
WHOLE_NUMBER, AMOUNT = re.compile(WHOLE_NUMBER_PATTERN), re.compile(AMOUNT_PATTERN)
FORBIDDEN_IN_ID = re.compile(f"[{ID_FORBIDDEN_CHARACTERS}]")
SHOWN_ERRORS = 10  # in the message; `detail` lists them all
AT_ONCE_FROM = 32  # rows: under it, testing text values one by one is cheaper than an Arrow kernel call
MISSING = object()  # a field the record does not have (reported once, as missing)


@dataclass(frozen=True)
class Batch:
    """Validated records, column by column, in request order."""

    columns: dict[str, list[str | None]]  # every raw column, as the CSV would hold it
    explain: list[bool]

    @property
    def size(self) -> int:
        return len(self.explain)

    @property
    def ids(self) -> list[str | None]:
        return self.columns[ID_COLUMN]

    def take(self, rows: Sequence[int]) -> "Batch":
        """The records at these positions, in this order."""
        pick = operator.itemgetter(*rows)
        if len(rows) == 1:
            return Batch({c: [pick(v)] for c, v in self.columns.items()}, [pick(self.explain)])
        return Batch({c: list(pick(v)) for c, v in self.columns.items()}, list(pick(self.explain)))


@dataclass(frozen=True)
class _Error:
    row: int
    field: str | None
    msg: str
    type: str


def validate(payload: Any, *, single: bool, limit: int) -> Batch:
    """The records of a parsed body as a Batch, or Refused: 422 naming every bad row and field, 413 over
    `limit` records. `single`: the body is one record (a JSON object), not a list of them."""
    records = _records(payload, single, limit)
    errors: list[_Error] = []
    given = _fields_at_once(records)
    if given is None:  # a record without all its fields, with others, or not an object: row by row
        fields_ok = [_check_fields(i, record, errors) for i, record in enumerate(records)]
        records = [record if isinstance(record, dict) else {} for record in records]
        given = {c: [record.get(c, MISSING) for record in records] for c in [*RAW_COLUMNS, EXPLAIN]}
        given[EXPLAIN] = [False if v is MISSING else v for v in given[EXPLAIN]]
    else:
        fields_ok = [True] * len(records)
    columns = {column: _CHECKS[column](given[column], column, errors) for column in RAW_COLUMNS}
    explain = _explain(given[EXPLAIN], errors)
    _blank_total_only_for_new_customers(columns, fields_ok, errors)
    if errors:
        raise _refusal(errors, single)
    return Batch(columns, explain)


def _records(payload: Any, single: bool, limit: int) -> list[Any]:
    if single:
        if not isinstance(payload, dict):
            raise _refusal([_Error(-1, None, "must be a JSON object: one record", "model_type")], True)
        return [payload]
    if not isinstance(payload, list):
        raise _refusal([_Error(-1, None, "must be a JSON list of records", "list_type")], True)
    if not payload:
        raise _refusal([_Error(-1, None, "must hold at least one record", "too_short")], True)
    if len(payload) > limit:
        raise Refused(413, f"batch over the limit of {limit} records; split it into smaller batches")
    return payload


def _fields_at_once(records: list[Any]) -> dict[str, list[Any]] | None:
    """Every column's values when every record is an object with exactly the raw fields; else None."""
    try:
        rows = list(map(_RAW_FIELDS, records))
        if max(map(len, records)) != len(RAW_COLUMNS):
            return None
    except (KeyError, TypeError):  # a field missing, a record that is not an object
        return None
    columns = dict(zip(RAW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    return columns | {EXPLAIN: [False] * len(records)}


def _check_fields(row: int, record: Any, errors: list[_Error]) -> bool:
    if not isinstance(record, dict):
        errors.append(_Error(row, None, "must be a JSON object with the record's fields", "model_type"))
        return False
    keys = record.keys()
    if keys in (FIELDS, FIELDS_AND_EXPLAIN):
        return True
    for field in RAW_COLUMNS:
        if field not in record:
            errors.append(_Error(row, field, "Field required", "missing"))
    for field in keys - FIELDS_AND_EXPLAIN:
        errors.append(_Error(row, field, "Extra inputs are not permitted", "extra_forbidden"))
    return False


Check = Callable[[list[Any], str, list[_Error]], list[str | None]]


def _walk(
    values: list[Any],
    column: str,
    errors: list[_Error],
    one: Callable[[Any], tuple[str | None, str | None, str]],
) -> list[str | None]:
    """Value by value: `one(value)` gives (text, None, "") or (None, message, error type)."""
    texts: list[str | None] = []
    for row, value in enumerate(values):
        if value is MISSING:  # already reported
            texts.append(None)
            continue
        text, message, kind = one(value)
        if message is not None:
            errors.append(_Error(row, column, message, kind))
        texts.append(text)
    return texts


def _text(value: Any) -> tuple[str | None, str | None]:
    """A JSON string that can be stored (no lone surrogates), without surrounding spaces."""
    if not isinstance(value, str):
        return None, f"must be text, got {_shown(value)}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None, f"must be valid text, got {_shown(value)} (a lone surrogate)"
    return value.strip(" "), None


def _category(values: list[Any], column: str, errors: list[_Error]) -> list[str | None]:
    allowed = CATEGORIES[column]
    try:
        if set(values) <= set(allowed):
            return values
    except TypeError:  # an unhashable value (a list, an object): found below
        pass

    def one(value: Any) -> tuple[str | None, str | None, str]:
        text, problem = _text(value)
        if text is None:
            return None, problem, "literal_error"
        if text not in allowed:
            return None, f"must be one of {list(allowed)}, got {_shown(value)}", "literal_error"
        return text, None, ""

    return _walk(values, column, errors, one)


def _whole_category(values: list[Any], column: str, errors: list[_Error]) -> list[str | None]:
    """A category whose values are whole numbers (SeniorCitizen's 0/1): the value as text or as an integer."""
    allowed = frozenset(CATEGORIES[column])

    def one(value: Any) -> tuple[str | None, str | None, str]:
        if isinstance(value, str) and value.strip(" ") in allowed:
            return value.strip(" "), None, ""
        if type(value) is int and str(value) in allowed:
            return str(value), None, ""
        return (
            None,
            f"must be one of {sorted(allowed)} (text or integer), got {_shown(value)}",
            "value_error",
        )

    types = {type(v) for v in values}
    if types == {str} and set(values) <= allowed:
        return values
    return _walk(values, column, errors, one)


def _in_range(column: str, number: float) -> str | None:
    low, high = RANGES[column]
    return None if low <= number <= high else f"must be between {low} and {high}, got {number:g}"


def _whole_number(values: list[Any], column: str, errors: list[_Error]) -> list[str | None]:
    low, high = RANGES[column]
    types = {type(v) for v in values}
    if types == {int} and low <= min(values) and max(values) <= high:
        return [str(v) for v in values]
    if types == {str} and len(values) >= AT_ONCE_FROM:
        text = pa.array(values, pa.string())
        if pc.all(pc.match_substring_regex(text, WHOLE_NUMBER_PATTERN)).as_py():
            extremes = pc.min_max(pc.cast(text, pa.float64())).as_py()  # float: no overflow
            if low <= extremes["min"] and extremes["max"] <= high:  # so int64 holds them: written out as ints
                return pc.cast(pc.cast(text, pa.int64()), pa.string()).to_pylist()

    def one(value: Any) -> tuple[str | None, str | None, str]:
        if type(value) is int:
            number = value
        elif isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip(" ")):
            number = int(value.strip(" "))
        else:
            return (
                None,
                f"must be a whole number (a JSON integer or digits such as '12'), got {_shown(value)}",
                "int_parsing",
            )
        problem = _in_range(column, number)
        return (None, problem, "value_error") if problem else (str(number), None, "")

    return _walk(values, column, errors, one)


def _amount_of(value: Any) -> tuple[str | None, str | None, str]:
    if type(value) in (int, float):
        if not math.isfinite(value):
            return None, f"must be a finite amount, got {_shown(value)}", "finite_number"
        return repr(value), None, ""
    if isinstance(value, str) and AMOUNT.fullmatch(value.strip(" ")):
        return value.strip(" "), None, ""
    return (
        None,
        f"must be an amount (a JSON number or text such as '29.85'), got {_shown(value)}",
        "float_parsing",
    )


def _amounts_at_once(values: list[Any], column: str) -> list[str] | None:
    """The column's texts when every value is an amount in range, tested as a whole; else None."""
    if not values:
        return []
    low, high = RANGES[column]
    types = {type(v) for v in values}
    if types == {str} and len(values) >= AT_ONCE_FROM:
        text = pa.array(values, pa.string())
        if not pc.all(pc.match_substring_regex(text, AMOUNT_PATTERN)).as_py():
            return None
        extremes = pc.min_max(pc.cast(text, pa.float64())).as_py()
        return values if low <= extremes["min"] and extremes["max"] <= high else None
    if types <= {int, float} and all(map(math.isfinite, values)):
        return list(map(repr, values)) if low <= min(values) and max(values) <= high else None
    return None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip(" "))


def _amount(
    values: list[Any], column: str, errors: list[_Error], *, blank_allowed: bool = False
) -> list[str | None]:
    given = [v for v in values if not _is_blank(v)] if blank_allowed else values
    texts = _amounts_at_once(given, column)
    if texts is not None:
        if len(given) == len(values):
            return texts  # type: ignore[return-value]
        filled = iter(texts)
        return [None if _is_blank(v) else next(filled) for v in values]

    def one(value: Any) -> tuple[str | None, str | None, str]:
        if blank_allowed and _is_blank(value):
            return None, None, ""
        text, problem, kind = _amount_of(value)
        if text is None:
            return None, problem, kind
        problem = _in_range(column, float(text))
        return (None, problem, "value_error") if problem else (text, None, "")

    return _walk(values, column, errors, one)


def _optional_amount(values: list[Any], column: str, errors: list[_Error]) -> list[str | None]:
    return _amount(values, column, errors, blank_allowed=True)


def _customer_id(values: list[Any], column: str, errors: list[_Error]) -> list[str | None]:
    def one(value: Any) -> tuple[str | None, str | None, str]:
        text, problem = _text(value)
        if text is None:
            return None, problem, "string_type"
        if not 1 <= len(text) <= ID_MAX_LENGTH:
            return None, f"must be 1 to {ID_MAX_LENGTH} characters, got {len(text)}", "string_length"
        if FORBIDDEN_IN_ID.search(text):
            return (
                None,
                f"must not hold control characters or line separators, got {_shown(value)}",
                "string_pattern_mismatch",
            )
        return text, None, ""

    if {type(v) for v in values} == {str}:
        stripped = [v.strip(" ") for v in values]
        joined = "".join(stripped)
        try:
            joined.encode("utf-8")
            clean = FORBIDDEN_IN_ID.search(joined) is None
        except UnicodeEncodeError:
            clean = False
        if clean and min(map(len, stripped)) >= 1 and max(map(len, stripped)) <= ID_MAX_LENGTH:
            return stripped
    return _walk(values, column, errors, one)


def _explain(values: list[Any], errors: list[_Error]) -> list[bool]:
    for row, value in enumerate(values):
        if type(value) is not bool:
            errors.append(_Error(row, EXPLAIN, f"must be true or false, got {_shown(value)}", "bool_type"))
    return [value is True for value in values]


def _blank_total_only_for_new_customers(
    columns: dict[str, list[str | None]], fields_ok: list[bool], errors: list[_Error]
) -> None:
    bad_rows = {e.row for e in errors}
    for row, (total, tenure) in enumerate(zip(columns["TotalCharges"], columns["tenure"], strict=True)):
        if (
            total is None
            and tenure is not None
            and fields_ok[row]
            and row not in bad_rows
            and int(tenure) != BLANK_TOTAL_CHARGES_TENURE
        ):
            errors.append(
                _Error(
                    row,
                    "TotalCharges",
                    f"TotalCharges is blank or null but tenure is {int(tenure)}: only a customer with "
                    f"tenure {BLANK_TOTAL_CHARGES_TENURE} has no total yet",
                    "value_error",
                )
            )


def _shown(value: Any) -> str:
    text = repr(value)
    return printable(text if len(text) <= 60 else text[:57] + "...")


def _refusal(errors: Sequence[_Error], single: bool) -> Refused:
    ordered = sorted(errors, key=lambda e: (e.row, RAW_ORDER.get(e.field, len(RAW_ORDER))))
    details = [
        {
            "loc": [
                "body",
                *([] if single or e.row < 0 else [e.row]),
                *([] if e.field is None else [printable(e.field)]),
            ],
            "msg": e.msg,
            "type": e.type,
        }
        for e in ordered
    ]
    shown = "; ".join(describe(d) for d in details[:SHOWN_ERRORS])
    more = len(details) - SHOWN_ERRORS
    return Refused(422, shown + (f"; and {more} more" if more > 0 else ""), details)


_CHECK_OF_KIND: dict[ColumnKind, Check] = {
    "id": _customer_id,
    "category": _category,
    "whole_number_category": _whole_category,
    "whole_number": _whole_number,
    "amount": _amount,
    "optional_amount": _optional_amount,
}


_RAW_FIELDS = operator.itemgetter(*RAW_COLUMNS)
RAW_ORDER: dict[str | None, int] = {column: i for i, column in enumerate([*RAW_COLUMNS, EXPLAIN])}
_CHECKS = {column: _CHECK_OF_KIND[column_kind(column)] for column in RAW_COLUMNS}
