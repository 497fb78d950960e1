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
    assert v.enough_events_per_user(events).passed
    assert v.users_balanced(events, 0.5).passed
    grammar = v.grammar_deviations(events)
    assert grammar.passed  # the logger never records releases: its dialect, not 117 deviating sessions
    assert grammar.summary["clicks_without_release"] == 1195
    assert grammar.summary["drags_without_release"] == 25
    assert grammar.summary["dialect"].startswith("releases not logged (1 releases for 1,220 presses)")
    assert grammar.summary["deviating_share"] <= 0.05


def test_good_frame_passes_every_rule():
    assert v.one_user_per_session(GOOD).passed
    assert v.no_nulls(GOOD).passed
    assert v.enough_events_per_user(GOOD, 1).passed
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


def test_user_with_too_few_events_is_named_whatever_their_sessions():
    bad = pd.concat([GOOD, frame([("s9", "lonely", 1, 2)])], ignore_index=True)
    result = v.enough_events_per_user(bad, 2)
    assert not result.passed
    assert list(result.offenders[c.USER_ID]) == ["lonely"]
    assert result.offenders[["sessions", "events"]].values.tolist() == [[1, 1]]
    one_long_session = pd.concat([GOOD, frame([("s9", "lonely", t, 2) for t in range(5)])], ignore_index=True)
    assert v.enough_events_per_user(one_long_session, 2).passed


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
    assert not result.passed  # 3 of 4 sessions deviate, far above 5 %
    assert {k: result.summary[k] for k in ("clicks_without_release", "drags_without_release",
                                           "releases_without_press", "sessions_with_deviations")} == {
        "clicks_without_release": 1, "drags_without_release": 1, "releases_without_press": 1,
        "sessions_with_deviations": 3}
    assert result.summary["deviating_share"] == 0.75 and result.summary["dialect"].startswith("textbook")
    assert list(result.offenders[c.SESSION_ID]) == ["s1", "s2", "s3"]
    assert v.grammar_deviations(frame(rows), v.RuleSettings(max_deviating_share=0.8)).passed


def test_a_log_without_releases_is_read_in_its_dialect():
    rows = [(f"s{i}", "a", t, code) for i in range(40) for t, code in enumerate((2, 2, 5, 2, 4, 2, 3))]
    result = v.grammar_deviations(frame(rows))
    assert result.passed and result.summary["sessions_with_deviations"] == 0
    assert result.summary["clicks_without_release"] == 40 and "releases not logged" in result.summary["dialect"]
    stray = rows + [("s0", "a", 99, 1)]  # one release without a press, in 1 session of 40: 2.5 %
    assert v.grammar_deviations(frame(stray)).passed
    assert not v.grammar_deviations(frame(stray), v.RuleSettings(max_deviating_share=0.01)).passed


# --- The one-pass rules equal the straightforward definitions -----------------------------------


def reference_rules(events, min_events=20, min_ratio=0.5):
    """The rules as first written with groupby (events sorted by session and time for the grammar)."""
    out = {}
    users = events.groupby(c.SESSION_ID, sort=True)[c.USER_ID].agg(["nunique", "unique"])
    bad = users[users["nunique"] > 1]
    out["one_user_per_session"] = (bad.empty, list(bad.index), {"sessions": len(users),
                                                                "sessions_with_several_users": len(bad)})
    columns = [col for col in c.TRAIN_COLUMNS if col in events.columns]
    missing = events[columns].isna()
    for col in columns:
        if c.DTYPES[col] == "str":
            missing[col] |= events[col].astype("str").str.strip().eq("")
    bad_rows = missing.any(axis=1)
    out["no_nulls"] = (not bad_rows.any(), missing.sum()[missing.sum() > 0].to_dict(),
                       {"rows_with_nulls": int(bad_rows.sum())})
    grouped = events.groupby(c.USER_ID, sort=True)
    counts = pd.DataFrame({"sessions": grouped[c.SESSION_ID].nunique(), "events": grouped.size()})
    low = counts[counts["events"] < min_events]
    out["enough_events_per_user"] = (low.empty, list(low.index), {"users": len(counts),
                                                                   "users_below_minimum": len(low),
                                                                   "min_events_per_user": min_events})
    summary = {"min_ratio": min_ratio}
    unbalanced = np.zeros(len(counts), dtype=bool)
    for col in ("sessions", "events"):
        largest = counts[col].max()
        summary[f"{col}_ratio"] = round(float(counts[col].min() / largest), 4)
        unbalanced |= (counts[col] < min_ratio * largest).to_numpy()
    passed = summary["sessions_ratio"] >= min_ratio and summary["events_ratio"] >= min_ratio
    out["users_balanced"] = (passed, list(counts.index[unbalanced]), summary)
    return out


def reference_grammar(events):
    """Grammar deviations per session, with next/previous non-move events found by accumulation."""
    code = events[c.EVENT_TYPE].to_numpy()
    session = pd.factorize(events[c.SESSION_ID])[0]
    n = len(code)
    idx = np.arange(n)
    same_next = np.r_[session[1:] == session[:-1], False]
    click = (code == 5) & ~(same_next & (np.r_[code[1:], 0] == 1))
    non_move = code != 2
    nxt = np.r_[np.minimum.accumulate(np.where(non_move, idx, n)[::-1])[::-1][1:], n]
    ok = nxt < n
    drag = (code == 4) & ~(ok & (session[np.minimum(nxt, n - 1)] == session) & (code[np.minimum(nxt, n - 1)] == 1))
    prv = np.r_[-1, np.maximum.accumulate(np.where(non_move, idx, -1))[:-1]]
    ok = prv >= 0
    pressed = ok & (session[np.maximum(prv, 0)] == session) & np.isin(code[np.maximum(prv, 0)], (4, 5))
    release = (code == 1) & ~pressed
    per_session = pd.DataFrame({c.SESSION_ID: events[c.SESSION_ID].to_numpy(), "clicks_without_release": click,
                                "drags_without_release": drag, "releases_without_press": release}
                               ).groupby(c.SESSION_ID, sort=True).sum()
    offenders = per_session[per_session.sum(axis=1) > 0]
    summary = {name: int(per_session[name].sum()) for name in per_session.columns}
    summary["sessions_with_deviations"] = len(offenders)
    return offenders.reset_index(), summary


def tricky_frame(seed: int) -> pd.DataFrame:
    """Unsorted events with shared sessions, missing and blank ids, repeated times, every event code."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    sessions = np.array(["s1", "s2", "s10", "S3", "é4", "s5"])[rng.integers(0, 6, n)]
    owner = {"s1": "a", "s2": "a", "s10": "b", "S3": "b", "é4": "c", "s5": "c"}
    users = np.array([owner[s] for s in sessions], dtype=object)
    stray = rng.random(n) < 0.05  # a session with a second user
    users[stray] = rng.choice(["a", "b", "c", "d"], int(stray.sum()))
    frame = pd.DataFrame({
        c.UID: [f"e{i}" for i in range(n)],
        c.SESSION_ID: sessions.astype(object),
        c.USER_ID: users,
        c.TIMESTAMP: rng.integers(0, 50, n).astype(np.int64),
        c.EVENT_TYPE: rng.choice([1, 2, 2, 2, 3, 4, 5], n).astype(np.int8),
        c.SCREEN_X: rng.random(n),
        c.SCREEN_Y: rng.random(n),
    })
    if seed % 2:
        frame.loc[rng.random(n) < 0.03, c.USER_ID] = None
        frame.loc[rng.random(n) < 0.03, c.UID] = " "
        frame.loc[rng.random(n) < 0.03, c.SCREEN_X] = np.nan
    return frame


@pytest.mark.parametrize("seed", range(12))
def test_one_pass_rules_equal_the_groupby_definitions(seed):
    events = tricky_frame(seed)
    results = v.event_rules(events, v.RuleSettings(min_events_per_user=20, min_balance_ratio=0.5))
    expected = reference_rules(events)
    passed, sessions, summary = expected["one_user_per_session"]
    rule = results["one_user_per_session"]
    assert (rule.passed, list(rule.offenders[c.SESSION_ID]), rule.summary) == (passed, sessions, summary)
    passed, per_column, summary = expected["no_nulls"]
    rule = results["no_nulls"]
    assert (rule.passed, dict(zip(rule.offenders["column"], rule.offenders["missing"])), rule.summary) == (
        passed, per_column, summary)
    for name in ("enough_events_per_user", "users_balanced"):
        passed, users, summary = expected[name]
        rule = results[name]
        assert (rule.passed, list(rule.offenders[c.USER_ID]), rule.summary) == (passed, users, summary), name
    ordered = events.sort_values([c.SESSION_ID, c.TIMESTAMP], kind="stable", ignore_index=True)
    offenders, summary = reference_grammar(ordered)
    for frame in (events, ordered):  # the rule sorts unsorted events itself
        counts = v.grammar_counts(frame)
        names = ["clicks_without_release", "drags_without_release", "releases_without_press"]
        deviating = counts.offenders[counts.offenders[names].sum(axis=1) > 0].reset_index(drop=True)
        assert {**{n: counts.summary[n] for n in names}, "sessions_with_deviations": len(deviating)} == summary
        pd.testing.assert_frame_equal(deviating, offenders, check_dtype=False)


def test_users_of_a_shared_session_are_listed_in_order():
    events = tricky_frame(0)
    rule = v.one_user_per_session(events)
    for session, listed in zip(rule.offenders[c.SESSION_ID], rule.offenders["users"]):
        assert listed == ", ".join(sorted(events.loc[events[c.SESSION_ID] == session, c.USER_ID].unique()))


def test_unlabelled_events_get_the_rules_that_need_no_labels():
    results = v.event_rules(GOOD.drop(columns=[c.USER_ID]))
    assert list(results) == ["no_nulls", "event_grammar"]
    with pytest.raises(KeyError, match="need a user_id column"):
        v.event_rules(GOOD.drop(columns=[c.USER_ID]), names=["users_balanced"])
    with pytest.raises(KeyError, match="unknown rule"):
        v.event_rules(GOOD, names=["speed_limit"])


def test_every_rule_in_one_call_matches_the_single_rule_functions():
    results = v.event_rules(GOOD)
    assert list(results) == list(v.EVENT_RULES)
    singles = {"one_user_per_session": v.one_user_per_session(GOOD), "no_nulls": v.no_nulls(GOOD),
               "enough_events_per_user": v.enough_events_per_user(GOOD),
               "users_balanced": v.users_balanced(GOOD, 0.5), "event_grammar": v.grammar_deviations(GOOD)}
    for name, single in singles.items():
        assert (results[name].passed, results[name].summary) == (single.passed, single.summary)
        pd.testing.assert_frame_equal(results[name].offenders, single.offenders)


def test_rules_on_chunked_and_joined_id_columns_agree(tmp_path):
    import pyarrow as pa

    from mouse_pipeline.simulate import simulate

    events = simulate(users=3, sessions=2, test_sessions=0, actions_per_session=20, seed=4).train
    events.loc[5, c.SESSION_ID] = " "  # a blank id, so that missing ids are coded too
    chunked = events.copy()
    for name in (c.SESSION_ID, c.USER_ID):
        values = pa.array(events[name].astype(str).tolist())
        cuts = list(range(0, len(values), 53)) + [len(values)]
        chunked[name] = pd.array(pa.chunked_array([values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]), dtype="str")
    for name in (c.SESSION_ID, c.USER_ID):
        joined, parts = v.Codes.of(events[name]), v.Codes.of(chunked[name])
        np.testing.assert_array_equal(parts.codes, joined.codes)
        assert list(parts.ids) == list(joined.ids)
    ours, theirs = v.event_rules(chunked), v.event_rules(events)
    for name in ours:
        assert ours[name].passed == theirs[name].passed and ours[name].summary == theirs[name].summary, name
        pd.testing.assert_frame_equal(ours[name].offenders, theirs[name].offenders)
