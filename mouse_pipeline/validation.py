"""Validation rules for clean event frames (plain functions; Dagster checks call them).

Each rule returns a :class:`RuleResult`: whether it holds, a table of the
offending sessions or users (empty when it holds), and summary numbers.

:func:`event_rules` computes every rule in one go from the events frame
already in memory (the ingestion step's output): the id columns are encoded
once into integer codes (:class:`EventIndex`), and each rule is a few
``bincount``, ``diff`` and mask operations over those codes, no ``groupby``
and no Python loop per session or user. The rules are a registry of named
functions (:data:`EVENT_RULES`), so a rule is added, changed or dropped in
one place. The single-rule functions (:func:`one_user_per_session`, ...) run
the same code on a fresh index.

Missing ids (null, empty or blank) belong to no session and no user: rules
about sessions and users ignore them, :func:`no_nulls` reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mouse_pipeline import contract as c
from mouse_pipeline.features.segments import arrow_text, stable_order, value_runs
from mouse_pipeline.ingest import bool_mask, numpy_values


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one validation rule."""

    passed: bool
    offenders: pd.DataFrame
    summary: dict[str, float | int] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSettings:
    """Limits of the rules that have them.

    Attributes
    ----------
    min_events_per_user:
        ``enough_events_per_user`` fails (and warns) for a user with fewer
        events, in any number of sessions: that user is left out of training
        (see :mod:`mouse_pipeline.enrolment`).
    min_balance_ratio:
        ``users_balanced`` fails when the smallest user has fewer than this
        share of the largest user's sessions or events.
    max_deviating_share:
        ``event_grammar`` fails when more than this share of sessions depart
        from the grammar (as the log's dialect reads it).
    min_release_share:
        Below this many releases per press, the log is read as one that does
        not record releases (its dialect), see ``event_grammar``.
    """

    min_events_per_user: int = 100
    min_balance_ratio: float = 0.5
    max_deviating_share: float = 0.05
    min_release_share: float = 0.2


def _blank(text: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null, empty or whitespace only (what ``str.strip() == ""`` calls blank)."""
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    return bool_mask(pc.or_kleene(pc.is_null(text), blank) if text.null_count else blank)


@dataclass(frozen=True)
class Codes:
    """A text column as integer codes: ``codes[i]`` indexes ``ids`` (sorted), -1 where missing."""

    codes: np.ndarray
    ids: pd.arrays.ArrowStringArray
    blank: np.ndarray

    @classmethod
    def of(cls, series: pd.Series) -> "Codes":
        """Code a column in one pass: the runs of equal neighbours are found first (sessions and
        users come in long runs in sorted events), and only one value per run is hashed."""
        text = arrow_text(series)  # chunked or not: every step below works chunk by chunk
        n = len(text)
        if n == 0:
            return cls(np.zeros(0, dtype=np.int64), pd.array([], dtype="str"), np.zeros(0, dtype=bool))
        first, run_values = value_runs(text)
        starts = np.flatnonzero(first)
        encoded = pc.dictionary_encode(run_values)
        dictionary = encoded.dictionary
        # Sorted ids without the blank ones; codes follow the sort order of the ids.
        present = np.flatnonzero(~_blank(dictionary))
        order = pc.sort_indices(dictionary.take(pa.array(present))).to_numpy()
        rank = np.full(len(dictionary) + 1, -1, dtype=np.int64)  # the last slot: null rows
        rank[present[order]] = np.arange(len(present))
        run_codes = rank[numpy_values(pc.fill_null(encoded.indices, len(dictionary)))]
        codes = np.repeat(run_codes, np.diff(np.r_[starts, n]))
        ids = pd.array(dictionary.take(pa.array(present[order])), dtype="str")
        return cls(codes=codes, ids=ids, blank=codes < 0)

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class EventIndex:
    """What every rule needs from an events frame, computed once.

    ``session`` and ``user`` (None for unlabelled events) code the id columns;
    ``order`` puts the rows in ``(session_id, timestamp)`` order (None when
    they already are, as ingestion leaves them); ``pairs`` are the distinct
    ``(session, user)`` code pairs, sorted.
    """

    events: pd.DataFrame
    session: Codes
    user: Codes | None
    order: np.ndarray | None
    pairs: np.ndarray | None

    @classmethod
    def of(cls, events: pd.DataFrame, pool: ThreadPoolExecutor | None = None) -> "EventIndex":
        """The index of ``events``; with a ``pool``, the user ids are coded on it meanwhile."""
        user_column = events[c.USER_ID] if c.USER_ID in events.columns else None
        user = pool.submit(Codes.of, user_column) if pool is not None and user_column is not None else None
        session = Codes.of(events[c.SESSION_ID])
        if user_column is not None:
            user = user.result() if user is not None else Codes.of(user_column)
        order = None
        if c.TIMESTAMP in events.columns and len(events):
            t = events[c.TIMESTAMP].to_numpy()
            if np.issubdtype(t.dtype, np.integer):
                order = stable_order(session.codes + 1, t.astype(np.int64, copy=False))
        pairs = None
        if user is not None:
            # Distinct pairs from the runs of equal pairs (a handful per session in sorted events): the
            # first row of each run, less those with a missing id.
            s, u = session.codes, user.codes
            first = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (u[1:] != u[:-1])]) if len(s) else s
            s, u = s[first], u[first]
            both = (s >= 0) & (u >= 0)
            pairs = np.unique(s[both] * max(user.n, 1) + u[both])
        return cls(events=events, session=session, user=user, order=order, pairs=pairs)

    def users_per_session(self) -> np.ndarray:
        """Number of distinct users of each session (by session code)."""
        return np.bincount(self.pairs // max(self.user.n, 1), minlength=self.session.n)

    def user_counts(self) -> pd.DataFrame:
        """Sessions and events per user, sorted by user (the rows of missing users left out)."""
        return self._user_counts.copy()

    @cached_property
    def _user_counts(self) -> pd.DataFrame:
        sessions = np.bincount(self.pairs % max(self.user.n, 1), minlength=self.user.n)
        events = np.bincount(self.user.codes[self.user.codes >= 0], minlength=self.user.n)
        return pd.DataFrame({c.USER_ID: self.user.ids, "sessions": sessions.astype(np.int64),
                             "events": events.astype(np.int64)})


def _one_user_per_session(index: EventIndex, settings: RuleSettings) -> RuleResult:
    """Every session belongs to exactly one user."""
    n_users = index.users_per_session()
    bad = np.flatnonzero(n_users > 1)
    in_bad = np.isin(index.pairs // max(index.user.n, 1), bad)
    bad_pairs = index.pairs[in_bad]  # sorted by session, then by user id
    session_of = bad_pairs // max(index.user.n, 1)
    names = np.asarray(index.user.ids)[bad_pairs % max(index.user.n, 1)]
    cuts = np.flatnonzero(np.diff(session_of)) + 1
    offenders = pd.DataFrame({
        c.SESSION_ID: pd.array(np.asarray(index.session.ids)[bad], dtype="str"),
        "users": pd.array([", ".join(group) for group in np.split(names, cuts)] if len(bad) else [], dtype="str"),
    })
    return RuleResult(len(bad) == 0, offenders, {"sessions": index.session.n, "sessions_with_several_users": len(bad)})


def _no_nulls(index: EventIndex, settings: RuleSettings) -> RuleResult:
    """No missing value in any contract column (an empty or blank string counts as missing)."""
    events = index.events
    missing: dict[str, np.ndarray] = {}
    for col in (col for col in c.TRAIN_COLUMNS if col in events.columns):
        if col == c.SESSION_ID:
            missing[col] = index.session.blank
        elif col == c.USER_ID:
            missing[col] = index.user.blank
        elif c.DTYPES[col] == "str":
            missing[col] = _blank(arrow_text(events[col]))
        else:
            missing[col] = events[col].isna().to_numpy()
    bad_rows = np.zeros(len(events), dtype=bool)
    for mask in missing.values():
        bad_rows |= mask
    per_column = {col: int(mask.sum()) for col, mask in missing.items()}
    offenders = pd.DataFrame({"column": list(per_column), "missing": list(per_column.values())})
    offenders = offenders[offenders["missing"] > 0].reset_index(drop=True)
    sessions = np.unique(index.session.codes[bad_rows & (index.session.codes >= 0)])[:20]
    offenders["sessions"] = ", ".join(np.asarray(index.session.ids)[sessions])
    return RuleResult(not bad_rows.any(), offenders, {"rows_with_nulls": int(bad_rows.sum())})


def _enough_events_per_user(index: EventIndex, settings: RuleSettings) -> RuleResult:
    """Every user has at least ``min_events_per_user`` events, in any number of sessions (one long
    session is enough: it is cut into time blocks for validation)."""
    counts = index.user_counts()
    minimum = settings.min_events_per_user
    bad = counts[counts["events"] < minimum].reset_index(drop=True)
    return RuleResult(bad.empty, bad, {"users": len(counts), "users_below_minimum": len(bad),
                                       "min_events_per_user": minimum})


def _users_balanced(index: EventIndex, settings: RuleSettings) -> RuleResult:
    """The smallest user has at least ``min_balance_ratio`` times the sessions and events of the largest."""
    counts = index.user_counts()
    min_ratio = settings.min_balance_ratio
    summary: dict[str, float | int] = {"min_ratio": min_ratio}
    bad = np.zeros(len(counts), dtype=bool)
    for col in ("sessions", "events"):
        largest = counts[col].max() if len(counts) else 0
        ratio = float(counts[col].min() / largest) if largest else 1.0
        summary[f"{col}_ratio"] = round(ratio, 4)
        bad |= (counts[col] < min_ratio * largest).to_numpy()
    offenders = counts[bad].reset_index(drop=True)
    passed = summary["sessions_ratio"] >= min_ratio and summary["events_ratio"] >= min_ratio
    return RuleResult(passed, offenders, summary)


def _grammar_deviations(index: EventIndex, settings: RuleSettings) -> RuleResult:
    """Where the stream departs from the textbook grammar, per session, judged against the log's dialect.

    Events are taken in ``(session_id, timestamp)`` order (sorted here if
    they are not already). Counted: clicks not followed by a release, drag
    presses whose next non-move event is not a release, and releases whose
    previous non-move event is neither a click nor a drag press.

    Some loggers never record releases (the Kaggle data has one release for
    1,220 presses): when releases are fewer than ``min_release_share`` of the
    presses, a press without a release is that log's convention, reported as
    its dialect, not counted as a deviation. The rule fails (a warning) only
    when the share of sessions with deviations exceeds
    ``max_deviating_share``; the summary says which deviations occur and how often.
    """
    result = _grammar_counts(index)
    counts = result.offenders
    totals = result.summary
    presses = totals["clicks"] + totals["drags"]
    release_share = totals["releases"] / presses if presses else 1.0
    releases_logged = release_share >= settings.min_release_share
    counted = ["clicks_without_release", "drags_without_release", "releases_without_press"]
    if not releases_logged:
        counted = ["releases_without_press"]
    deviating = counts[counts[counted].sum(axis=1) > 0].reset_index(drop=True)
    n_sessions = totals["sessions"]
    share = len(deviating) / n_sessions if n_sessions else 0.0
    summary = {
        "sessions": n_sessions,
        "sessions_with_deviations": len(deviating),
        "deviating_share": round(share, 4),
        "max_deviating_share": settings.max_deviating_share,
        "dialect": ("textbook: presses end in releases" if releases_logged else
                    f"releases not logged ({totals['releases']:,} releases for {presses:,} presses): a press "
                    "without a release is not a deviation"),
        **{name: totals[name] for name in ("clicks_without_release", "drags_without_release",
                                            "releases_without_press")},
        **{f"sessions_{name}": int((counts[name] > 0).sum()) for name in counted},
    }
    return RuleResult(share <= settings.max_deviating_share, deviating, summary)


def _grammar_counts(index: EventIndex) -> RuleResult:
    """Per-session counts of the grammar's deviations (offenders: every session), and totals."""
    code = index.events[c.EVENT_TYPE].to_numpy()
    session = index.session.codes
    if index.order is not None:
        code, session = code[index.order], session[index.order]
    n = len(code)
    flagged = []
    # A click must be followed, in its session, by a release.
    click = np.flatnonzero(code == c.EventType.CLICK)
    after = np.minimum(click + 1, max(n - 1, 0))
    released = (click + 1 < n) & (session[after] == session[click]) & (code[after] == c.EventType.RELEASE)
    flagged.append(click[~released])
    # Drags and releases pair up across moves: only the (few) non-move events are looked at.
    other = np.flatnonzero(code != c.EventType.MOVE)
    other_code, other_session = code[other], session[other]
    same_as_next = np.r_[other_session[1:] == other_session[:-1], False]
    next_code = np.r_[other_code[1:], 0]
    drag = other_code == c.EventType.DRAG
    flagged.append(other[drag & ~(same_as_next & (next_code == c.EventType.RELEASE))])
    same_as_prev = np.r_[False, same_as_next[:-1]]
    prev_code = np.r_[0, other_code[:-1]]
    pressed = same_as_prev & ((prev_code == c.EventType.CLICK) | (prev_code == c.EventType.DRAG))
    flagged.append(other[(other_code == c.EventType.RELEASE) & ~pressed])
    names = ("clicks_without_release", "drags_without_release", "releases_without_press")
    per_session = {}
    for name, rows in zip(names, flagged):
        sessions = session[rows]
        per_session[name] = np.bincount(sessions[sessions >= 0], minlength=index.session.n).astype(np.int64)
    every = np.arange(index.session.n)
    table = pd.DataFrame({c.SESSION_ID: pd.array(np.asarray(index.session.ids)[every], dtype="str"),
                          **{name: counts[every] for name, counts in per_session.items()}})
    summary = {name: int(counts.sum()) for name, counts in per_session.items()}
    summary.update(sessions=int(index.session.n), clicks=int((code == c.EventType.CLICK).sum()),
                   drags=int((code == c.EventType.DRAG).sum()), releases=int((code == c.EventType.RELEASE).sum()))
    return RuleResult(True, table, summary)


@dataclass(frozen=True)
class Rule:
    """A named rule: its function and whether it needs labelled events (a ``user_id`` column)."""

    check: Callable[[EventIndex, RuleSettings], RuleResult]
    needs_labels: bool = False


#: Every rule on event frames, by the name of the asset check that reports it.
EVENT_RULES: dict[str, Rule] = {
    "one_user_per_session": Rule(_one_user_per_session, needs_labels=True),
    "no_nulls": Rule(_no_nulls),
    "enough_events_per_user": Rule(_enough_events_per_user, needs_labels=True),
    "users_balanced": Rule(_users_balanced, needs_labels=True),
    "event_grammar": Rule(_grammar_deviations),
}


def event_rules(events: pd.DataFrame, settings: RuleSettings = RuleSettings(),
                names: Iterable[str] | None = None) -> dict[str, RuleResult]:
    """Every rule (or those of ``names``) on ``events``, from one shared :class:`EventIndex`.

    ``events`` is an events frame as ingestion returns it (any row order is
    fine). Rules that need ``user_id`` are left out for unlabelled events
    unless named explicitly, which is then a KeyError. Returns the results
    by rule name, in :data:`EVENT_RULES` order.
    """
    labelled = c.USER_ID in events.columns
    if names is None:
        wanted = [name for name, rule in EVENT_RULES.items() if labelled or not rule.needs_labels]
    else:
        wanted = list(names)
        unknown = [name for name in wanted if name not in EVENT_RULES]
        if unknown:
            raise KeyError(f"unknown rule(s) {unknown}: choose from {list(EVENT_RULES)}")
        unlabelled = [name for name in wanted if EVENT_RULES[name].needs_labels and not labelled]
        if unlabelled:
            raise KeyError(f"rule(s) {unlabelled} need a {c.USER_ID} column")
    # The rules read the shared index and nothing else: two run at a time (numpy and Arrow release the GIL).
    with ThreadPoolExecutor(max_workers=2) as pool:
        index = EventIndex.of(events, pool)
        results = {name: pool.submit(EVENT_RULES[name].check, index, settings) for name in EVENT_RULES
                   if name in wanted}
        return {name: result.result() for name, result in results.items()}


def one_user_per_session(events: pd.DataFrame) -> RuleResult:
    """Every session belongs to exactly one user."""
    return event_rules(events, names=["one_user_per_session"])["one_user_per_session"]


def no_nulls(events: pd.DataFrame) -> RuleResult:
    """No missing value in any contract column (an empty or blank string counts as missing)."""
    return event_rules(events, names=["no_nulls"])["no_nulls"]


def sessions_per_user(events: pd.DataFrame) -> pd.DataFrame:
    """Sessions and events per user, sorted by user."""
    return EventIndex.of(events).user_counts()


def enough_events_per_user(events: pd.DataFrame,
                           min_events: int = RuleSettings.min_events_per_user) -> RuleResult:
    """Every user has at least ``min_events`` events, in any number of sessions.

    Offenders: one row per user below the minimum (``user_id``, ``sessions``, ``events``).
    """
    settings = RuleSettings(min_events_per_user=min_events)
    return event_rules(events, settings, names=["enough_events_per_user"])["enough_events_per_user"]


def users_balanced(events: pd.DataFrame, min_ratio: float = 0.5) -> RuleResult:
    """The smallest user has at least ``min_ratio`` times the sessions and events of the largest."""
    return event_rules(events, RuleSettings(min_balance_ratio=min_ratio), names=["users_balanced"])["users_balanced"]


def grammar_deviations(events: pd.DataFrame, settings: RuleSettings = RuleSettings()) -> RuleResult:
    """The ``event_grammar`` rule: the share of sessions that depart from the grammar, as the log's dialect
    reads it, against ``settings.max_deviating_share``."""
    return event_rules(events, settings, names=["event_grammar"])["event_grammar"]


def grammar_counts(events: pd.DataFrame) -> RuleResult:
    """Raw counts of the grammar's deviations: one row per session (``offenders``), totals in ``summary``."""
    return _grammar_counts(EventIndex.of(events))
