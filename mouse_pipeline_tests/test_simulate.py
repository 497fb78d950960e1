"""The simulator: contract schema, grammar, determinism, distinct users, command line."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline import validation as v
from mouse_pipeline.ingest import read_events
from mouse_pipeline.simulate import SIMULATED_SESSION_PREFIX, is_simulated_session, main, simulate


def test_schema_and_sizes(small_simulation):
    data = small_simulation
    assert tuple(data.train.columns) == c.TRAIN_COLUMNS
    assert tuple(data.test.columns) == c.TEST_COLUMNS
    assert data.train[c.SESSION_ID].nunique() == 24
    assert data.test[c.SESSION_ID].nunique() == 6
    assert data.train.groupby(c.USER_ID)[c.SESSION_ID].nunique().eq(4).all()
    assert set(data.truth[c.SESSION_ID]) == set(data.test[c.SESSION_ID])
    assert set(data.train[c.EVENT_TYPE].unique()) <= set(c.EVENT_CODES)
    assert data.train[c.UID].is_unique


def test_same_seed_same_output_other_seed_other_output():
    a, b = simulate(users=3, sessions=2, seed=1), simulate(users=3, sessions=2, seed=1)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not simulate(users=3, sessions=2, seed=2).train.equals(a.train)


def test_sessions_follow_the_textbook_grammar(small_simulation):
    events = small_simulation.train.sort_values([c.SESSION_ID, c.TIMESTAMP], kind="stable")
    result = v.grammar_deviations(events)
    assert result.passed, result.summary


def test_rows_are_shuffled_like_the_real_files(small_simulation):
    ts = small_simulation.train.groupby(c.SESSION_ID)[c.TIMESTAMP].apply(lambda s: s.is_monotonic_increasing)
    assert not ts.all()


def test_move_sampling_interval_is_browser_like(small_simulation):
    events = small_simulation.train.sort_values([c.SESSION_ID, c.TIMESTAMP])
    moves = events[events[c.EVENT_TYPE] == c.EventType.MOVE]
    gaps = moves.groupby(c.SESSION_ID)[c.TIMESTAMP].diff().dropna()
    assert 8 <= gaps.median() <= 50


def test_separation_zero_makes_users_alike():
    alike = simulate(users=4, sessions=3, separation=0.0, seed=3).train
    apart = simulate(users=4, sessions=3, separation=1.0, seed=3).train
    spread = lambda t: t.groupby(c.USER_ID)[c.SCREEN_X].max().std()  # noqa: E731
    assert spread(alike) < spread(apart)


def test_default_simulation_passes_every_error_check():
    events = read_events_frame(simulate())
    assert v.one_user_per_session(events).passed
    assert v.no_nulls(events).passed
    assert v.enough_events_per_user(events).passed
    assert v.users_balanced(events, 0.5).passed


def read_events_frame(data):
    return data.train.sort_values([c.SESSION_ID, c.TIMESTAMP], kind="stable")


def test_command_line_writes_files_that_ingest_cleanly(tmp_path, capsys):
    main(["--users", "3", "--sessions", "2", "--test-sessions", "1", "--out", str(tmp_path), "--seed", "5"])
    assert "wrote" in capsys.readouterr().out
    train = read_events(tmp_path / "train_events.csv", labelled=True)
    test = read_events(tmp_path / "test_events.csv", labelled=False)
    assert train.rows_rejected == 0 and test.rows_rejected == 0
    assert train.events[c.SESSION_ID].nunique() == 6
    truth = pd.read_csv(tmp_path / "test_truth.csv", dtype=str)
    assert len(truth) == 3


def test_simulated_sessions_say_so_in_their_ids_and_real_ones_never_do(small_simulation):
    for frame in (small_simulation.train, small_simulation.test, small_simulation.truth):
        assert is_simulated_session(frame[c.SESSION_ID]).all()
        assert frame[c.SESSION_ID].str.startswith(SIMULATED_SESSION_PREFIX).all()
    kaggle_like = ["1", "120", "-2416201411472988629", "a3f0c2d1-4b5e-4c6d-8e9f-0a1b2c3d4e5f", "simulated", " sim-x"]
    assert not is_simulated_session(kaggle_like).any()
    assert is_simulated_session(pd.Series(["sim-1", "2"], dtype="string")).tolist() == [True, False]
    assert is_simulated_session([12, "sim-3"]).tolist() == [False, True]  # numbers, as read from a CSV


def test_rejects_nonsense_sizes():
    with pytest.raises(ValueError):
        simulate(users=0)


def test_default_simulation_is_unchanged_byte_for_byte():
    """Tests and the README depend on the default data: new options must not move a single byte (the
    ``sim-`` session prefix did move bytes, and nothing else: same rows, same order, same values)."""
    data = simulate()
    digest = hashlib.sha256(
        b"".join(frame.to_csv(index=False).encode() for frame in (data.train, data.test, data.truth))
    ).hexdigest()
    assert digest == "5012bb4ad822e054c1fc22e24d4e345ea80519e0c28b50502dfc5a9d7137e735"


def test_same_display_leaves_only_behaviour_to_separate_users():
    kwargs = dict(users=5, sessions=2, test_sessions=0, actions_per_session=30, seed=9)
    one = simulate(**kwargs, same_display=True).train
    assert (one[c.SCREEN_X] % 1 == 0).all() and (one[c.SCREEN_Y] % 1 == 0).all()  # integer coordinates
    assert one[c.SCREEN_X].max() <= 1919 and one[c.SCREEN_Y].max() <= 1079
    events = one.sort_values([c.SESSION_ID, c.TIMESTAMP])
    moves = events[events[c.EVENT_TYPE] == c.EventType.MOVE]
    interval = moves.groupby(c.SESSION_ID)[c.TIMESTAMP].diff().groupby(moves[c.USER_ID]).median()
    assert interval.max() - interval.min() <= 3  # one sampling interval for everyone


def test_test_sessions_can_be_shorter_than_training_sessions():
    data = simulate(users=3, sessions=2, test_sessions=2, actions_per_session=60, test_actions_per_session=6,
                    seed=4)
    train = data.train.groupby(c.SESSION_ID).size().median()
    test = data.test.groupby(c.SESSION_ID).size().median()
    assert test < train / 4
