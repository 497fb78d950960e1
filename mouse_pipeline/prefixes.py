"""Sessions cut to their first N actions: how much input a decision needs.

An *action* is what :func:`mouse_pipeline.features.actions.action_starts`
cuts a time-sorted session into (a move run, a point-and-click, a drag, a
wheel run; ``pause_ms`` splits runs). The prefix of N actions of a session
is every event before its (N+1)-th action starts. Prefixes of all sessions
for one N are built with array operations (no loop per session or event)
and get their own session ids, ``<session>@<N>``, so that one
:func:`~mouse_pipeline.features.extract_features` call featurises them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.features.actions import action_starts
from mouse_pipeline.features.segments import SegmentedEvents, sort_events
from mouse_pipeline.fusion import fuse

#: The numbers of actions the decision curve and claim scores report (points beyond every session are skipped).
DEFAULT_ACTION_COUNTS: tuple[int, ...] = (1, 5, 10, 20, 50, 100, 200, 500, 1000)
PREFIX_SEPARATOR = "@"


def action_ranks(se: SegmentedEvents, pause_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """The 0-based rank, within its session, of the action each sorted event belongs to (one per event),
    and the number of actions of each session (one per session number); both int64."""
    session_start = np.r_[True, se.session[1:] != se.session[:-1]] if se.n_events else np.zeros(0, bool)
    starts = action_starts(se.code.astype(np.int64), se.t.astype(np.float64), session_start, pause_ms)
    total = np.cumsum(starts)
    first = np.flatnonzero(session_start)
    ranks = (total - total[first][se.session]).astype(np.int64)
    counts = np.diff(np.r_[total[first], total[-1] + 1]).astype(np.int64) if len(first) else np.zeros(0, np.int64)
    return ranks, counts


def action_counts(events: pd.DataFrame, pause_ms: float) -> pd.Series:
    """Number of actions of each session (index: session id as text; values int64)."""
    se = sort_events(events)
    _, counts = action_ranks(se, pause_ms)
    return pd.Series(counts, index=pd.Index(se.session_ids.astype(str), name=c.SESSION_ID), name="n_actions")


def prefix_id(sessions: np.ndarray | pd.Index, n_actions: int) -> np.ndarray:
    """The session id of the N-action prefix of each session: ``<session>@<N>``."""
    return np.char.add(np.asarray(sessions).astype(str), f"{PREFIX_SEPARATOR}{n_actions}")


def prefix_events(events: pd.DataFrame, n_actions: int, pause_ms: float,
                  sessions: Sequence[str] | None = None) -> pd.DataFrame:
    """The first ``n_actions`` actions of every session that has at least that many.

    Parameters
    ----------
    events:
        Events with the contract's columns (any row order; ``user_id`` kept when present).
    n_actions:
        N, at least 1.
    pause_ms:
        The feature settings' pause (ms) that splits actions.
    sessions:
        Only these sessions (default: all).

    Returns
    -------
    pandas.DataFrame
        Time-sorted events of the prefixes with ``session_id`` = ``<session>@<N>`` (:func:`prefix_id`);
        sessions shorter than N actions are left out.
    """
    if n_actions < 1:
        raise ValueError("n_actions must be at least 1")
    se = sort_events(events)
    ranks, counts = action_ranks(se, pause_ms)
    keep = (ranks < n_actions) & (counts[se.session] >= n_actions)
    if sessions is not None:
        keep &= np.isin(se.session_ids.astype(str), np.asarray(sessions, dtype=str))[se.session]
    frame = pd.DataFrame({
        c.SESSION_ID: prefix_id(se.session_ids, n_actions)[se.session[keep]],
        c.TIMESTAMP: se.t[keep],
        c.EVENT_TYPE: se.code[keep],
        c.SCREEN_X: se.x[keep],
        c.SCREEN_Y: se.y[keep],
    })
    if se.session_users is not None:
        frame[c.USER_ID] = se.session_users[se.session[keep]]
    return frame


def source_session(prefix_ids: np.ndarray, n_actions: int) -> np.ndarray:
    """The original session id of each prefix id of N = ``n_actions`` (the inverse of :func:`prefix_id`)."""
    return pd.Series(np.asarray(prefix_ids).astype(str)).str[:-len(f"{PREFIX_SEPARATOR}{n_actions}")].to_numpy()


def prefix_scores(events: pd.DataFrame, config: FeatureConfig, n_actions: int, fusion: str, classes: np.ndarray,
                  proba_of: Callable[[pd.DataFrame, np.ndarray], np.ndarray],
                  sessions: Sequence[str] | None = None) -> pd.DataFrame:
    """Fused claim scores of the first ``n_actions`` actions of every session that has as many.

    The prefixes are featurised with ``config`` in one call (windows inside a prefix follow its rules);
    ``proba_of(features, source_sessions)`` gives their window probabilities (n_windows x len(classes)),
    and :func:`mouse_pipeline.fusion.fuse` fuses them. Returns a table indexed by the original session id
    (text) with one column per class; empty when no session (of ``sessions``, default all) is long enough.
    """
    prefixes = prefix_events(events, n_actions, config.pause_ms, sessions)
    if prefixes.empty:
        return pd.DataFrame(columns=np.asarray(classes).astype(str), dtype=np.float64)
    table = extract_features(prefixes, config)
    source = source_session(table[c.SESSION_ID].to_numpy(), n_actions)
    return fuse(proba_of(table, source), classes, source, fusion)


def reached_counts(counts: pd.Series, action_grid: Sequence[int]) -> list[int]:
    """The N of ``action_grid`` (sorted, unique) that at least one session reaches."""
    longest = int(counts.max()) if len(counts) else 0
    return sorted({int(n) for n in action_grid if 1 <= int(n) <= longest})
