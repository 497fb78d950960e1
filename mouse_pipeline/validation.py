"""Validation rules for clean event frames (plain functions; Dagster checks call them).

Each rule returns a :class:`RuleResult`: whether it holds, a table of the
offending sessions or users (empty when it holds), and summary numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one validation rule."""

    passed: bool
    offenders: pd.DataFrame
    summary: dict[str, float | int] = field(default_factory=dict)


def one_user_per_session(events: pd.DataFrame) -> RuleResult:
    """Every session belongs to exactly one user."""
    users = events.groupby(c.SESSION_ID, sort=True)[c.USER_ID].agg(["nunique", "unique"])
    bad = users[users["nunique"] > 1]
    offenders = pd.DataFrame(
        {
            c.SESSION_ID: bad.index.astype(str),
            "users": [", ".join(sorted(map(str, u))) for u in bad["unique"]],
        }
    )
    return RuleResult(bad.empty, offenders, {"sessions": len(users), "sessions_with_several_users": len(bad)})


def no_nulls(events: pd.DataFrame) -> RuleResult:
    """No missing value in any contract column (an empty or blank string counts as missing)."""
    columns = [col for col in c.TRAIN_COLUMNS if col in events.columns]
    missing = events[columns].isna()
    for col in columns:
        if c.DTYPES[col] == "str":
            missing[col] |= events[col].astype("str").str.strip().eq("")
    per_column = missing.sum()
    bad_rows = missing.any(axis=1)
    offenders = pd.DataFrame(
        {"column": per_column.index, "missing": per_column.to_numpy()}
    ).query("missing > 0").reset_index(drop=True)
    sessions = events.loc[bad_rows, c.SESSION_ID].dropna().astype(str).unique()
    offenders["sessions"] = ", ".join(sorted(sessions)[:20])
    return RuleResult(not bad_rows.any(), offenders, {"rows_with_nulls": int(bad_rows.sum())})


def sessions_per_user(events: pd.DataFrame) -> pd.DataFrame:
    """Sessions and events per user, sorted by user."""
    grouped = events.groupby(c.USER_ID, sort=True)
    return pd.DataFrame(
        {"sessions": grouped[c.SESSION_ID].nunique(), "events": grouped.size()}
    ).rename_axis(c.USER_ID).reset_index()


def enough_sessions_per_user(events: pd.DataFrame, min_sessions: int = 2) -> RuleResult:
    """Every user has at least ``min_sessions`` sessions (cross-validation needs 2)."""
    counts = sessions_per_user(events)
    bad = counts[counts["sessions"] < min_sessions].reset_index(drop=True)
    return RuleResult(
        bad.empty,
        bad,
        {"users": len(counts), "users_below_minimum": len(bad), "min_sessions": min_sessions},
    )


def users_balanced(events: pd.DataFrame, min_ratio: float = 0.5) -> RuleResult:
    """The smallest user has at least ``min_ratio`` times the sessions and events of the largest."""
    counts = sessions_per_user(events)
    summary: dict[str, float | int] = {"min_ratio": min_ratio}
    bad = np.zeros(len(counts), dtype=bool)
    for col in ("sessions", "events"):
        largest = counts[col].max()
        ratio = float(counts[col].min() / largest) if largest else 1.0
        summary[f"{col}_ratio"] = round(ratio, 4)
        bad |= (counts[col] < min_ratio * largest).to_numpy()
    offenders = counts[bad].reset_index(drop=True)
    passed = summary["sessions_ratio"] >= min_ratio and summary["events_ratio"] >= min_ratio
    return RuleResult(passed, offenders, summary)


def grammar_deviations(events: pd.DataFrame) -> RuleResult:
    """Count where the stream departs from the textbook grammar, per session.

    ``events`` must be sorted by ``(session_id, timestamp)`` (as ingestion
    leaves them). Counted: clicks not followed by a release, drag presses
    whose next non-move event is not a release, and releases whose previous
    non-move event is neither a click nor a drag press.
    """
    code = events[c.EVENT_TYPE].to_numpy()
    session = pd.factorize(events[c.SESSION_ID])[0]
    n = len(code)
    idx = np.arange(n)
    same_next = np.r_[session[1:] == session[:-1], False]
    next_code = np.r_[code[1:], 0]
    click_no_release = (code == c.EventType.CLICK) & ~(same_next & (next_code == c.EventType.RELEASE))

    non_move = code != c.EventType.MOVE
    # Next non-move event after i (strictly after), and previous non-move event before i.
    nxt = np.minimum.accumulate(np.where(non_move, idx, n)[::-1])[::-1]
    nxt_after = np.r_[nxt[1:], n]
    nxt_ok = nxt_after < n
    next_nm_code = np.where(nxt_ok, code[np.minimum(nxt_after, n - 1)], 0)
    next_same = nxt_ok & (session[np.minimum(nxt_after, n - 1)] == session)
    drag_no_release = (code == c.EventType.DRAG) & ~(next_same & (next_nm_code == c.EventType.RELEASE))

    prv = np.maximum.accumulate(np.where(non_move, idx, -1))
    prv_before = np.r_[-1, prv[:-1]]
    prv_ok = prv_before >= 0
    prev_nm_code = np.where(prv_ok, code[np.maximum(prv_before, 0)], 0)
    prev_same = prv_ok & (session[np.maximum(prv_before, 0)] == session)
    release_no_press = (code == c.EventType.RELEASE) & ~(
        prev_same & np.isin(prev_nm_code, (c.EventType.CLICK, c.EventType.DRAG))
    )
    per_session = pd.DataFrame(
        {
            c.SESSION_ID: events[c.SESSION_ID].to_numpy(),
            "clicks_without_release": click_no_release,
            "drags_without_release": drag_no_release,
            "releases_without_press": release_no_press,
        }
    ).groupby(c.SESSION_ID, sort=True).sum()
    offenders = per_session[per_session.sum(axis=1) > 0].reset_index()
    summary = {name: int(per_session[name].sum()) for name in per_session.columns}
    summary["sessions_with_deviations"] = len(offenders)
    return RuleResult(len(offenders) == 0, offenders, summary)
