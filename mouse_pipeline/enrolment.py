"""Enrolment: which users can be trained, and how each is validated.

A new account usually has one recorded session. Such a user is enrolled
like any other: their session is cut in time, at event level and before any
featurisation, into consecutive blocks that act as pseudo-sessions
(``<session>#1``, ``<session>#2``, ...), so the session-grouped folds hold
out whole blocks and no window straddles a cut. Users with several sessions
keep cross-session validation; a mix of both works.

A score from blocks of one session is less trustworthy than a cross-session
one (same day, same device, same mood): :class:`Enrolment` states per user how
they were validated, and how many users were validated by blocks.

A user without enough events to learn from is left out of training with a
message naming them (:func:`enough_events_per_user`); fewer than two users
left is an :class:`EnrolmentError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.selection_settings import SelectionSettings
from mouse_pipeline.validation import EVENT_RULES, EventIndex, RuleResult, RuleSettings

#: Separates a session id from its block number in a pseudo-session id.
BLOCK_SEPARATOR = "#"
#: Validation modes of a user.
BY_SESSIONS = "sessions"
BY_BLOCKS = "blocks within one session"


class EnrolmentError(ValueError):
    """Training is impossible: fewer than two users can be enrolled."""


@dataclass(frozen=True)
class Enrolment:
    """Training events ready for model selection, and how each user is validated.

    Attributes
    ----------
    events:
        The events of the enrolled users; a single-session user's events carry
        pseudo-session ids ``<session>#<block>``.
    users:
        One row per enrolled user: ``user_id``, ``sessions`` (recorded),
        ``events``, ``validation`` (:data:`BY_SESSIONS` or :data:`BY_BLOCKS`) and
        ``validation_groups`` (sessions, or blocks, that the folds deal out).
    left_out:
        One row per user left out of training: ``user_id``, ``sessions``,
        ``events`` and ``reason``.
    rule:
        The :func:`enough_events_per_user` result on the input events.
    recorded_session:
        The recorded session of every (pseudo-)session id of ``events``.
    """

    events: pd.DataFrame
    users: pd.DataFrame
    left_out: pd.DataFrame
    rule: RuleResult
    recorded_session: pd.Series

    @property
    def users_validated_by_blocks(self) -> int:
        return int((self.users["validation"] == BY_BLOCKS).sum())

    def messages(self) -> list[str]:
        """One line per user left out, then one about block validation if any."""
        lines = [f"user {row.user_id} left out of training: {row.reason}" for row in self.left_out.itertuples()]
        if self.users_validated_by_blocks:
            lines.append(f"{self.users_validated_by_blocks} of {len(self.users)} users have one session and are "
                         "validated on time blocks of it: their scores are less trustworthy than cross-session ones")
        return lines


def prepare_training_events(events: pd.DataFrame, settings: SelectionSettings = SelectionSettings()) -> Enrolment:
    """Leave out users with too few events, cut single-session users into time blocks.

    ``events`` are labelled events (any row order). A user with at least
    ``settings.min_events_per_user`` events and a single session gets
    :func:`block_count` blocks of consecutive events. Raises
    :class:`EnrolmentError` when fewer than two users remain.
    """
    index = EventIndex.of(events)  # one index (one sort) for the rule and the counts
    rule = EVENT_RULES["enough_events_per_user"].check(
        index, RuleSettings(min_events_per_user=settings.min_events_per_user))
    counts = index.user_counts()
    too_few = counts[c.USER_ID].isin(rule.offenders[c.USER_ID])
    left_out = counts[too_few].assign(
        reason=lambda t: [f"{n} events, fewer than the {settings.min_events_per_user} needed" for n in t["events"]]
    ).reset_index(drop=True)
    enrolled = counts[~too_few].reset_index(drop=True)
    if len(enrolled) < 2:
        raise EnrolmentError(
            f"{len(enrolled)} user(s) with at least {settings.min_events_per_user} events; identification needs "
            f"two or more (left out: {', '.join(left_out[c.USER_ID]) or 'none'})")
    kept = events[events[c.USER_ID].isin(enrolled[c.USER_ID])].reset_index(drop=True)
    single = enrolled["sessions"] == 1
    blocks = enrolled["events"].map(lambda n: block_count(n, settings))
    enrolled["validation"] = np.where(single, BY_BLOCKS, BY_SESSIONS)
    enrolled["validation_groups"] = np.where(single, blocks, enrolled["sessions"])
    of_single = kept[c.USER_ID].isin(enrolled.loc[single, c.USER_ID])
    single_sessions = kept[of_single].groupby(c.SESSION_ID)[c.USER_ID].first()
    block_of_user = dict(zip(enrolled[c.USER_ID], blocks))
    prepared = split_sessions(kept, {str(s): block_of_user[u] for s, u in single_sessions.items()})
    recorded = pd.Series(kept[c.SESSION_ID].astype(str).to_numpy(),
                         index=prepared[c.SESSION_ID].astype(str).to_numpy())
    recorded = recorded[~recorded.index.duplicated()].sort_index().rename("recorded_session")
    return Enrolment(prepared, enrolled, left_out, rule, recorded)


def block_count(n_events: int, settings: SelectionSettings) -> int:
    """Blocks of a single session of ``n_events`` events.

    As long as the sessions to be scored (``settings.scored_session_events``)
    when that is known, else one per fold; each block holds at least half the
    per-user minimum of events; at least two blocks, at most one per fold.
    Blocks much shorter than the sessions to be scored would make
    whole-session rows look unlike them (a 450-event block is no model of a
    900-event test session) and cross-validation would not notice.
    """
    smallest = max(settings.min_events_per_user // 2, 1)
    length = settings.scored_session_events
    wanted = round(n_events / length) if length > 0 else settings.n_splits
    return int(np.clip(min(wanted, n_events // smallest), 2, settings.n_splits))


def split_sessions(events: pd.DataFrame, pieces: dict[str, int], separator: str = BLOCK_SEPARATOR) -> pd.DataFrame:
    """Sessions cut in time into consecutive pieces of (almost) equal numbers of events.

    ``pieces`` maps a session id to its number of pieces; a piece's session id
    becomes ``<session><separator><piece>`` (1-based). Sessions not in
    ``pieces``, or with one piece, are unchanged; the row order is kept. Ties
    in time keep the input order, as the feature code sorts. A piece's id that
    is already another session's id is a ValueError naming both, rather than
    two sessions silently merged.
    """
    ids = events[c.SESSION_ID].astype(str).to_numpy()
    clashes = sorted({f"{s}{separator}{p}" for s, n in pieces.items() if n > 1 for p in range(1, n + 1)}
                     & set(np.unique(ids)))
    if clashes:
        piece_of = clashes[0].rsplit(separator, 1)[0]
        raise ValueError(f"session id {clashes[0]!r} is also the id that piece {clashes[0].rsplit(separator, 1)[1]} "
                         f"of session {piece_of!r} would get ({len(clashes)} such id(s)): rename that session "
                         f"(ids ending in '{separator}<number>' are taken by the pieces of long or single sessions)")
    k_of_row = pd.Series(ids).map(pieces).fillna(1).astype(np.int64).to_numpy()
    rows = np.flatnonzero(k_of_row > 1)
    if len(rows) == 0:
        return events
    session = ids[rows]
    order = np.lexsort((rows, events[c.TIMESTAMP].to_numpy()[rows], session))
    ordered = pd.Series(session[order])
    rank = ordered.groupby(ordered.to_numpy()).cumcount().to_numpy()
    size = ordered.map(ordered.value_counts()).to_numpy()
    piece = rank * k_of_row[rows][order] // size + 1
    column = events[c.SESSION_ID].to_numpy(dtype=object).copy()
    column[rows[order]] = [f"{s}{separator}{p}" for s, p in zip(session[order], piece)]
    return events.assign(**{c.SESSION_ID: pd.Series(column, index=events.index).astype(events[c.SESSION_ID].dtype)})
