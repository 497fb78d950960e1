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

from mouse_pipeline import contract as c


@dataclass(frozen=True)
class SegmentedEvents:
    """Sorted event arrays plus the segment id of each event.

    Attributes
    ----------
    t, x, y, code:
        Timestamp (ms, float64), screen position (px) and event code of each
        event, sorted by session then time.
    session:
        Session number of each event (``0 .. n_sessions-1``, non-decreasing).
    rank:
        Position of each event within its session (0-based).
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
    rank: np.ndarray
    session_ids: np.ndarray
    session_users: np.ndarray | None

    @property
    def n_events(self) -> int:
        return len(self.t)

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    def slice(self, lo: int, hi: int) -> "SegmentedEvents":
        """Rows ``lo:hi`` (whole sessions), with sessions renumbered from 0."""
        first, last = int(self.session[lo]), int(self.session[hi - 1]) + 1
        return SegmentedEvents(
            t=self.t[lo:hi], x=self.x[lo:hi], y=self.y[lo:hi], code=self.code[lo:hi],
            session=self.session[lo:hi] - first, rank=self.rank[lo:hi],
            session_ids=self.session_ids[first:last],
            session_users=None if self.session_users is None else self.session_users[first:last],
        )


def sort_order(codes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stable order by (session code, timestamp); equal timestamps keep input order.

    Input that is already sorted (as ingestion leaves it) costs one linear
    check. Otherwise both keys are packed into one int64 when their ranges
    fit in 63 bits (one stable argsort), else a two-key ``lexsort``.
    """
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    step_code = np.diff(codes)
    if (step_code >= 0).all() and ((step_code > 0) | (np.diff(t) >= 0)).all():
        return np.arange(n, dtype=np.int64)
    t_span = int(t.max() - t.min())
    code_bits, t_bits = int(codes.max()).bit_length(), t_span.bit_length()
    if code_bits + t_bits <= 63:
        key = (codes.astype(np.int64) << t_bits) | (t - t.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((t, codes))


def sort_events(events: pd.DataFrame) -> SegmentedEvents:
    """Sort once by ``(session_id, timestamp)`` and turn the frame into arrays.

    ``events`` has at least the test columns of the contract; ``user_id`` is
    used when present. Events already sorted (as ingestion leaves them) keep
    their order.
    """
    missing = [col for col in c.TEST_COLUMNS if col != c.UID and col not in events.columns]
    if missing:
        raise KeyError(f"events frame lacks column(s) {missing}")
    codes, session_ids = pd.factorize(events[c.SESSION_ID], sort=False)  # appearance order
    t = events[c.TIMESTAMP].to_numpy(dtype=np.int64)
    order = sort_order(codes, t)
    session = codes[order].astype(np.int64)
    n = len(session)
    starts = np.r_[0, np.flatnonzero(np.diff(session)) + 1] if n else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
    users = None
    if c.USER_ID in events.columns:  # one lookup per session, not a copy of the column
        users = events[c.USER_ID].iloc[order[starts]].to_numpy().astype(str)
    return SegmentedEvents(
        t=(t[order] - (t[order][starts][session] if n else 0)).astype(np.float64),
        x=events[c.SCREEN_X].to_numpy(dtype=np.float64)[order],
        y=events[c.SCREEN_Y].to_numpy(dtype=np.float64)[order],
        code=events[c.EVENT_TYPE].to_numpy(dtype=np.int64)[order],
        session=session,
        rank=rank,
        session_ids=np.asarray(session_ids, dtype=object).astype(str),
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
