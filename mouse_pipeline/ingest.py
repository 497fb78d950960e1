"""Reading mouse-event CSV files into clean events plus rejected rows.

:func:`read_events` never drops a row silently. Every physical data line of
the file ends up in exactly one of three places:

* the clean events (typed as in :mod:`mouse_pipeline.contract`, sorted by
  ``(session_id, timestamp)``, stable, with the ``source_line`` it came from);
* the rejected rows, with the source file, line number, original values and
  the reason(s) for rejection;
* the count of exact duplicates (a row identical to an earlier one in every
  column, ``uid`` included, as written in the file).

A fault of the whole file (missing, empty, not CSV, a missing or misspelt
column) raises :class:`EventFileError` naming the file and what is wrong.

Row rules
---------
A row is rejected, with every reason that applies (joined by ``"; "``), when:

* an id (``uid``, ``session_id``, ``user_id``) is empty or only whitespace;
* an id is a number in scientific notation with a signed exponent
  (``-2.4162E+18``): a spreadsheet turned it into a float and its digits are
  lost;
* ``timestamp`` is not an integer (``12.5``, ``yesterday``, empty), or is in
  scientific notation (``1.65599E+12``, digits lost to a spreadsheet), or is
  an integer outside 2000..2099 in epoch milliseconds (seconds instead of
  milliseconds, a zero, a sentinel). An integer written with a zero
  fraction (``1650000000000.0``, as pandas writes an integer column that went
  through float) is exact, so it is accepted; a non-zero fraction is not;
* ``event_type`` is not one of the contract's codes 1..5;
* ``screen_x`` or ``screen_y`` is not a finite number;
* the line has the wrong number of fields (``malformed line``);
* its ``uid`` was already used by an earlier, different row.

A line whose every field is empty is rejected as ``blank line``. Numbers may
carry surrounding whitespace and a sign; ``event_type`` may be written
``2.0``.

Ids are kept as written except that spaces (U+0020) at either end are
trimmed. Nothing else is trimmed: a leading tab, which OWASP's CSV-injection
advice puts before a cell starting with ``=``, ``+``, ``-`` or ``@`` to stop
a spreadsheet from running it as a formula, stays in place, so an id
neutralised as ``\\t=1+1`` is never turned back into a live formula.

How it is fast
--------------
pyarrow's multi-threaded CSV reader parses the file, in blocks of up to
16 MB (:func:`csv_block_size`: every block is a chunk of every column, and
later steps pay per chunk); ``session_id`` and ``user_id`` come out
dictionary-encoded, every other column as text. Every
rule is Arrow compute or numpy over whole columns, several at a time on threads: a column
whose values are all in plain form is typed with one cast; a column with
faults is parsed once per distinct text (timestamps: only the non-plain
values meet the regular expressions); id rules run on the dictionaries (one
value per session or user); a 64-bit hash of each ``uid`` finds the rows that
share a uid, and only those are compared in full. The sort is one sort of
packed integer keys, from which the sorted timestamps come back too; it
needs only the session ids and timestamps, so it runs on a thread of its own
while the other rules run, over every row (the rejected ones are dropped
from its order afterwards, which keeps the order of the rest; rows sure to
be rejected stand in within their own session, so that they widen no
session's part of the key, see ``_time_order``). Text
becomes Python strings only for the messages of rejected rows, which are
assembled with Arrow string kernels. The events frame keeps Arrow-backed
``str`` columns, in chunks of :data:`OUTPUT_CHUNK_ROWS` rows: each chunk fits
in memory that the raw text has just freed. Ids that all have one byte length
(UUIDs, fixed-width numbers) are gathered as fixed-width records by numpy,
twice as fast as Arrow's string-by-string take (:func:`take_strings`).
:attr:`IngestResult.timings` has the seconds of each stage.

The field rules (:func:`check_fields`) take any Arrow table of the contract's
columns, so the Spark engine runs the very same code on its batches
(:mod:`mouse_pipeline.spark_engine`).
"""

from __future__ import annotations

import difflib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mouse_pipeline import contract as c
from mouse_pipeline.features.segments import sort_by_code_and_time, sort_uint64
from mouse_pipeline.timing import LapClock

#: Columns of the rejected-rows frame, before the contract columns.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "line_number")
REASON = "reason"
RAW_LINE = "raw_line"

#: Columns read dictionary-encoded: few distinct values, each checked once.
_DICTIONARY_COLUMNS = (c.SESSION_ID, c.USER_ID)
_ID_COLUMNS = (c.UID, c.SESSION_ID, c.USER_ID)

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_INTEGER = r"^\s*[-+]?\d+(\.0*)?\s*$"  # an integer, or one written with a zero fraction
_SCIENTIFIC = r"^\s*[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+\s*$"
#: An id that a spreadsheet turned into a float: ``-2.4162E+18``. The exponent's sign is
#: required, so that hexadecimal ids such as ``12e4`` are not mistaken for numbers.
_SCIENTIFIC_ID = r"^[-+]?\d+(\.\d*)?[eE][-+]\d+$"
_SCIENTIFIC_ID_MAX_LENGTH = 32  # longer ids are never checked against _SCIENTIFIC_ID
_SPREADSHEET = "is in scientific notation (precision lost, e.g. saved by a spreadsheet)"


class EventFileError(ValueError):
    """The whole file cannot be used: the message names the file and the fault."""


@dataclass(frozen=True)
class IngestResult:
    """What :func:`read_events` made of one file."""

    source_file: str
    events: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int
    exact_duplicates: int
    #: Wall-clock seconds of each stage: ``parse`` (header and CSV reader), ``validate`` (every
    #: rule: which rows are kept; the sort runs meanwhile, on a thread of its own), ``sort`` (what
    #: is left of the sort when validation ends, the typed events frame, then the frame of rejected
    #: rows with their reasons).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_accepted(self) -> int:
        return len(self.events)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    def counts(self) -> dict[str, int]:
        """Row accounting: ``rows_read == rows_accepted + rows_rejected + exact_duplicates``."""
        return {
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "exact_duplicates": self.exact_duplicates,
        }


def empty_rejected(columns: tuple[str, ...] = c.TRAIN_COLUMNS) -> pd.DataFrame:
    """A rejected-rows frame with no rows and the standard columns."""
    return pd.DataFrame({name: pd.Series(dtype="int64" if name == "line_number" else "str")
                         for name in (*REJECT_COLUMNS, *columns, RAW_LINE, REASON)})


def _read_header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        first = handle.readline(1 << 16)
    if b"\x00" in first:
        raise EventFileError(f"{path}: not a CSV text file (binary content in the first line)")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EventFileError(f"{path}: not a CSV text file (not UTF-8: {exc})") from exc
    header = [name.strip().strip('"') for name in text.rstrip("\r\n").split(",")]
    if not text.strip():
        raise EventFileError(f"{path}: the first line is empty; expected a CSV header")
    return header


def _check_header(path: Path, header: list[str], labelled: bool) -> None:
    required = c.expected_columns(labelled)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise EventFileError(f"{path}: the header repeats column(s) {duplicated}")
    missing = [name for name in required if name not in header]
    if not missing:
        return
    unknown = [name for name in header if name not in required]
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
        hints.append(f"'{name}'" + (f" (found '{close[0]}': misspelt?)" if close else ""))
    kind = "training (labelled)" if labelled else "test (unlabelled)"
    raise EventFileError(
        f"{path}: missing column(s) {', '.join(hints)}; a {kind} file needs columns "
        f"{list(required)}, the header has {header}"
    )


# --------------------------------------------------------------------------------------------
# Field rules: Arrow compute over the columns of any table of raw values.
# --------------------------------------------------------------------------------------------


def numpy_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow array (chunked or not, possibly empty) as a numpy array."""
    return values.to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, dtype=values.type.to_pandas_dtype())


def bool_mask(flags: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy (nulls False), with no unpacking when all flags agree."""
    if len(flags) == 0:
        return np.zeros(0, dtype=bool)
    if not pc.any(flags).as_py():
        return np.zeros(len(flags), dtype=bool)
    if flags.null_count == 0 and pc.all(flags).as_py():
        return np.ones(len(flags), dtype=bool)
    return numpy_values(pc.fill_null(flags, False))


def _as_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column as strings, nulls as empty strings (typed columns of Parquet input, say)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return pc.fill_null(column, "") if column.null_count else column


def _distinct(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """``(distinct values, code of each row)``: the dictionary of a dictionary-encoded column, or one
    built here (a hash pass)."""
    encoded = _dictionary(column)
    if encoded is not None:
        return encoded
    if isinstance(column, pa.ChunkedArray):
        # One array, one dictionary: encoding chunk by chunk leaves a dictionary per chunk to unify
        # and codes to concatenate, which cost more than the copy (twice the time, for screen_x).
        column = column.combine_chunks()
    return _dictionary(pc.dictionary_encode(column))


def _parse_float(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Numbers of a text column (NaN where the text is not a number).

    One cast when every value parses (pyarrow also accepts ``nan`` and ``inf``,
    which the finiteness rule rejects anyway). Otherwise each distinct text
    (a few thousand screen coordinates) is matched against the number pattern
    and cast once, and rows take their text's number.
    """
    if pa.types.is_floating(text.type) or pa.types.is_integer(text.type):
        return numpy_values(pc.fill_null(pc.cast(text, pa.float64()), np.nan))
    text = _as_text(text)
    try:
        return numpy_values(pc.cast(text, pa.float64()))
    except pa.ArrowInvalid:
        pass
    values, codes = _distinct(text)
    ok = pc.match_substring_regex(values, _NUMBER)
    numbers = numpy_values(pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(values), "nan"), pa.float64()))
    return numbers[codes]


def _in_time_range(t: np.ndarray) -> np.ndarray:
    """Epoch milliseconds within the contract's years (2000..2099)."""
    return (t >= c.MIN_TIMESTAMP_MS) & (t < c.MAX_TIMESTAMP_MS)


def _parse_timestamp(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch milliseconds of a text column: ``(values, not_integer, scientific)``.

    Plain digits (up to 18, so they fit in int64) are cast in one call; the
    few other values are classified with regular expressions: an integer with
    whitespace, a sign or a zero fraction is parsed, scientific notation and
    anything else are faults. ``values`` is 0 where a fault is flagged.
    """
    n = len(text)
    if pa.types.is_integer(text.type):
        missing = bool_mask(pc.is_null(text))
        return numpy_values(pc.fill_null(pc.cast(text, pa.int64()), 0)), missing, np.zeros(n, dtype=bool)
    text = _as_text(text)
    plain_flags = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 18))
    plain = bool_mask(plain_flags)
    if plain.all():
        return numpy_values(pc.cast(text, pa.int64())), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    values = np.zeros(n, dtype=np.int64)
    if plain.any():
        values[plain] = numpy_values(pc.cast(pc.filter(text, plain_flags), pa.int64()))
    other = np.flatnonzero(~plain)
    rest = pc.filter(text, pc.invert(plain_flags))  # a filter works chunk by chunk; a take joins the chunks
    integer = bool_mask(pc.match_substring_regex(rest, _INTEGER))
    scientific = np.zeros(n, dtype=bool)
    scientific[other] = bool_mask(pc.match_substring_regex(rest, _SCIENTIFIC))
    not_integer = np.zeros(n, dtype=bool)
    not_integer[other] = ~integer & ~scientific[other]
    # An integer beyond int64 goes through float64: it is out of range anyway.
    number = numpy_values(pc.cast(pc.if_else(integer, pc.utf8_trim_whitespace(rest), "0"), pa.float64()))
    in_range = _in_time_range(number)
    values[other] = np.where(in_range, number, -1).astype(np.int64)  # -1: out of range, whichever side
    return values, not_integer, scientific


#: Bytes that are an event code written as one digit.
_CODE_CHARACTERS = np.isin(np.arange(256), [ord(str(code)) for code in c.EVENT_CODES if 0 <= code <= 9])


def _single_bytes(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """The bytes of a text column whose every value is one byte long (uint8, one per row), else None."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    layouts = [fixed_width_records(chunk) for chunk in chunks]
    if not chunks or any(r is None or r.width != 1 or r.index is not None for r in layouts):  # no empty value
        return None
    parts = []
    for chunk in chunks:
        start = int(_value_offsets(chunk)[0])
        parts.append(np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[start:start + len(chunk)])
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def _parse_event_type(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Event codes of a text column: ``(codes as int8, valid)``.

    A column of single characters (as written by browsers and Kaggle's files)
    is read from its bytes: one table lookup per row. Plain values of up to 3
    digits are cast at once; otherwise each distinct text is parsed as a
    number, accepted when it equals a code (``2.0``).
    """
    if pa.types.is_integer(text.type) or pa.types.is_floating(text.type):
        number = numpy_values(pc.fill_null(pc.cast(text, pa.float64()), np.nan))
    else:
        text = _as_text(text)
        characters = _single_bytes(text)
        if characters is not None:
            valid = _CODE_CHARACTERS[characters]
            return np.where(valid, characters - ord("0"), 0).astype(np.int8), valid
        if pc.all(pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 3))).as_py():
            code = numpy_values(pc.cast(text, pa.int16()))  # plain integers: a range check is enough
            valid = np.isin(code, c.EVENT_CODES)
            return np.where(valid, code, 0).astype(np.int8), valid
        number = _parse_float(text)
    valid = (number >= min(c.EVENT_CODES)) & (number <= max(c.EVENT_CODES)) & (number % 1 == 0)
    valid &= np.isin(np.where(valid, number, 0), c.EVENT_CODES)
    return np.where(valid, number, 0).astype(np.int8), valid


@dataclass(frozen=True)
class IdColumn:
    """An id column as distinct values plus a code per row (or one value per row).

    ``values`` are the ids with spaces trimmed at both ends; ``codes`` (None
    when ``values`` has one entry per row) picks each row's value.
    ``empty`` and ``scientific`` are per-row fault masks.
    """

    values: pa.Array
    codes: np.ndarray | None
    empty: np.ndarray
    scientific: np.ndarray

    def take(self, rows: np.ndarray, chunk_rows: int | None = None) -> pa.Array | pa.ChunkedArray:
        """The (trimmed) ids of ``rows``; with ``chunk_rows``, as a chunked array of chunks of that many
        rows (each chunk a take of its own). Ids of one byte length (UUIDs, fixed-width numbers) come
        back as ``large_string`` (see :func:`take_strings`)."""
        picked = rows if self.codes is None else self.codes[rows]
        records = fixed_width_records(self.values)
        if chunk_rows is None or len(picked) <= chunk_rows:
            return take_strings(self.values, picked, records)
        chunks = [take_strings(self.values, picked[lo:lo + chunk_rows], records)
                  for lo in range(0, len(picked), chunk_rows)]
        return pa.chunked_array(chunks, type=chunks[0].type)

    def per_row(self) -> pa.Array | pa.ChunkedArray:
        """The (trimmed) id of every row, in row order."""
        return self.values if self.codes is None else self.values.take(pa.array(self.codes))


def _value_offsets(values: pa.Array) -> np.ndarray:
    """The offsets of a string array's values (int32 or int64, as stored; no copy)."""
    large = pa.types.is_large_string(values.type)
    return np.frombuffer(values.buffers()[1], dtype=np.int64 if large else np.int32)[values.offset:][:len(values) + 1]


@dataclass(frozen=True)
class Records:
    """The values of a string array as fixed-width records of its data buffer: ``width`` bytes each,
    value ``i`` being record ``index[i]`` (-1: an empty value, which takes no bytes), or record ``i``
    when ``index`` is None (no empty value)."""

    width: int
    index: np.ndarray | None = None


def fixed_width_records(values: pa.Array | pa.ChunkedArray) -> Records | None:
    """The :class:`Records` of a string array whose non-empty values all have one byte length
    (UUIDs, fixed-width numbers; empty ones may be among them), else None (values of several
    lengths, only empty values, nulls, no values, a chunked array)."""
    if (not isinstance(values, pa.Array) or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type))
            or len(values) == 0 or values.null_count):
        return None
    offsets = _value_offsets(values)
    lengths = np.diff(offsets)
    width = int(lengths.max())
    if width == 0:
        return None
    if int(offsets[-1]) - int(offsets[0]) == width * len(values):  # none shorter than the longest
        return Records(width)
    filled = lengths > 0
    if not (lengths[filled] == width).all():
        return None
    index = np.cumsum(filled, dtype=np.int64) - 1
    index[~filled] = -1
    return Records(width, index)


def take_strings(values: pa.Array | pa.ChunkedArray, rows: np.ndarray, records: Records | None = None) -> pa.Array:
    """``values[rows]``; ``records``, from :func:`fixed_width_records`, when they are fixed-width records.

    Records are gathered by numpy in one ``take`` into a buffer from Arrow's pool, and the offsets
    are a multiple of the row number (2 million UUIDs: half the time of Arrow's ``take``, which
    copies each string on its own). The result is then a ``large_string`` array, as pandas' ``str``
    dtype stores it. Otherwise, or when one of ``rows`` is an empty value, Arrow's ``take``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if records is None or len(rows) == 0:
        return values.take(pa.array(rows))
    if rows.min() < 0 or rows.max() >= len(values):
        raise IndexError(f"rows out of range for {len(values)} values")
    picked = rows if records.index is None else records.index[rows]
    if records.index is not None and picked.min() < 0:  # an empty value among them
        return values.take(pa.array(rows))
    width = records.width
    offsets = _value_offsets(values)
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)  # a non-empty value: a data buffer
    gathered = pa.allocate_buffer(width * len(rows))
    np.take(data[start:end].view(f"V{width}"), picked, out=np.frombuffer(gathered, dtype=f"V{width}"),
            mode="clip")  # in range: checked
    starts = pa.allocate_buffer(8 * (len(rows) + 1))  # Arrow's pool too: numpy's heap stays for numpy
    np.frombuffer(starts, dtype=np.int64)[:] = np.arange(0, width * (len(rows) + 1), width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(len(rows), starts, gathered)


def _dictionary(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray] | None:
    """``(dictionary, codes)`` of a dictionary-encoded column, else None."""
    if not pa.types.is_dictionary(column.type):
        return None
    chunks = column.unify_dictionaries().chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not chunks:
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    codes = np.concatenate([numpy_values(chunk.indices) for chunk in chunks]).astype(np.int64, copy=False)
    return chunks[0].dictionary, codes


def _id_column(column: pa.Array | pa.ChunkedArray) -> IdColumn:
    """Trim spaces and find empty and spreadsheet-mangled ids, once per distinct value if encoded."""
    encoded = _dictionary(column)
    values, codes = encoded if encoded is not None else (_as_text(column), None)
    values = _as_text(values)
    if isinstance(values, pa.ChunkedArray) and values.num_chunks == 1:  # a take from an array is quicker
        values = values.chunk(0)
    empty = pc.or_(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values))
    short = bool_mask(pc.less_equal(pc.binary_length(values), _SCIENTIFIC_ID_MAX_LENGTH))
    scientific = np.zeros(len(values), dtype=bool)
    if short.any():
        candidates = pc.utf8_trim(pc.filter(values, pa.array(short)), " ")
        scientific[short] = bool_mask(pc.match_substring_regex(candidates, _SCIENTIFIC_ID))
    padded = pc.or_(pc.starts_with(values, " "), pc.ends_with(values, " "))
    if pc.any(padded).as_py():
        values = pc.utf8_trim(values, " ")
    empty = bool_mask(empty)
    if codes is not None:  # distinct values: as large_string, so that the rows taken need no conversion
        values = pc.cast(values, pa.large_string())
        # Per row: gathered from the distinct values only when one of them is faulty (rare).
        empty, scientific = (mask[codes] if mask.any() else np.zeros(len(codes), dtype=bool)
                             for mask in (empty, scientific))
    return IdColumn(values, codes, empty, scientific)


@dataclass(frozen=True)
class Fault:
    """One row rule: the rows it rejects and its message.

    ``message`` is complete, or has one ``{}`` that takes the quoted raw value
    of ``column``.
    """

    mask: np.ndarray
    message: str
    column: str | None = None


@dataclass(frozen=True)
class FieldCheck:
    """The field rules applied to ``n`` rows: typed values and the faults of every row.

    ``timestamp`` (int64 epoch ms), ``event_type`` (int8), ``screen_x`` and
    ``screen_y`` (float64) have one value per row; they are meaningless where
    the row is faulty. ``ids`` holds the space-trimmed id columns.
    """

    n: int
    columns: tuple[str, ...]
    ids: dict[str, IdColumn]
    timestamp: np.ndarray
    event_type: np.ndarray
    screen_x: np.ndarray
    screen_y: np.ndarray
    faults: tuple[Fault, ...]

    def faulty(self) -> np.ndarray:
        """Boolean per row: does any field rule reject it?"""
        out = np.zeros(self.n, dtype=bool)
        for fault in self.faults:
            out |= fault.mask
        return out

    def reasons(self, rows: np.ndarray, raw: pa.Table) -> list[str]:
        """The reasons (``"; "``-joined, ``""`` for none) of ``rows``; ``raw`` holds their raw values.

        ``raw`` has one row per entry of ``rows`` (the raw columns of those
        rows, text or typed). Messages are assembled with Arrow string
        kernels; they become Python strings at the end, for these rows only.
        """
        if len(rows) == 0:
            return []
        text = {name: _as_text(raw.column(name).combine_chunks()) for name in self.columns}
        parts = []
        for fault in self.faults:
            hit = fault.mask[rows]
            if not hit.any():
                continue
            if fault.column is None:
                message = pa.scalar(fault.message)
            else:
                before, after = fault.message.split("{}")
                message = pc.binary_join_element_wise(before + "'", text[fault.column], "'" + after, "")
            parts.append(pc.if_else(pa.array(hit), message, pa.scalar(None, pa.string())))
        # Fold the parts pairwise (binary_join_element_wise's null_handling="skip" returns too few
        # rows in pyarrow 25).
        joined = pa.nulls(len(rows), pa.string())
        for part in parts:
            joined = pc.coalesce(pc.binary_join_element_wise(joined, part, "; "), joined, part)
        joined = pc.fill_null(joined, "")
        blank = np.ones(len(rows), dtype=bool)
        for values in text.values():
            blank &= bool_mask(pc.equal(values, ""))
        return pc.if_else(pa.array(blank), "blank line", joined).to_pylist()


def reused_uid_reason(uid: str, first_line: int | None = None) -> str:
    """The reason of a row that reuses an earlier row's uid with other content."""
    where = "" if first_line is None else f" (first on line {first_line})"
    return f"duplicate uid '{uid}' with different content{where}"


def malformed_reason(expected: int, found: int) -> str:
    """The reason of a line with the wrong number of fields."""
    return f"malformed line: expected {expected} fields, found {found}"


def check_fields(table: pa.Table, labelled: bool) -> FieldCheck:
    """Apply every row rule of the contract to a table of raw values, vectorised.

    ``table`` has the contract's columns (``user_id`` when ``labelled``), as
    text (a CSV read as strings; ``session_id`` and ``user_id`` may be
    dictionary-encoded) or already typed (numbers of a Parquet table: only
    missing values and ranges are checked then). No row is dropped or
    reordered: the result has one entry per row of ``table``. The rules and
    their messages are those of the module docstring. A table without
    ``uid`` (a Parquet table may leave it out) is checked on the other columns.
    """
    columns = _field_columns(table, labelled)
    with ThreadPoolExecutor(max_workers=2) as pool:  # columns are independent; Arrow and numpy release the GIL
        parsed = {name: pool.submit(_parse_column, name, table.column(name)) for name in columns}
        parsed = {name: future.result() for name, future in parsed.items()}
    return _field_check(table.num_rows, columns, parsed)


def _field_columns(table: pa.Table, labelled: bool) -> tuple[str, ...]:
    """The contract's columns that :func:`check_fields` checks in ``table``, in contract order."""
    return tuple(name for name in c.expected_columns(labelled) if name != c.UID or name in table.column_names)


def _parse_column(name: str, column: pa.Array | pa.ChunkedArray) -> object:
    """One column's rules: an :class:`IdColumn` for an id, else the parsed values and fault masks
    (``_parse_timestamp``, ``_parse_event_type`` or ``_parse_float``)."""
    if name in _ID_COLUMNS:
        return _id_column(column)
    if name == c.TIMESTAMP:
        return _parse_timestamp(column)
    if name == c.EVENT_TYPE:
        return _parse_event_type(column)
    return _parse_float(column)


def _field_check(n: int, columns: tuple[str, ...], parsed: dict[str, object]) -> FieldCheck:
    """The :class:`FieldCheck` of ``n`` rows from each column's :func:`_parse_column` result."""
    faults: list[Fault] = []
    for name in columns:
        if name in _ID_COLUMNS:
            faults.append(Fault(parsed[name].empty, f"{name} is empty"))
            faults.append(Fault(parsed[name].scientific, f"{name} {{}} {_SPREADSHEET}", name))
    timestamp, not_integer, scientific = parsed[c.TIMESTAMP]
    code, code_ok = parsed[c.EVENT_TYPE]
    faults.append(Fault(not_integer, "timestamp {} is not an integer", c.TIMESTAMP))
    faults.append(Fault(scientific, f"timestamp {{}} {_SPREADSHEET}", c.TIMESTAMP))
    impossible = ~not_integer & ~scientific & ~_in_time_range(timestamp)
    faults.append(Fault(impossible, "impossible timestamp {} (expected epoch milliseconds in 2000..2099)",
                        c.TIMESTAMP))
    faults.append(Fault(~code_ok, f"event_type {{}} is not one of {list(c.EVENT_CODES)}", c.EVENT_TYPE))
    for name in (c.SCREEN_X, c.SCREEN_Y):
        faults.append(Fault(~np.isfinite(parsed[name]), f"{name} {{}} is not a finite number", name))
    return FieldCheck(n=n, columns=columns, ids={name: parsed[name] for name in columns if name in _ID_COLUMNS},
                      timestamp=timestamp, event_type=code, screen_x=parsed[c.SCREEN_X],
                      screen_y=parsed[c.SCREEN_Y], faults=tuple(faults))


# --------------------------------------------------------------------------------------------
# Rows that share a uid: exact duplicates and reused uids.
# --------------------------------------------------------------------------------------------

_MIX = np.uint64(0x9E3779B97F4A7C15)
_HASH_ROWS = 1 << 18  # rows hashed per slice: the padded byte block stays a few MB


def _string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets as int64, data bytes)`` of a string array."""
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return _value_offsets(array).astype(np.int64, copy=False), data


def _string_hashes(array: pa.Array, width: int) -> np.ndarray | None:
    """A 64-bit hash of every string of a (non-null) string array of strings at most ``width`` bytes
    long, or None when it cannot be done fast.

    Values of one byte length (UUIDs) are viewed as rows of a byte matrix, no
    copy, and so are they when some values are empty (a missing uid: an empty
    string takes no bytes, and hashes to 0 as below). Other ASCII values are
    first padded with NUL to the longest (equal strings stay equal; the length
    is mixed in, so that padding cannot make unequal strings equal). Each row,
    zero-padded to ``width`` rounded up to whole 64-bit words (the same for
    every chunk of a column, so that equal strings hash equally wherever they
    are), is folded with a multiply-xorshift mix, vectorised over rows. Values
    longer than 64 bytes, or non-ASCII ones of several lengths, return None.
    """
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if width > 64:
        return None
    offsets, data = _string_buffers(array)
    lengths = np.diff(offsets)
    longest = int(lengths.max())
    words = max(1, -(-width // 8))
    if int(lengths.min()) == longest:
        return _fixed_length_hashes(data[offsets[0]:], n, longest, words)
    filled = np.flatnonzero(lengths)
    if longest > 0 and np.count_nonzero(lengths == longest) == len(filled):  # one length, plus empty strings
        out = np.zeros(n, dtype=np.uint64)  # the hash of an empty string
        out[filled] = _fixed_length_hashes(data[offsets[0]:], len(filled), longest, words)
        return out
    if not pc.all(pc.string_is_ascii(array)).as_py():
        return None
    padded = pc.utf8_rpad(array, longest, "\0")
    return _fixed_length_hashes(_string_buffers(padded)[1], n, longest, words, lengths)


def _fixed_length_hashes(data: np.ndarray, n: int, length: int, words: int,
                         lengths: np.ndarray | None = None) -> np.ndarray:
    """Hashes of the ``n`` consecutive ``length``-byte records at the start of ``data``; ``lengths``, the
    values' own lengths when they were padded to ``length``, are mixed in instead of ``length``."""
    out = np.empty(n, dtype=np.uint64)
    for lo in range(0, n, _HASH_ROWS):
        hi = min(lo + _HASH_ROWS, n)
        block = np.zeros((hi - lo, words * 8), dtype=np.uint8)
        block[:, :length] = data[lo * length: hi * length].reshape(hi - lo, length)
        h = (np.full(hi - lo, length, dtype=np.uint64) if lengths is None else
             lengths[lo:hi].astype(np.uint64)) * _MIX
        for word in block.view(np.uint64).T:
            h ^= word
            h *= _MIX
            h ^= h >> np.uint64(29)
        out[lo:hi] = h
    return out


def _shared_uid_rows(uid: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows (ascending) whose uid may also be another row's: every true repeat, plus rare hash
    collisions, which the exact comparison that follows sorts out."""
    uid = _as_text(uid)
    whole = uid.combine_chunks() if isinstance(uid, pa.ChunkedArray) else uid
    key = _string_hashes(whole, pc.max(pc.binary_length(whole)).as_py() or 0)
    del whole
    if key is None:  # long or non-ASCII ids: exact codes from a hash table instead
        key = _distinct(uid)[1]
    ordered = sort_uint64(key)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(key, repeated))


def _text_table(table: pa.Table, rows: np.ndarray | None = None) -> pa.Table:
    """Rows of ``table`` (all by default; ``rows`` ascending) with dictionary columns decoded to text.

    Rows are picked with a mask, chunk by chunk (a ``take`` would first
    concatenate every chunk of every column).
    """
    if rows is not None:
        picked = np.zeros(table.num_rows, dtype=bool)
        picked[rows] = True
        table = table.filter(pa.array(picked))
    fields = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
              for f in table.schema]
    return table.cast(pa.schema(fields))


def _repeated_uids(table: pa.Table, lines: np.ndarray, columns: tuple[str, ...]
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Exact duplicates and uids reused with other content.

    Returns the rows that exactly repeat an earlier row, the rows that reuse
    an earlier row's uid with different content, and the reason of each of
    the latter. Only rows whose uid hash repeats are compared.
    """
    shared = _shared_uid_rows(table.column(c.UID))
    none = np.zeros(0, dtype=np.int64)
    if len(shared) == 0:
        return none, none, []
    rows = _text_table(table.select(list(columns)), shared).to_pandas()
    rows.index = shared
    duplicate = rows.duplicated(keep="first")
    rows = rows.loc[~duplicate]
    later = rows[c.UID].duplicated(keep="first")
    first_line = pd.Series(lines[rows.index], index=rows.index).groupby(rows[c.UID].to_numpy(), sort=False)
    first_line = first_line.transform("first")
    reasons = [reused_uid_reason(uid, line) for uid, line in zip(rows.loc[later, c.UID], first_line[later])]
    return duplicate.index[duplicate].to_numpy(), later.index[later].to_numpy(), reasons


# --------------------------------------------------------------------------------------------
# Reading.
# --------------------------------------------------------------------------------------------


_BLOCK_MIN, _BLOCK_MAX = 1 << 20, 16 << 20


def csv_block_size(file_bytes: int, cpus: int | None = None) -> int:
    """Bytes per block of the CSV reader: about four blocks per CPU, from 1 MB (Arrow's default) to 16 MB.

    Every block becomes one chunk of every column, and every later step on a
    column (a cast, a rule, a filter, the unification of a dictionary-encoded
    column's per-chunk dictionaries) pays a fixed cost per chunk. Arrow's 1 MB
    made 248 chunks of a 259 MB file; 16 MB blocks make 16, still four per CPU
    here for the parallel parse. Ingestion of that file in one process, run
    alternately: 0.64 s against 0.79 s (0.70 s against 0.93 s with 1% faulty
    rows).
    """
    cpus = cpus or pa.cpu_count()  # the threads Arrow's reader parses blocks on
    return int(min(max(file_bytes // (4 * cpus), _BLOCK_MIN), _BLOCK_MAX))


def _read_table(path: Path, columns: tuple[str, ...]) -> tuple[pa.Table, np.ndarray, pd.DataFrame]:
    """The wanted columns as text (session and user ids dictionary-encoded).

    Returns ``(table, line numbers of its rows, malformed lines)``.
    """
    malformed: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        malformed.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    text = pa.dictionary(pa.int32(), pa.string())
    block_size = csv_block_size(path.stat().st_size)

    def read(use_threads: bool, wanted: tuple[str, ...]) -> pa.Table:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=use_threads, block_size=block_size),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: text if name in _DICTIONARY_COLUMNS else pa.string() for name in wanted},
                include_columns=list(wanted),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    try:
        table = read(use_threads=True, wanted=columns)
        if malformed:
            # Line numbers of bad lines are only known in a single-threaded read; one cheap
            # column is enough for that, since a line's fields are counted whatever is kept.
            malformed.clear()
            read(use_threads=False, wanted=columns[:1])
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot be parsed as CSV: {exc}") from exc

    bad_lines = np.array([m[0] for m in malformed], dtype=np.int64)
    total = table.num_rows + len(bad_lines)
    # Physical line 1 is the header; data lines are 2..total+1 (no multi-line fields).
    lines = np.arange(2, total + 2, dtype=np.int64)
    if len(bad_lines):
        is_good = np.ones(total, dtype=bool)
        is_good[bad_lines[(bad_lines >= 2) & (bad_lines < total + 2)] - 2] = False
        lines = lines[is_good][: table.num_rows]
    bad = pd.DataFrame(
        {
            "line_number": bad_lines,
            RAW_LINE: pd.Series([m[1] for m in malformed], dtype="str"),
            REASON: pd.Series([malformed_reason(m[2], m[3]) for m in malformed],
                              dtype="str"),
        }
    )
    return table, lines, bad


def _str_column(values: pa.Array | pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """An Arrow string array as pandas' ``str`` dtype, without Python objects."""
    return pd.array(values, dtype="str")


#: Rows per chunk of the events frame's string columns. One take of a few MB per chunk, rather than
#: one of up to a hundred MB per column, fits in the memory the raw text and the CSV reader have just
#: freed, instead of asking the kernel for more (2 million rows: ingestion 0.80 s -> 0.74 s).
OUTPUT_CHUNK_ROWS = 1 << 17


def _events_frame(check: FieldCheck, lines: np.ndarray, rows: np.ndarray, timestamps: np.ndarray,
                  columns: tuple[str, ...]) -> pd.DataFrame:
    """The clean events of ``rows`` (already in output order), typed as the contract says;
    ``timestamps`` are those of ``rows``, already in order."""
    def column(name: str) -> object:
        if name in check.ids:
            return _str_column(check.ids[name].take(rows, OUTPUT_CHUNK_ROWS))
        if name == c.TIMESTAMP:
            return timestamps
        return getattr(check, name)[rows].astype(c.DTYPES[name], copy=False)

    # The gathers are independent and release the GIL: two threads take them in column order, the
    # uid strings (the largest) first, each thread the next column when it is free.
    with ThreadPoolExecutor(max_workers=2) as pool:
        data = {name: future.result() for name, future in [(name, pool.submit(column, name)) for name in columns]}
    consecutive = len(lines) == 0 or lines[-1] - lines[0] == len(lines) - 1  # no malformed line in between
    data[c.SOURCE_LINE] = rows + lines[0] if consecutive and len(lines) else lines[rows]
    return pd.DataFrame(data, copy=False)  # no copy into consolidated blocks


def read_events(path: str | Path, labelled: bool) -> IngestResult:
    """Read one mouse-event CSV.

    Parameters
    ----------
    path:
        The CSV file. Extra columns are ignored; a test file's ``user_id``
        column, if present, is ignored too.
    labelled:
        True for a training file (``user_id`` required), False for a test file.

    Returns
    -------
    IngestResult
        Clean events sorted by ``(session_id, timestamp)`` (stable: equal
        timestamps keep file order), the rejected rows with their reasons, and
        the row accounting.

    Raises
    ------
    EventFileError
        For a fault of the whole file: missing, empty, binary, unparseable,
        missing or misspelt columns, or a header with no data rows.
    """
    clock = LapClock()
    path = Path(path)
    if not path.exists():
        raise EventFileError(f"{path}: file not found")
    if not path.is_file():
        raise EventFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise EventFileError(f"{path}: file is empty (0 bytes); expected a CSV with a header")
    columns = c.expected_columns(labelled)
    _check_header(path, _read_header(path), labelled)
    table, lines, malformed = _read_table(path, columns)
    rows_read = table.num_rows + len(malformed)
    if rows_read == 0:
        raise EventFileError(f"{path}: has a header but no data rows")
    clock.lap("parse")
    # One contiguous uid array for the hash, the rules and the final gather (a take on a chunked
    # array concatenates its chunks first, every time).
    table = table.set_column(table.column_names.index(c.UID), c.UID, table.column(c.UID).combine_chunks())
    # The sort needs only the session ids and timestamps: it runs on a thread of its own while the
    # other rules run (Arrow and numpy release the GIL). A single worker runs its three steps in
    # order, so the sort finds the two parsed columns done.
    with ThreadPoolExecutor(max_workers=1) as sorter:
        session = sorter.submit(_parse_column, c.SESSION_ID, table.column(c.SESSION_ID))
        timestamp = sorter.submit(_parse_column, c.TIMESTAMP, table.column(c.TIMESTAMP))
        ordering = sorter.submit(_time_order, session, timestamp)
        check, keep, exact_duplicates, rejections = _validate(table, lines, labelled,
                                                              {c.SESSION_ID: session, c.TIMESTAMP: timestamp})
        clock.lap("validate")
        kept = sorter.submit(_kept_order, ordering, keep)  # after the sort, on its thread
        faulty = len(rejections.rows) > 0 or len(malformed) > 0
        # Meanwhile the raw values of the rejected rows are picked out, and the raw text released
        # before the events frame asks for fresh memory (the uids live on in ``check``).
        raw = _text_table(table, rejections.rows) if faulty else None
        del table
        rows, timestamps = kept.result()
    events = _events_frame(check, lines, rows, timestamps, columns)
    # After the events frame, not beside it: building the reasons holds the GIL, and the events
    # frame's two threads waited on it (the faulty benchmark file: 0.04 s more after validation,
    # against 0.09 s beside).
    rejected = (_rejected_frame(path, raw, lines, malformed, check, rejections, columns) if faulty else
                empty_rejected(columns))
    clock.lap("sort")
    return IngestResult(source_file=str(path), events=events, rejected=rejected, rows_read=rows_read,
                        exact_duplicates=exact_duplicates, timings=clock.laps)


def _kept_order(ordering: Future, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, their timestamps)``: the rows that ``keep`` marks, in the order of ``ordering``
    (:func:`_time_order`'s future)."""
    order, timestamps = ordering.result()
    if order is None:  # already in order, faulty rows included
        rows = np.flatnonzero(keep)
        return rows, timestamps if len(rows) == len(keep) else timestamps[rows]
    if len(keep) and not keep.all():  # the order of every row, less the rejected ones
        kept = keep[order]
        return order[kept], timestamps[kept]
    return order, timestamps


def _time_order(session: Future, timestamp: Future) -> tuple[np.ndarray | None, np.ndarray]:
    """``(order, timestamps in that order)`` of every row by ``(session_id, timestamp)``, stable
    (``order`` None when the rows are in order already), from the two parsed columns' futures.

    Rows that will be rejected stand in where they do not disturb the order of the others:

    * a row with a faulty timestamp takes the time of the last valid row before it when that row
      is of the same session, else the first valid time of its own session: the packed sort key
      keeps to each session's span (one bad row with another session's time would widen every
      session's field of the key, and slow its sort), and a file in order apart from its bad
      timestamps is still found in order;
    * a row with an empty or spreadsheet-mangled session id (rejected whatever else) takes the
      session and time of the last valid row before it.
    """
    ids, t = session.result(), timestamp.result()[0]
    ranks = _session_ranks(ids)
    doomed = ids.empty | ids.scientific
    stand_in = doomed | ~_in_time_range(t)
    if stand_in.all():  # every row will be rejected: any order does
        t = np.full_like(t, c.MIN_TIMESTAMP_MS)
    elif stand_in.any():
        rows = np.flatnonzero(stand_in)
        new_run = np.r_[True, rows[1:] != rows[:-1] + 1]
        source = (rows[new_run] - 1)[np.cumsum(new_run) - 1]  # the last row before each run
        source[source < 0] = np.argmin(stand_in)  # rows before the first valid one: that one
        ranks[rows[doomed[rows]]] = ranks[source[doomed[rows]]]  # ``ranks`` is this function's own
        t = t.copy()  # the parsed column is shared with the field check
        same = ranks[source] == ranks[rows]
        if not same.all():  # each session's first valid time
            never = np.iinfo(np.int64).max
            t[rows] = never
            start = np.full(int(ranks.max()) + 1, never)
            np.minimum.at(start, ranks, t)
            start[start == never] = int(start.min())  # sessions without a valid row: any valid time
            t[rows[~same]] = start[ranks[rows[~same]]]
        t[rows[same]] = t[source[same]]
    order, _, timestamps = sort_by_code_and_time(ranks, t)  # the sorted times come with the order
    return order, timestamps


@dataclass(frozen=True)
class _Rejections:
    """The rows that rules reject (ascending), and those of them that reuse an earlier row's uid
    with other content (with that reason)."""

    rows: np.ndarray
    reused: np.ndarray
    reused_reasons: list[str]


def _validate(table: pa.Table, lines: np.ndarray, labelled: bool, parsing: dict[str, Future]
              ) -> tuple[FieldCheck, np.ndarray, int, _Rejections]:
    """Every rule on every row: the field check, which rows are kept (a mask), the number of exact
    duplicates and the rejected rows. ``parsing`` holds the columns already being parsed elsewhere."""
    columns = c.expected_columns(labelled)
    with ThreadPoolExecutor(max_workers=1) as pool:  # Arrow and numpy release the GIL: two cores at work
        shared_uids = pool.submit(_repeated_uids, table, lines, columns)
        parsed = {name: _parse_column(name, table.column(name)) for name in columns if name not in parsing}
        parsed.update({name: future.result() for name, future in parsing.items()})
        duplicate, reused, reused_reasons = shared_uids.result()
    check = _field_check(table.num_rows, columns, parsed)
    faulty = check.faulty()
    faulty[duplicate] = False  # an exact duplicate is counted, whatever its content
    rejected_rows = np.union1d(np.flatnonzero(faulty), reused)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[duplicate] = False
    keep[rejected_rows] = False
    return check, keep, len(duplicate), _Rejections(rejected_rows, reused, reused_reasons)


def _rejected_frame(path: Path, raw: pa.Table, lines: np.ndarray, malformed: pd.DataFrame, check: FieldCheck,
                    rejections: _Rejections, columns: tuple[str, ...]) -> pd.DataFrame:
    """The rejected rows (``raw``: their raw values, from :func:`_text_table`; line numbers, reasons) and
    the malformed lines, sorted by line."""
    rows = rejections.rows
    reasons = check.reasons(rows, raw)
    for row, extra in zip(np.searchsorted(rows, rejections.reused), rejections.reused_reasons):
        reasons[row] = f"{reasons[row]}; {extra}" if reasons[row] else extra
    rejected = raw.to_pandas().assign(line_number=lines[rows], **{RAW_LINE: pd.NA, REASON: reasons})
    rejected = pd.concat([rejected, malformed], ignore_index=True) if len(malformed) else rejected
    rejected.insert(0, "source_file", str(path))
    rejected = rejected.sort_values("line_number", kind="stable").reset_index(drop=True)
    rejected = rejected.reindex(columns=empty_rejected(columns).columns)
    return rejected.astype({"line_number": "int64", RAW_LINE: "str", REASON: "str"})


def _session_ranks(session: IdColumn) -> np.ndarray:
    """Per row, the rank of its (trimmed) session id in sorted order; equal ids share a rank."""
    rank = numpy_values(pc.rank(session.values, sort_keys="ascending", tiebreaker="dense")).astype(np.int64) - 1
    return rank if session.codes is None else rank[session.codes]
