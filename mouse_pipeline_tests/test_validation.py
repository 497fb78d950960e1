"""Validation rules pass on the real data and fail on crafted bad frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline import validation as v
from mouse_pipeline.ingest import read_events


def frame(rows):
    """Events from (session, user, timestamp, code) tuples."""
    return pd.DataFrame(
        {
            c.UID: [f"e{i}" for i in range(len(rows))],
            c.SESSION_ID: [r[0] for r in rows],
            c.USER_ID: [r[1] for r in rows],
            c.TIMESTAMP: np.array([r[2] for r in rows], dtype=np.int64),
            c.EVENT_TYPE: np.array([r[3] for r in rows], dtype=np.int8),
            c.SCREEN_X: 1.0,
            c.SCREEN_Y: 2.0,
        }
    )


GOOD = frame([("s1", "a", 1, 2), ("s1", "a", 2, 5), ("s1", "a", 3, 1),
              ("s2", "a", 1, 2), ("s3", "b", 1, 2), ("s4", "b", 1, 3)])


@pytest.mark.kaggle
def test_rules_on_the_real_training_file(kaggle_train):
    events = read_events(kaggle_train, labelled=True).events
    assert v.one_user_per_session(events).passed
    assert v.no_nulls(events).passed
    assert v.enough_sessions_per_user(events).passed
    assert v.users_balanced(events, 0.5).passed
    grammar = v.grammar_deviations(events)
    assert not grammar.passed  # the real data bends the grammar: a warning, not an error
    assert grammar.summary["clicks_without_release"] == 1195
    assert grammar.summary["drags_without_release"] == 25


def test_good_frame_passes_every_rule():
    assert v.one_user_per_session(GOOD).passed
    assert v.no_nulls(GOOD).passed
    assert v.enough_sessions_per_user(GOOD).passed
    assert v.users_balanced(GOOD, 0.5).passed
    assert v.grammar_deviations(GOOD).passed


def test_session_with_two_users_is_named():
    bad = pd.concat([GOOD, frame([("s1", "b", 9, 2)])], ignore_index=True)
    result = v.one_user_per_session(bad)
    assert not result.passed
    assert result.offenders.to_dict("records") == [{c.SESSION_ID: "s1", "users": "a, b"}]


def test_nulls_and_blanks_are_found_per_column():
    bad = GOOD.copy()
    bad[c.USER_ID] = bad[c.USER_ID].astype(object)
    bad.loc[0, c.USER_ID] = None
    bad.loc[1, c.SESSION_ID] = "  "
    bad.loc[2, c.SCREEN_X] = np.nan
    result = v.no_nulls(bad)
    assert not result.passed
    assert set(result.offenders["column"]) == {c.USER_ID, c.SESSION_ID, c.SCREEN_X}
    assert result.summary["rows_with_nulls"] == 3


def test_user_with_one_session_is_named():
    bad = pd.concat([GOOD, frame([("s9", "lonely", 1, 2)])], ignore_index=True)
    result = v.enough_sessions_per_user(bad, 2)
    assert not result.passed
    assert list(result.offenders[c.USER_ID]) == ["lonely"]


def test_imbalance_below_the_ratio_is_flagged():
    rows = [(f"a{i}", "a", 1, 2) for i in range(10)] + [("b1", "b", 1, 2), ("b2", "b", 1, 2)]
    result = v.users_balanced(frame(rows), 0.5)
    assert not result.passed
    assert result.summary["sessions_ratio"] == 0.2
    assert list(result.offenders[c.USER_ID]) == ["b"]
    assert v.users_balanced(frame(rows), 0.1).passed


def test_grammar_deviations_are_counted_per_session():
    rows = [
        ("s1", "a", 1, 5), ("s1", "a", 2, 2),  # click without release
        ("s2", "a", 1, 4), ("s2", "a", 2, 2), ("s2", "a", 3, 2), ("s2", "a", 4, 5), ("s2", "a", 5, 1),
        ("s3", "a", 1, 1),  # release without press
        ("s4", "a", 1, 4), ("s4", "a", 2, 2), ("s4", "a", 3, 1),  # a proper drag
    ]
    result = v.grammar_deviations(frame(rows))
    assert result.summary == {"clicks_without_release": 1, "drags_without_release": 1,
                              "releases_without_press": 1, "sessions_with_deviations": 3}
    assert list(result.offenders[c.SESSION_ID]) == ["s1", "s2", "s3"]
