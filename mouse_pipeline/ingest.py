"""Reading mouse-event CSV files into clean events plus rejected rows.

:func:`read_events` never drops a row silently. Every physical data line of
the file ends up in exactly one of three places:

* the clean events (typed as in :mod:`mouse_pipeline.contract`, sorted by
  ``(session_id, timestamp)``, stable, with the ``source_line`` it came from);
* the rejected rows, with the source file, line number, original values and
  the reason(s) for rejection;
* the count of exact duplicates (a row identical to an earlier one in every
  column, ``uid`` included).

A fault of the whole file (missing, empty, not CSV, a missing or misspelt
column) raises :class:`EventFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mouse_pipeline import contract as c

#: Columns of the rejected-rows frame, before the contract columns.
REJECT_COLUMNS: tuple[str, ...] = ("source_file", "line_number")
REASON = "reason"
RAW_LINE = "raw_line"


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
    frame = pd.DataFrame(
        {name: pd.Series(dtype="str") for name in (*REJECT_COLUMNS, *columns, RAW_LINE, REASON)}
    )
    return frame.astype({"line_number": "int64"})


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


def _read_strings(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the wanted columns as strings; return (rows, malformed lines)."""
    malformed: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        malformed.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    def read(use_threads: bool) -> pa.Table:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=use_threads),
            parse_options=pa_csv.ParseOptions(
                invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in columns},
                include_columns=list(columns),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    try:
        table = read(use_threads=True)
        if malformed:  # line numbers of bad lines are only known in a single-threaded read
            malformed.clear()
            table = read(use_threads=False)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot be parsed as CSV: {exc}") from exc

    rows = table.to_pandas()
    bad_lines = np.array([m[0] for m in malformed], dtype=np.int64)
    total = len(rows) + len(bad_lines)
    # Physical line 1 is the header; data lines are 2..total+1 (no multi-line fields).
    is_good = np.ones(total, dtype=bool)
    is_good[bad_lines[(bad_lines >= 2) & (bad_lines < total + 2)] - 2] = False
    good_lines = np.arange(2, total + 2, dtype=np.int64)[is_good]
    rows.insert(0, "line_number", good_lines[: len(rows)])
    bad = pd.DataFrame(
        {
            "line_number": bad_lines,
            RAW_LINE: [m[1] for m in malformed],
            REASON: [f"malformed line: expected {m[2]} fields, found {m[3]}" for m in malformed],
        }
    )
    return rows, bad


_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _parse_float(text: pd.Series) -> np.ndarray:
    """Numbers of a text column (NaN where the text is not a number), with pyarrow compute."""
    arr = pa.array(text.to_numpy(dtype=object) if text.dtype == object else text, type=pa.string())
    ok = pc.match_substring_regex(arr, _NUMBER)
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(arr), pa.scalar("nan"))
    return pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False)


def _blank(text: pd.Series) -> np.ndarray:
    arr = pa.array(text.to_numpy(dtype=object) if text.dtype == object else text, type=pa.string())
    return pc.equal(pc.utf8_trim_whitespace(arr), "").to_numpy(zero_copy_only=False)


def _row_faults(rows: pd.DataFrame, labelled: bool) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """The reason(s) each row is rejected ('' when clean) and the parsed numeric columns.

    Fault masks are computed for all rows at once; message strings are built
    only for the (few) faulty rows.
    """
    numbers = {name: _parse_float(rows[name]) for name in (c.TIMESTAMP, c.EVENT_TYPE, c.SCREEN_X, c.SCREEN_Y)}
    ts, code = numbers[c.TIMESTAMP], numbers[c.EVENT_TYPE]
    whole_ts = np.isfinite(ts) & (ts % 1 == 0)
    masks: list[tuple[np.ndarray, str, str | None]] = []  # (mask, message, column quoted in it)
    for name in (c.UID, c.SESSION_ID) + ((c.USER_ID,) if labelled else ()):
        masks.append((_blank(rows[name]), f"{name} is empty", None))
    masks.append((~whole_ts, "timestamp {} is not an integer", c.TIMESTAMP))
    masks.append((whole_ts & ((ts < c.MIN_TIMESTAMP_MS) | (ts >= c.MAX_TIMESTAMP_MS)),
                  "impossible timestamp {} (expected epoch milliseconds in 2000..2099)", c.TIMESTAMP))
    masks.append((~np.isin(code, c.EVENT_CODES), f"event_type {{}} is not one of {list(c.EVENT_CODES)}",
                  c.EVENT_TYPE))
    for name in (c.SCREEN_X, c.SCREEN_Y):
        masks.append((~np.isfinite(numbers[name]), f"{name} {{}} is not a finite number", name))

    any_fault = np.zeros(len(rows), dtype=bool)
    for mask, _, _ in masks:
        any_fault |= mask
    reasons = pd.Series("", index=rows.index, dtype="str")
    if any_fault.any():
        bad = rows.loc[any_fault]
        parts = []
        for mask, message, column in masks:
            hit = mask[any_fault]
            if column is None:
                parts.append(np.where(hit, message, ""))
            else:
                quoted = ("'" + bad[column].astype(str) + "'").to_numpy()
                parts.append(np.where(hit, [message.format(q) for q in quoted] if hit.any() else "", ""))
        joined = ["; ".join(p for p in row if p) for row in zip(*parts)]
        blank_line = (bad[list(c.expected_columns(labelled))] == "").all(axis=1).to_numpy()
        reasons.loc[any_fault] = np.where(blank_line, "blank line", joined)
    return reasons, numbers


def _conflicting_uids(rows: pd.DataFrame) -> pd.Series:
    """Reason for rows whose uid was already used by an earlier, different row."""
    reasons = pd.Series("", index=rows.index, dtype="str")
    repeated = rows[c.UID].duplicated(keep="first").to_numpy()
    if repeated.any():
        involved = rows.loc[rows[c.UID].duplicated(keep=False)]
        first_line = involved.groupby(c.UID, sort=False)["line_number"].transform("first")
        later = involved[c.UID].duplicated(keep="first")
        reasons.loc[later.index[later]] = (
            "duplicate uid '" + involved.loc[later, c.UID].astype(str) + "' with different content (first on line "
            + first_line[later].astype(str) + ")"
        )
    return reasons


def _typed_events(rows: pd.DataFrame, numbers: dict[str, np.ndarray], columns: tuple[str, ...]) -> pd.DataFrame:
    data = {}
    for name in columns:
        if c.DTYPES[name] == "str":
            arr = pa.array(rows[name].to_numpy(dtype=object) if rows[name].dtype == object else rows[name],
                           type=pa.string())
            data[name] = pd.Series(pc.utf8_trim_whitespace(arr).to_pandas(), index=rows.index).astype("str")
        else:
            data[name] = pd.Series(numbers[name], index=rows.index).astype(c.DTYPES[name])
    data[c.SOURCE_LINE] = rows["line_number"].astype("int64")
    events = pd.DataFrame(data)
    # One stable sort by (session, time): factorised session codes and int64 timestamps.
    session_code = pd.factorize(events[c.SESSION_ID], sort=True)[0]
    order = np.lexsort((events[c.TIMESTAMP].to_numpy(), session_code))
    return events.iloc[order].reset_index(drop=True)


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
    path = Path(path)
    if not path.exists():
        raise EventFileError(f"{path}: file not found")
    if not path.is_file():
        raise EventFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise EventFileError(f"{path}: file is empty (0 bytes); expected a CSV with a header")
    columns = c.expected_columns(labelled)
    _check_header(path, _read_header(path), labelled)
    rows, malformed = _read_strings(path, columns)
    rows_read = len(rows) + len(malformed)
    if rows_read == 0:
        raise EventFileError(f"{path}: has a header but no data rows")

    # An exact duplicate repeats a uid, so only rows whose uid repeats are compared in full.
    shared_uid = rows[c.UID].duplicated(keep=False).to_numpy()
    duplicate = np.zeros(len(rows), dtype=bool)
    if shared_uid.any():
        duplicate[shared_uid] = rows.loc[shared_uid].duplicated(subset=list(columns), keep="first").to_numpy()
    exact_duplicates = int(duplicate.sum())
    rows = rows.loc[~duplicate]

    reasons, numbers = _row_faults(rows, labelled)
    conflicts = _conflicting_uids(rows)
    reasons = reasons.where(conflicts == "", reasons.where(reasons == "", reasons + "; ") + conflicts)
    bad = (reasons != "").to_numpy()

    rejected = rows.loc[bad].assign(**{RAW_LINE: pd.NA, REASON: reasons[bad]})
    rejected = pd.concat([rejected, malformed], ignore_index=True)
    rejected.insert(0, "source_file", str(path))
    rejected = rejected.sort_values("line_number", kind="stable").reset_index(drop=True)
    rejected = rejected.reindex(columns=empty_rejected(columns).columns)
    rejected = rejected.astype({"line_number": "int64"})

    return IngestResult(
        source_file=str(path),
        events=_typed_events(rows.loc[~bad], {k: v[~bad] for k, v in numbers.items()}, columns),
        rejected=rejected,
        rows_read=rows_read,
        exact_duplicates=exact_duplicates,
    )
