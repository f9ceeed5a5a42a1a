"""Parse and validate one landed CSV batch without losing a record, streaming, in chunks.

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

How it is read: the file is decoded block by block (:data:`BLOCK_BYTES`, cut after a ``\\n``) and
each block is split into ``\\n``-terminated pieces in polars. A piece without a quote character,
without a ``\\r`` other than its last character and no longer than the field size limit is exactly
one physical line and one record whose fields are its comma-separated parts: the ``csv`` module
could not read it any other way, so those pieces are split column-wise (the fast path). Every other
piece is read by ``csv.reader`` itself, record by record, from that piece until a record ends where
a fast piece begins (a record left open at the end of a block is read again with the next one).
Only a block's records are in memory at a time; a customerID repeated within the file is found
across blocks by the customerIDs seen so far (ids only).

Validation (vectorised in polars) compares each value with surrounding spaces removed, as the dbt
staging model's ``trim`` does, and nothing else: a tab, a control character or a line separator
makes a category or a number invalid. ``customerID`` is free text but a key, so one containing a
control character (Unicode category Cc, e.g. ``\\x00``, ``\\x0c``, ``\\x1e``, ``\\x85``) or a line or
paragraph separator (U+2028, U+2029) is rejected. Values quoted in reasons show those characters
escaped (``'7590\\u2028VHVEG'``); the raw text keeps them as landed. ``TotalCharges`` may be blank
only when ``tenure`` is :data:`~churn_assets.ingest.schema.BLANK_TOTAL_CHARGES_TENURE` (0).

A file that is not a batch of Telco customer records at all (not UTF-8, empty, a wrong header,
a header and no records, an open quote running over lines) is refused as a whole by
:class:`FileRejected`, wherever in the file the reason is found; being not UTF-8 is the reason given
when it is one of several.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
# Bytes read at a time; a block is then cut after its last "\\n" (the rest starts the next block).
BLOCK_BYTES = 32 * 2**20

_FIRST_ROW = "_first_row"  # row number of the first record with the same customerID

_UNSAFE_IN_ID = f"[{ID_FORBIDDEN_CHARACTERS}]"
# Every character _UNSAFE_IN_ID matches, and how a reason shows it (as Python's repr does).
_ESCAPES = {ch: repr(ch)[1:-1] for ch in map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029])}
# What str.strip removes (the last such character is U+3000): a record of only these is blank.
_WHITESPACE = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())

_ACCEPTED_SCHEMA = {**dict.fromkeys(COLUMNS, pl.String), ROW_NUMBER: pl.Int64}
_REJECTED_SCHEMA = {ROW_NUMBER: pl.Int64, RAW_LINE: pl.String, REASON: pl.String}


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
class BatchChunk:
    """The records of one block, split: every record is in exactly one of the two frames."""

    accepted: pl.DataFrame  # COLUMNS as landed text + _row_number, file order
    rejected: pl.DataFrame  # _row_number, raw_line, reason, file order


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_batch(path: Path) -> ParsedBatch:
    """Read ``path`` and split its records into accepted and rejected rows (all of them in memory)."""
    reader = BatchReader(path)
    chunks = list(reader)
    return ParsedBatch(
        path.name,
        reader.sha256,
        reader.rows_in_file,
        pl.concat([pl.DataFrame(schema=_ACCEPTED_SCHEMA), *(c.accepted for c in chunks)]),
        pl.concat([pl.DataFrame(schema=_REJECTED_SCHEMA), *(c.rejected for c in chunks)]),
    )


class BatchReader:
    """The records of one landed file, one :class:`BatchChunk` per block, in file order.

    Iterate once. A :class:`FileRejected` can be raised at any chunk (the caller discards what it took
    from the earlier ones); after the last chunk ``sha256`` and ``rows_in_file`` are set.
    """

    def __init__(self, path: Path, block_bytes: int | None = None) -> None:
        self.path = path
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.sha256 = ""
        self.rows_in_file = 0
        self.order: list[int] | None = None  # index of each of COLUMNS in the header, once read
        # customerIDs of earlier blocks (each once, with its first row) and their hashes, for the
        # duplicate check: the hashes rule out a repeat quickly, the ids decide when one may be.
        self._seen = pl.DataFrame(schema={_ID: pl.String, _FIRST_ROW: pl.Int64})
        self._seen_hashes: set[int] = set()

    def __iter__(self) -> Iterator[BatchChunk]:
        texts = self._texts()
        try:
            carry, line = "", 0
            for text, final in texts:
                block = _Block(self.path.name, carry + text, line, final)
                records, malformed = block.read(self)
                carry, line = block.carry, block.carry_line
                chunk = self._validate(records, malformed)
                if chunk is not None:
                    yield chunk
            if self.order is None:
                raise FileRejected(f"{self.path.name}: the file is empty")
            if not self.rows_in_file:
                raise FileRejected(f"{self.path.name}: header only, no records")
        except FileRejected:
            for _ in texts:  # a file that is not UTF-8 is refused as such, wherever the other reason was
                pass
            raise

    def header(self, fields: list[str]) -> None:
        self.order = _column_order(self.path.name, fields)

    @property
    def has_header(self) -> bool:
        return self.order is not None

    def _texts(self) -> Iterator[tuple[str, bool]]:
        """The file decoded block by block, each cut after a ``\\n`` (the last one: the rest), and
        whether it is the last; sets ``sha256`` once the whole file was read."""
        digest, offset, rest, first = hashlib.sha256(), 0, b"", True
        with self.path.open("rb") as handle:
            while True:
                data = handle.read(self.block_bytes)
                digest.update(data)
                if first and data.startswith(codecs.BOM_UTF8):
                    # as "utf-8-sig" decodes: a leading BOM is no text, and byte positions count after it
                    data = data[len(codecs.BOM_UTF8) :]
                data, final, first = rest + data, not data, False
                cut = len(data) if final else data.rfind(b"\n") + 1
                if not cut and not final:  # no line break yet: the block goes on
                    rest = data
                    continue
                block, rest = data[:cut], data[cut:]
                try:
                    text = block.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FileRejected(
                        f"{self.path.name}: not UTF-8 text (byte {offset + exc.start}), so not a CSV batch"
                    ) from exc
                offset += len(block)
                if final:
                    self.sha256 = digest.hexdigest()
                yield text, final
                if final:
                    return

    def _validate(self, records: pl.DataFrame, malformed: pl.DataFrame) -> BatchChunk | None:
        """Apply every rule to the block's well-formed records; None when the block held no record."""
        self.rows_in_file += records.height + malformed.height
        if not records.height + malformed.height:
            return None
        frame = records.with_columns(_values()).with_columns(_numbers())
        frame = frame.with_columns(self._first_rows(frame))
        bad = frame.select(pl.any_horizontal(*(is_bad for is_bad, _ in _checks())).alias("bad"))["bad"]
        invalid = frame.filter(bad)
        rejected = pl.concat(
            [invalid.select(ROW_NUMBER, RAW_LINE, _reasons().alias(REASON)), malformed]
        ).sort(ROW_NUMBER)
        return BatchChunk(frame.filter(~bad).select(*COLUMNS, ROW_NUMBER), rejected)

    def _first_rows(self, frame: pl.DataFrame) -> pl.Series:
        """For each row, the row number of the first record with its customerID, earlier blocks included."""
        hashes = frame[_ID].hash()
        hash_values = hashes.to_list()
        repeats = hashes.is_duplicated().any() or not self._seen_hashes.isdisjoint(hash_values)
        self._seen_hashes.update(hash_values)
        if not repeats:  # the common case: every row is the first with its id
            self._seen.vstack(frame.select(_ID, pl.col(ROW_NUMBER).alias(_FIRST_ROW)), in_place=True)
            return frame[ROW_NUMBER].alias(_FIRST_ROW)
        firsts = frame.group_by(_ID).agg(pl.col(ROW_NUMBER).min().alias(_FIRST_ROW))
        earlier = self._seen.join(firsts.select(_ID), on=_ID, how="semi")  # ids this block repeats
        self._seen.vstack(firsts.join(earlier, on=_ID, how="anti"), in_place=True)
        firsts = firsts.update(earlier, on=_ID)
        return frame.select(_ID).join(firsts, on=_ID, how="left", maintain_order="left")[_FIRST_ROW]


class _Lines:
    """Physical lines of a block's pieces from one on, for ``csv.reader``; remembers the current record's."""

    def __init__(self, pieces: list[str], first: int, ends_with_newline: bool) -> None:
        self.pieces, self.next_piece, self.ends_with_newline = pieces, first, ends_with_newline
        self.pending: deque[str] = deque()
        self.record: list[str] = []  # the lines of the record being read
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        while not self.pending:
            if self.next_piece >= len(self.pieces):
                self.exhausted = True
                raise StopIteration
            last = self.next_piece == len(self.pieces) - 1
            piece = self.pieces[self.next_piece] + ("" if last and not self.ends_with_newline else "\n")
            self.pending.extend(physical_lines(piece))
            self.next_piece += 1
        line = self.pending.popleft()
        self.record.append(line)
        return line

    def take_record(self) -> list[str]:
        record, self.record = self.record, []
        return record


class _Block:
    """One decoded block: its records, read column-wise where that is exact, else by ``csv.reader``."""

    def __init__(self, name: str, text: str, first_line: int, final: bool) -> None:
        self.name, self.text, self.first_line, self.final = name, text, first_line, final
        self.carry, self.carry_line = "", 0  # a record left open at the end of the block, and its line
        self.slow_fields: list[list[str]] = []
        self.slow_rows: list[tuple[int, str]] = []  # (_row_number, raw text) of each slow record
        self.malformed: list[tuple[int, str, str]] = []  # (_row_number, raw text, reason)

    def read(self, reader: BatchReader) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The block's well-formed records (COLUMNS, _row_number, raw_line) and its malformed ones."""
        pieces = self._pieces()
        self.carry_line = self.first_line + int(pieces["lines"].sum())
        fast = pieces["simple"].to_numpy().copy()
        if not reader.has_header or not fast.all():
            texts, starts = pieces["piece"].to_list(), pieces["start"].to_numpy()
            at = 0 if not reader.has_header else int(np.argmin(fast))
            while at < len(texts):
                end = self._read_slowly(reader, texts, at, int(starts[at]), fast)
                fast[at:end] = False
                remaining = np.flatnonzero(~fast[end:])
                at = end + int(remaining[0]) if remaining.size else len(texts)
        if reader.order is None:  # only blank lines so far
            return pl.DataFrame(schema={**_ACCEPTED_SCHEMA, RAW_LINE: pl.String}), self._malformed()
        records = self._fast_records(pieces.filter(fast))
        if self.slow_fields:
            slow = pl.DataFrame(
                [
                    *(
                        pl.Series(f"field_{i}", column, pl.String)
                        for i, column in enumerate(zip(*self.slow_fields, strict=True))
                    ),
                    pl.Series(ROW_NUMBER, [row for row, _ in self.slow_rows], pl.Int64),
                    pl.Series(RAW_LINE, [raw for _, raw in self.slow_rows], pl.String),
                ]
            )
            records = pl.concat([records, slow]).sort(ROW_NUMBER)
        records = records.select(
            *(pl.col(f"field_{i}").alias(c) for c, i in zip(COLUMNS, reader.order, strict=True)),
            ROW_NUMBER,
            RAW_LINE,
        )
        return records, pl.concat([self._fast_malformed(pieces.filter(fast)), self._malformed()]).sort(
            ROW_NUMBER
        )

    def _pieces(self) -> pl.DataFrame:
        """The block cut at each ``\\n``: its text, first physical line number and whether it is simple."""
        text = self.text
        pieces = pl.Series("piece", [text]).str.split("\n").explode()
        if text.endswith("\n") or not text:
            pieces = pieces.head(-1)  # what follows the last "\\n" is no line
        limit = csv.field_size_limit()
        piece = pl.col("piece")
        ends_cr = piece.str.ends_with("\r").cast(pl.Int64)
        lines = piece.str.count_matches("\r", literal=True).cast(pl.Int64) + 1 - ends_cr  # physical lines
        return (
            pieces.to_frame()
            .with_columns(lines.alias("lines"))
            .with_columns(
                (self.first_line + pl.col("lines").cum_sum() - pl.col("lines")).alias("start"),
                (
                    (pl.col("lines") == 1)
                    & ~piece.str.contains('"', literal=True)
                    & (piece.str.len_bytes() <= limit)
                ).alias("simple"),
                piece.str.strip_suffix("\r").alias(RAW_LINE),
            )
        )

    def _fast_records(self, simple: pl.DataFrame) -> pl.DataFrame:
        width = len(COLUMNS)
        return simple.filter(pl.col(RAW_LINE).str.count_matches(",", literal=True) == width - 1).select(
            pl.col(RAW_LINE).str.split_exact(",", width - 1).struct.unnest(),
            (pl.col("start") + 1).alias(ROW_NUMBER),
            RAW_LINE,
        )

    def _fast_malformed(self, simple: pl.DataFrame) -> pl.DataFrame:
        found = pl.col(RAW_LINE).str.count_matches(",", literal=True) + 1
        return simple.filter(
            (found != len(COLUMNS)) & (pl.col(RAW_LINE).str.strip_chars(_WHITESPACE) != "")
        ).select(
            (pl.col("start") + 1).alias(ROW_NUMBER),
            RAW_LINE,
            pl.format(f"expected {len(COLUMNS)} fields, found {{}}", found).alias(REASON),
        )

    def _malformed(self) -> pl.DataFrame:
        return pl.DataFrame(self.malformed, schema=_REJECTED_SCHEMA, orient="row")

    def _read_slowly(
        self, reader: BatchReader, pieces: list[str], first: int, line: int, fast: np.ndarray
    ) -> int:
        """Read records with ``csv.reader`` from piece ``first`` (on physical line ``line``, 0-based) until
        one ends where a fast piece (or the block) begins; the index of that piece."""
        lines = _Lines(pieces, first, self.text.endswith("\n"))
        records = csv.reader(lines, strict=True)
        while True:
            try:
                record = next(records, None)
            except csv.Error as exc:
                taken = lines.take_record()
                if lines.exhausted and not self.final:  # the record goes on in the next block
                    self.carry, self.carry_line = "".join(taken), line
                    return len(pieces)
                if not reader.has_header:
                    raise FileRejected(f"{self.name}: the header is not valid CSV: {exc}") from exc
                if len(taken) > 1:
                    raise FileRejected(
                        f"{self.name}: not valid CSV: {exc} in the record starting on line {line + 1}, which "
                        f"runs over {len(taken)} lines (a quote left open?), so where the records after "
                        "it begin is unknown"
                    ) from exc
                self.malformed.append((line + 1, raw_text(taken), f"not valid CSV: {exc}"))
                line += len(taken)
            else:
                if record is None:
                    return len(pieces)
                taken = lines.take_record()
                self._record(reader, record, line, raw_text(taken))
                line += len(taken)
            at_piece_end = not lines.pending
            if (
                at_piece_end
                and reader.has_header
                and (lines.next_piece >= len(pieces) or fast[lines.next_piece])
            ):
                return lines.next_piece

    def _record(self, reader: BatchReader, record: list[str], line: int, raw: str) -> None:
        blank = not raw.strip()
        if not reader.has_header:
            if len(record) > 1 or not blank:
                reader.header(record)
        elif len(record) == len(COLUMNS):
            self.slow_fields.append(record)
            self.slow_rows.append((line + 1, raw))
        elif not blank:
            self.malformed.append((line + 1, raw, f"expected {len(COLUMNS)} fields, found {len(record)}"))


def physical_lines(text: str) -> list[str]:
    """``text`` cut after each ``\\n``, ``\\r\\n`` or ``\\r``, line breaks kept; no other character cuts."""
    return io.StringIO(text, newline="").readlines()


def raw_text(lines: list[str]) -> str:
    """The text of a record's physical ``lines``, without the last line break."""
    text = "".join(lines)
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text


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


def _value(column: str) -> pl.Expr:
    """The value as the staging model reads it: surrounding spaces (only spaces) removed."""
    return pl.col(f"_value:{column}")


def _number(column: str) -> pl.Expr:
    """The value as a number if it is in the data set's amount format, else null."""
    return pl.col(f"_number:{column}")


def _values() -> list[pl.Expr]:
    """What the checks read, computed once per block: every value as :func:`_value` reads it."""
    return [pl.col(c).str.strip_chars(" ").alias(f"_value:{c}") for c in COLUMNS]


def _numbers() -> list[pl.Expr]:
    """...and the numbers of the columns with a range (after :func:`_values`)."""
    return [
        pl.when(_value(c).str.contains(AMOUNT_PATTERN))
        .then(_value(c).cast(pl.Float64, strict=False))
        .alias(f"_number:{c}")
        for c in RANGES
    ]


_ID = _value(ID_COLUMN).meta.output_name()  # the customerID as compared


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
        number = _number(column)
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
