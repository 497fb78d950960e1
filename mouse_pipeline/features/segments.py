"""Events as sorted numpy arrays, cut into segments (sessions or windows).

:func:`segment_events` is the single sort of the feature code: events are
ordered by ``(session_id, timestamp)`` (stable) and every later step works on
contiguous runs of that order. A *segment* is the unit that gets one feature
row: a whole session, or a window of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mouse_pipeline import contract as c
from mouse_pipeline.cpu import numpy_sort_is_fast


@dataclass(frozen=True)
class SegmentedEvents:
    """Sorted event arrays plus the session of each event.

    Attributes
    ----------
    t, x, y, code:
        Timestamp (epoch ms, int64), screen position (px, float64) and event
        code of each event, sorted by session then time (as given: the
        feature code converts them chunk by chunk).
    session:
        Session number of each event (``0 .. n_sessions-1``, non-decreasing).
    session_ids:
        ``session_id`` of each session number.
    session_users:
        ``user_id`` of each session number, or None for unlabelled events.
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    code: np.ndarray
    session: np.ndarray
    session_ids: np.ndarray
    session_users: np.ndarray | None

    @property
    def n_events(self) -> int:
        return len(self.t)

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    @staticmethod
    def first_rows(session: np.ndarray) -> np.ndarray:
        """Row of the first event of each run of equal session numbers."""
        if len(session) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.r_[0, np.flatnonzero(session[1:] != session[:-1]) + 1]

    def session_starts(self) -> np.ndarray:
        """Row of the first event of each session."""
        return self.first_rows(self.session)

    def rank(self) -> np.ndarray:
        """Position of each event within its session (0-based)."""
        return np.arange(self.n_events, dtype=np.int64) - self.session_starts()[self.session]

    def slice(self, lo: int, hi: int) -> "SegmentedEvents":
        """Rows ``lo:hi`` (whole sessions), with sessions renumbered from 0."""
        first, last = int(self.session[lo]), int(self.session[hi - 1]) + 1
        return SegmentedEvents(
            t=self.t[lo:hi], x=self.x[lo:hi], y=self.y[lo:hi], code=self.code[lo:hi],
            session=self.session[lo:hi] - first,
            session_ids=self.session_ids[first:last],
            session_users=None if self.session_users is None else self.session_users[first:last],
        )


def arrow_text(column: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A text column as Arrow strings, without a copy for Arrow-backed columns; missing values are null."""
    try:
        array = pa.array(column.array, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects: their text, as pandas writes it
        array = pa.array(column.astype("str").array, from_pandas=True)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return array


def take_rows(values: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``values[rows]`` as one array, for a few rows: without joining a chunked array's chunks first,
    which Arrow's ``take`` does (a copy of the whole column)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(values)):
        raise IndexError(f"rows out of range for {len(values)} values")
    if not isinstance(values, pa.ChunkedArray):
        return values.take(pa.array(rows))
    if values.num_chunks == 0:
        return pa.array([], type=values.type)
    if values.num_chunks == 1:
        return values.chunk(0).take(pa.array(rows))
    bounds = np.cumsum([0] + [len(chunk) for chunk in values.chunks])
    chunk_of = np.searchsorted(bounds, rows, side="right") - 1
    by_chunk = np.argsort(chunk_of, kind="stable")
    sorted_chunks = chunk_of[by_chunk]
    parts = []
    for k in np.unique(sorted_chunks):  # one take per chunk that holds some of the rows
        lo, hi = np.searchsorted(sorted_chunks, [k, k + 1])
        parts.append(values.chunk(int(k)).take(pa.array(rows[by_chunk[lo:hi]] - bounds[k])))
    taken = pa.concat_arrays(parts) if parts else pa.array([], type=values.type)
    return taken.take(pa.array(np.argsort(by_chunk)))  # back to the order of ``rows``


def value_runs(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """The runs of equal neighbours of a column: ``(first, values)``, True for each row that starts
    a run, and the value of each run, as one array.

    A linear pass of neighbour comparisons, chunk by chunk (a filter, unlike a take, never joins
    the chunks). Ids come in long runs in sorted events, so what follows works on one value per
    run. A missing value is a run of its own.
    """
    if len(text) == 0:
        return np.zeros(0, dtype=bool), pa.array([], type=text.type)
    changed = pc.fill_null(pc.not_equal(text[1:], text[:-1]), True)
    first = np.r_[True, changed.to_numpy(zero_copy_only=False)]
    values = text.filter(pa.array(first))
    return first, values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def session_codes(session_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A code per row (``0 ..``, in order of first appearance) and the session id of each code.

    Rows grouped by session (as ingestion leaves them) are coded from their runs
    (:func:`value_runs`); otherwise by hashing (``pd.factorize``).
    """
    arr = arrow_text(session_id)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str)
    starts, run_values = value_runs(arr)
    ids = np.asarray(run_values.to_pylist(), dtype=object).astype(str)
    if len(np.unique(ids)) == len(ids):  # each session is one contiguous run
        return np.cumsum(starts, dtype=np.int64) - 1, ids
    codes, uniques = pd.factorize(session_id, sort=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object).astype(str)


def _in_order(codes: np.ndarray, t: np.ndarray, block: int = 1 << 20) -> bool:
    """Are rows sorted by (code, t)? Checked in blocks, so that no temporary is larger than a block."""
    for lo in range(0, len(codes) - 1, block):
        hi = min(lo + block, len(codes) - 1)
        before, after = codes[lo:hi], codes[lo + 1:hi + 1]
        if not (after >= before).all() or not ((after > before) | (t[lo + 1:hi + 1] >= t[lo:hi])).all():
            return False
    return True


def stable_order(codes: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """Stable order by (code, timestamp); equal keys keep input order.

    ``codes`` are non-negative integers (session numbers or ranks) and ``t``
    int64 timestamps, one per row. Returns None when the rows are already in
    that order (one linear check). See :func:`sort_by_code_and_time`.
    """
    return sort_by_code_and_time(codes, t)[0]


def sort_by_code_and_time(codes: np.ndarray, t: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """:func:`stable_order`, plus the codes and timestamps in that order: ``(order, codes, t)``.

    When code, time offset and row number fit together in 64 bits (sessions x
    time span x rows: 2**64 is a lot), they are packed into one uint64 key
    and sorted with :func:`sort_uint64`: no permutation array to carry, the
    row number comes back out of the key's low bits (and makes the order
    stable), and the sorted codes and timestamps out of its other bits, with
    no gather. Otherwise a two-key ``lexsort``. ``order`` is None when the
    rows are already in order (``codes`` and ``t`` come back as given).

    The time offset is taken from each code's own first time (codes no more
    numerous than rows), not from the earliest time overall: a session spans
    hours, the data months. The key then has fewer bits, and its top bits,
    which :func:`sort_uint64` buckets by, spread each session's rows over
    many buckets instead of a few: the sort within buckets has less to do
    (2 million rows of 60 sessions: 0.03 s instead of 0.085 s).
    """
    n = len(codes)
    if n == 0 or _in_order(codes, t):
        return None, codes, t
    lo, hi = int(t.min()), int(t.max())
    n_codes = int(codes.max()) + 1
    code_bits, row_bits = (n_codes - 1).bit_length(), (n - 1).bit_length()
    if hi - lo < 1 << 63 and n_codes <= n:  # no overflow in t - start, and a small table of starts
        start = np.full(n_codes, hi, dtype=np.int64)
        np.minimum.at(start, codes, t)
        offset = t - start[codes]
        t_bits = int(offset.max()).bit_length()
    else:
        start, offset, t_bits = None, None, (hi - lo).bit_length()
    if code_bits + t_bits + row_bits > 64:
        order = np.lexsort((t, codes))
        return order, codes[order], t[order]
    if offset is None:
        offset = t - lo
    key = codes.astype(np.uint64)
    key <<= np.uint64(t_bits + row_bits)
    offset = offset.view(np.uint64)
    offset <<= np.uint64(row_bits)
    key |= offset
    del offset
    key |= np.arange(n, dtype=np.uint64)
    key = sort_uint64(key)
    order = (key & np.uint64((1 << row_bits) - 1)).view(np.int64)
    key >>= np.uint64(row_bits)
    sorted_t = (key & np.uint64((1 << t_bits) - 1)).view(np.int64)
    key >>= np.uint64(t_bits)
    sorted_codes = key.view(np.int64)
    sorted_t += lo if start is None else start[sorted_codes]
    return order, sorted_codes, sorted_t


def sort_uint64(keys: np.ndarray) -> np.ndarray:
    """A sorted copy of a uint64 array, by the quickest route numpy has here.

    Where ``np.sort`` is a quick SIMD sort (:func:`mouse_pipeline.cpu.numpy_sort_is_fast`),
    that. Otherwise (no SIMD sort, or AVX-512 on an AMD Zen 4), about 1.5 times
    faster than ``np.sort`` on large arrays: one stable pass on the top 16
    bits in use (numpy sorts 16-bit integers with a radix sort) buckets the
    keys; numpy's stable sort (timsort) then finds ordered buckets, whose
    merges it gallops through. The sorted values are the same either way.
    """
    if len(keys) < 1 << 16 or numpy_sort_is_fast():
        return np.sort(keys)
    shift = max(int(keys.max()).bit_length() - 16, 0)
    bucketed = keys[np.argsort((keys >> np.uint64(shift)).astype(np.uint16), kind="stable")]
    bucketed.sort(kind="stable")
    return bucketed


def sort_events(events: pd.DataFrame) -> SegmentedEvents:
    """Sort once by ``(session_id, timestamp)`` and turn the frame into arrays.

    ``events`` has at least the test columns of the contract; ``user_id`` is
    used when present. Events already sorted (as ingestion leaves them) keep
    their order.
    """
    missing = [col for col in c.TEST_COLUMNS if col != c.UID and col not in events.columns]
    if missing:
        raise KeyError(f"events frame lacks column(s) {missing}")
    codes, session_ids = session_codes(events[c.SESSION_ID])
    t = events[c.TIMESTAMP].to_numpy(dtype=np.int64)
    order = stable_order(codes, t)

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    session = ordered(codes).astype(np.int64, copy=False)
    users = None
    if c.USER_ID in events.columns:  # one lookup per session, not a copy of the column
        first_rows = SegmentedEvents.first_rows(session)
        first_rows = first_rows if order is None else order[first_rows]
        column = arrow_text(events[c.USER_ID])
        users = np.asarray(take_rows(column, first_rows).to_pylist(), dtype=object).astype(str)
    return SegmentedEvents(
        t=ordered(t),
        x=ordered(events[c.SCREEN_X].to_numpy(dtype=np.float64)),
        y=ordered(events[c.SCREEN_Y].to_numpy(dtype=np.float64)),
        code=ordered(events[c.EVENT_TYPE].to_numpy()),
        session=session,
        session_ids=session_ids,
        session_users=users,
    )


def window_index(unit_rank: np.ndarray, unit_count: np.ndarray, size: int) -> np.ndarray:
    """Window number of each row, for windows of ``size`` units within a session.

    ``unit_rank`` is the rank of the row's unit (event or action) in its
    session and ``unit_count`` the number of units of the row's session. A
    session shorter than ``2*size`` units stays one window; otherwise the last
    window takes the remainder, so every window holds ``size`` to
    ``2*size - 1`` units. ``size <= 0`` means whole sessions.
    """
    if size <= 0:
        return np.zeros_like(unit_rank)
    n_windows = np.maximum(unit_count // size, 1)
    return np.minimum(unit_rank // size, n_windows - 1)
