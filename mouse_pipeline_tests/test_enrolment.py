"""Enrolment: single-session users validated on time blocks, users with too few events left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import (
    BY_BLOCKS,
    BY_SESSIONS,
    EnrolmentError,
    prepare_training_events,
    split_sessions,
)
from mouse_pipeline.selection_settings import SelectionSettings
from mouse_pipeline.simulate import simulate
from mouse_pipeline.validation import enough_events_per_user


@pytest.fixture(scope="module")
def mixed():
    """Three users with one session and three with three sessions; one more user with 30 events."""
    single = simulate(users=3, sessions=1, test_sessions=0, actions_per_session=30, seed=3).train
    several = simulate(users=3, sessions=3, test_sessions=0, actions_per_session=10, seed=4).train
    tiny = several[several[c.SESSION_ID] == several[c.SESSION_ID].iloc[0]].head(30).assign(
        **{c.USER_ID: "tiny-user", c.SESSION_ID: "tiny-session"})
    return pd.concat([single, several, tiny], ignore_index=True)


def test_single_session_users_are_cut_into_time_blocks_and_say_so(mixed):
    enrolment = prepare_training_events(mixed, SelectionSettings(n_splits=4, min_events_per_user=100))
    users = enrolment.users.set_index(c.USER_ID)
    single = users.index[users["sessions"] == 1]
    assert len(single) == 3 and (users.loc[single, "validation"] == BY_BLOCKS).all()
    assert (users.loc[users["sessions"] == 3, "validation"] == BY_SESSIONS).all()
    assert enrolment.users_validated_by_blocks == 3
    events = enrolment.events
    for user in single:
        own = events[events[c.USER_ID] == user].sort_values(c.TIMESTAMP, kind="stable")
        blocks = own[c.SESSION_ID].str.rsplit("#", n=1).str[1].astype(int).to_numpy()
        assert sorted(set(blocks)) == list(range(1, users.loc[user, "validation_groups"] + 1))
        assert (np.diff(blocks) >= 0).all()  # blocks are consecutive in time: no block straddles another
    # Every pseudo-session points back to its recorded session.
    recorded = enrolment.recorded_session
    assert set(recorded.index) == set(events[c.SESSION_ID].astype(str))
    assert set(recorded) == set(mixed.loc[mixed[c.USER_ID] != "tiny-user", c.SESSION_ID])
    assert any("blocks" in line for line in enrolment.messages())


def test_blocks_are_about_as_long_as_the_sessions_to_be_scored(mixed):
    sizes = mixed.groupby(c.USER_ID).size()
    single = [u for u in sizes.index if mixed.loc[mixed[c.USER_ID] == u, c.SESSION_ID].nunique() == 1
              and u != "tiny-user"]
    length = int(sizes.loc[single].min() / 3)
    enrolment = prepare_training_events(mixed, SelectionSettings(min_events_per_user=100,
                                                                 scored_session_events=length))
    users = enrolment.users.set_index(c.USER_ID)
    assert (users.loc[single, "validation_groups"] >= 3).all() and (users.loc[single, "validation_groups"] <= 4).all()
    unknown = prepare_training_events(mixed, SelectionSettings(min_events_per_user=100, n_splits=5))
    assert (unknown.users.set_index(c.USER_ID).loc[single, "validation_groups"] == 5).all()  # one per fold


def test_a_user_with_too_few_events_is_named_and_left_out(mixed):
    enrolment = prepare_training_events(mixed, SelectionSettings(min_events_per_user=100))
    assert list(enrolment.left_out[c.USER_ID]) == ["tiny-user"]
    assert "30 events" in enrolment.left_out["reason"].iloc[0]
    assert "tiny-user" not in set(enrolment.events[c.USER_ID])
    assert any("tiny-user" in line and "left out" in line for line in enrolment.messages())
    rule = enough_events_per_user(mixed, 100)
    assert not rule.passed and rule.offenders[c.USER_ID].tolist() == ["tiny-user"]
    assert rule.offenders["events"].tolist() == [30] and rule.summary["users_below_minimum"] == 1


def test_fewer_than_two_users_is_a_clear_error(mixed):
    with pytest.raises(EnrolmentError, match="identification needs two or more"):
        prepare_training_events(mixed, SelectionSettings(min_events_per_user=10_000))


def test_split_sessions_keeps_rows_and_order_and_leaves_other_sessions_alone():
    events = pd.DataFrame({c.SESSION_ID: ["a"] * 5 + ["b"] * 2, c.TIMESTAMP: [5, 1, 4, 2, 3, 1, 2],
                           c.USER_ID: "u"})
    out = split_sessions(events, {"a": 2}, "@")
    assert out[c.SESSION_ID].tolist() == ["a@2", "a@1", "a@2", "a@1", "a@1", "b", "b"]
    assert out[c.TIMESTAMP].tolist() == events[c.TIMESTAMP].tolist()


def test_a_piece_id_that_is_already_a_session_id_is_a_clear_error():
    events = pd.DataFrame({c.SESSION_ID: ["a"] * 4 + ["a#2"] * 2, c.TIMESTAMP: [1, 2, 3, 4, 1, 2], c.USER_ID: "u"})
    with pytest.raises(ValueError, match=r"session id 'a#2' is also the id that piece 2 of session 'a'"):
        split_sessions(events, {"a": 2})
    assert split_sessions(events, {"a": 3, "a#2": 1}, "@")[c.SESSION_ID].str.startswith("a@").sum() == 4
