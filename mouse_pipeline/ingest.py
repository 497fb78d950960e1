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
    good_lines = np.setdiff1d(np.arange(2, total + 2, dtype=np.int64), bad_lines)
    rows.insert(0, "line_number", good_lines[: len(rows)])
    bad = pd.DataFrame(
        {
            "line_number": bad_lines,
            RAW_LINE: [m[1] for m in malformed],
            REASON: [f"malformed line: expected {m[2]} fields, found {m[3]}" for m in malformed],
        }
    )
    return rows, bad


def _number(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.strip(), errors="coerce").astype("float64")


def _row_faults(rows: pd.DataFrame, labelled: bool) -> pd.Series:
    """One reason string per row ('' when the row is clean), all rows at once."""
    faults: list[pd.Series] = []

    def fault(mask: pd.Series | np.ndarray, message: pd.Series | str) -> None:
        faults.append(pd.Series(np.where(mask, message, ""), index=rows.index, dtype="str"))

    for name in (c.UID, c.SESSION_ID) + ((c.USER_ID,) if labelled else ()):
        fault(rows[name].str.strip() == "", f"{name} is empty")

    ts = _number(rows[c.TIMESTAMP])
    quoted_ts = "'" + rows[c.TIMESTAMP] + "'"
    fault(ts.isna() | (ts % 1 != 0), "timestamp " + quoted_ts + " is not an integer")
    fault(
        ts.notna() & (ts % 1 == 0) & ~ts.between(c.MIN_TIMESTAMP_MS, c.MAX_TIMESTAMP_MS - 1),
        "impossible timestamp " + quoted_ts + " (expected epoch milliseconds in 2000..2099)",
    )
    code = _number(rows[c.EVENT_TYPE])
    fault(
        ~code.isin(c.EVENT_CODES),
        "event_type '" + rows[c.EVENT_TYPE] + f"' is not one of {list(c.EVENT_CODES)}",
    )
    for name in (c.SCREEN_X, c.SCREEN_Y):
        value = _number(rows[name])
        fault(
            ~np.isfinite(value.to_numpy()),
            name + " '" + rows[name] + "' is not a finite number",
        )

    reasons = faults[0]
    for more in faults[1:]:
        reasons = reasons.where(more == "", reasons.where(reasons == "", reasons + "; ") + more)
    blank = (rows[list(c.expected_columns(labelled))] == "").all(axis=1)
    return reasons.mask(blank, "blank line")


def _conflicting_uids(rows: pd.DataFrame) -> pd.Series:
    """Reason for rows whose uid was already used by an earlier, different row."""
    first_line = rows.groupby(c.UID, sort=False)["line_number"].transform("first")
    repeated = rows[c.UID].duplicated(keep="first")
    reason = "duplicate uid '" + rows[c.UID] + "' with different content (first on line "
    reason = reason + first_line.astype("str") + ")"
    return pd.Series(np.where(repeated, reason, ""), index=rows.index, dtype="str")


def _typed_events(rows: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    events = pd.DataFrame(index=rows.index)
    for name in columns:
        if c.DTYPES[name] == "str":
            events[name] = rows[name].str.strip().astype("str")
        else:
            events[name] = _number(rows[name]).astype(c.DTYPES[name])
    events[c.SOURCE_LINE] = rows["line_number"].astype("int64")
    events = events.sort_values([c.SESSION_ID, c.TIMESTAMP], kind="stable")
    return events.reset_index(drop=True)


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

    duplicate = rows.duplicated(subset=list(columns), keep="first")
    exact_duplicates = int(duplicate.sum())
    rows = rows.loc[~duplicate]

    reasons = _row_faults(rows, labelled)
    conflicts = _conflicting_uids(rows)
    reasons = reasons.where(conflicts == "", reasons.where(reasons == "", reasons + "; ") + conflicts)
    bad = reasons != ""

    rejected = rows.loc[bad].assign(**{RAW_LINE: pd.NA, REASON: reasons[bad]})
    rejected = pd.concat([rejected, malformed], ignore_index=True)
    rejected.insert(0, "source_file", str(path))
    rejected = rejected.sort_values("line_number", kind="stable").reset_index(drop=True)
    rejected = rejected.reindex(columns=empty_rejected(columns).columns)
    rejected = rejected.astype({"line_number": "int64"})

    return IngestResult(
        source_file=str(path),
        events=_typed_events(rows.loc[~bad], columns),
        rejected=rejected,
        rows_read=rows_read,
        exact_duplicates=exact_duplicates,
    )
