"""Model selection over feature settings x estimators: planning, halving, choice, determinism, families."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import BY_BLOCKS, prepare_training_events
from mouse_pipeline.features import extract_features, feature_columns
from mouse_pipeline.evaluation import session_scores
from mouse_pipeline.features.families import ENVIRONMENT, family_kind, feature_family, select_columns
from mouse_pipeline.modelling import CrossValidation
from mouse_pipeline.prediction import predict_sessions
from mouse_pipeline.selection import (
    bootstrap_intervals,
    chunk_plan,
    featurise,
    fold_schedule,
    plan_feature_settings,
    select,
    session_lengths,
    typical_session_events,
    window_sizes,
)
from mouse_pipeline.selection_settings import SelectionSettings
from mouse_pipeline.simulate import simulate
from mouse_pipeline.tracking import untrusted_types

#: Small and fast: one MLP, one ExtraTrees, no column selection, 3 folds, 2 window sizes per unit.
FAST = SelectionSettings(
    sizes_per_unit=2, mlp_hidden_layer_sizes=((16,),), mlp_alpha=(0.3,), mlp_max_iter=300, feature_selection="none",
    extra_trees_max_features=("sqrt",), extra_trees_n_estimators=60, hist_gradient_boosting=False,
    n_splits=3, first_round_folds=1, n_jobs=1, bootstrap_resamples=200, importance_folds=1,
    importance_repeats=1, importance_max_rows=400, min_events_per_user=60, max_training_rows=1000,
)


def run_selection(train: pd.DataFrame, settings: SelectionSettings = FAST):
    enrolment = prepare_training_events(train, settings)
    feature_sets = featurise(enrolment.events, plan_feature_settings(enrolment.events, settings), settings)
    return enrolment, feature_sets, select(feature_sets, settings, enrolment.recorded_session)


def test_window_sizes_follow_the_sessions_of_the_data():
    assert window_sizes(10, 1000, 3) == [1000, 100, 10]
    assert window_sizes(10, 5, 3) == []  # sessions too short for two windows
    short = simulate(users=3, sessions=2, test_sessions=0, actions_per_session=3, seed=1).train
    long = simulate(users=3, sessions=2, test_sessions=0, actions_per_session=200, seed=1).train
    settings = SelectionSettings(max_training_rows=10**9)
    for events in (short, long):
        typical = session_lengths(events).median()
        for config in plan_feature_settings(events, settings)[1:]:
            windows = typical[config.window_unit] / config.window_size
            assert settings.min_windows <= windows <= settings.max_windows + 1, (config, windows)
    def sizes(events, unit="events"):
        return [cfg.window_size for cfg in plan_feature_settings(events, settings)[1:] if cfg.window_unit == unit]
    assert max(sizes(long)) > 10 * max(sizes(short)) and min(sizes(long)) >= min(sizes(short))
    # Scoring chunks shorter than the sessions shrink the windows; the row budget bounds the smallest.
    chunked = plan_feature_settings(long, replace(settings, scored_session_events=200))[1:]
    assert max(cfg.window_size for cfg in chunked if cfg.window_unit == "events") <= 100
    capped = plan_feature_settings(long, replace(settings, max_training_rows=200))[1:]
    assert all(len(long) / cfg.window_size <= 200 for cfg in capped if cfg.window_unit == "events")


def test_scoring_chunks_only_when_the_sessions_to_score_are_much_shorter():
    long = simulate(users=2, sessions=2, test_sessions=2, actions_per_session=100, test_actions_per_session=10,
                    seed=2)
    same = simulate(users=2, sessions=2, test_sessions=2, actions_per_session=20, seed=2)
    median_test = int(long.test.groupby(c.SESSION_ID).size().median())
    assert typical_session_events(long.test) == median_test
    chunks = chunk_plan(long.train, replace(FAST, scored_session_events=median_test))
    sizes = long.train.groupby(c.SESSION_ID).size()
    assert chunks == {s: round(n / median_test) for s, n in sizes.items()}
    assert chunk_plan(same.train, replace(FAST, scored_session_events=typical_session_events(same.test))) == {}
    assert chunk_plan(long.train, FAST) == {}  # length of the sessions to be scored unknown


def test_halving_rounds_double_the_folds():
    assert fold_schedule(6, 2) == [2, 4, 6]
    assert fold_schedule(3, 1) == [1, 2, 3]
    assert fold_schedule(5, 5) == [5]


@pytest.fixture(scope="module")
def few_long_sessions():
    """4 users on one display, 2 long training sessions each, short test sessions: windows should win."""
    return simulate(users=4, sessions=2, test_sessions=2, actions_per_session=60, test_actions_per_session=15,
                    same_display=True, separation=0.6, seed=5)


@pytest.fixture(scope="module")
def selected(few_long_sessions):
    settings = replace(FAST, scored_session_events=typical_session_events(few_long_sessions.test))
    return (settings, *run_selection(few_long_sessions.train, settings))


def test_windows_are_chosen_where_cross_validation_prefers_them(selected):
    settings, _, feature_sets, result = selected
    table = result.table
    assert len(table) == len(feature_sets) * 2  # every (feature setting, estimator) pair
    finalists = table[table["folds_scored"] == settings.n_splits]
    best = finalists.iloc[0]
    whole = finalists[finalists["window_size"] == 0]["cv_macro_f1"]
    assert result.feature_config.window_size > 0
    assert (best["window_size"], best["window_unit"]) == (result.feature_config.window_size,
                                                          result.feature_config.window_unit)
    assert best["cv_macro_f1"] == pytest.approx(result.champion.cv.scores["macro_f1"])
    assert whole.empty or best["cv_macro_f1"] > whole.max()
    # Survivors of each halving round were scored on more folds; the best MLP made it to the end.
    assert set(table["folds_scored"]) <= {1, 2, 3} and table["round_reached"].max() == 2
    assert result.best_mlp is not None and result.best_mlp.choice.is_mlp
    assert len(result.best_mlp.cv.session_proba) == len(result.champion.cv.session_proba)


def test_the_chosen_model_predicts_test_sessions_with_its_own_feature_setting(selected, few_long_sessions):
    _, _, feature_sets, result = selected
    table = next(fs.table for fs in feature_sets if fs.config == result.feature_config)
    model = result.fit(table)
    assert list(model.feature_names_in_) == list(result.champion.choice.columns)
    test = extract_features(few_long_sessions.test, result.feature_config)
    predicted = predict_sessions(model, test).set_index(c.SESSION_ID)[c.USER_ID]
    truth = few_long_sessions.truth.set_index(c.SESSION_ID)[c.USER_ID]
    assert (predicted == truth.loc[predicted.index]).mean() >= 0.5


def test_held_out_sessions_are_scored_in_chunks(selected):
    settings, _, feature_sets, result = selected
    assert result.chunk_events == settings.scored_session_events > 0
    units = result.champion.cv.session_proba.index
    assert units.str.contains("@").any()
    assert result.champion.cv.truth.loc[units].notna().all()


def test_same_input_same_selection(few_long_sessions, selected):
    settings, _, _, first = selected
    _, _, again = run_selection(few_long_sessions.train, settings)
    pd.testing.assert_frame_equal(first.table.drop(columns="seconds"), again.table.drop(columns="seconds"))
    pd.testing.assert_frame_equal(first.champion.cv.session_proba, again.champion.cv.session_proba)
    assert first.intervals == again.intervals


def test_every_user_with_one_session_trains_predicts_and_says_how_it_was_validated():
    data = simulate(users=4, sessions=1, test_sessions=1, actions_per_session=40, seed=8)
    enrolment, feature_sets, result = run_selection(data.train)
    assert (enrolment.users["validation"] == BY_BLOCKS).all() and enrolment.users_validated_by_blocks == 4
    assert result.champion.cv.truth.nunique() == 4
    table = next(fs.table for fs in feature_sets if fs.config == result.feature_config)
    test = extract_features(data.test, result.feature_config)
    predicted = predict_sessions(result.fit(table), test)
    assert len(predicted) == 4 and set(predicted[c.USER_ID]) <= set(data.train[c.USER_ID])


def test_behaviour_only_model_has_no_environment_column(few_long_sessions):
    settings = replace(FAST, families="behaviour", window_units=(), feature_selection="trees")
    _, feature_sets, result = run_selection(few_long_sessions.train, settings)
    table = feature_sets[0].table
    model = result.fit(table)
    names = list(model.feature_names_in_)
    assert names == select_columns(feature_columns(table), "behaviour")
    assert not [n for n in names if family_kind(feature_family(n)) == ENVIRONMENT]
    # The ablation is still scored on both kinds, with the champion's estimator and folds.
    assert set(result.ablation) == {"behaviour", "environment"}


def test_bootstrap_resamples_recorded_sessions_together(selected):
    # 4 recorded sessions of 5 chunks each: two sessions right in every chunk, two wrong in every chunk.
    units = [f"s{s}@{k}" for s in range(4) for k in range(5)]
    truth = pd.Series(["a", "b", "a", "b"] * 5, index=[f"s{s}@{k}" for k in range(5) for s in range(4)]).loc[units]
    right = truth.index.str.startswith(("s0", "s1"))
    guess = np.where(right, truth, np.where(truth == "a", "b", "a"))
    proba = pd.DataFrame({"a": (guess == "a") * 0.8 + 0.1, "b": (guess == "b") * 0.8 + 0.1}, index=units)
    cv = CrossValidation(None, np.array(["a", "b"]), proba, truth, session_scores(truth, proba))
    chunks = bootstrap_intervals(cv, pd.Series(units, index=units), 1000, 0)
    sessions = bootstrap_intervals(cv, pd.Series([u.split("@")[0] for u in units], index=units), 1000, 0)
    assert chunks["accuracy"][0] > 0.25 and chunks["accuracy"][1] < 0.75  # 20 independent units
    assert sessions["accuracy"] == (0.0, 1.0)  # really 4 units: anything from 0 to 4 right
    _, _, _, result = selected
    low, high = result.intervals["macro_f1"]
    assert low <= result.champion.cv.scores["macro_f1"] <= high


def test_estimators_over_budget_are_listed_but_not_run(few_long_sessions):
    settings = replace(FAST, hist_gradient_boosting=True, hist_gradient_boosting_max_cells=100,
                       window_units=("events",), sizes_per_unit=1)
    _, feature_sets, result = run_selection(few_long_sessions.train, settings)
    table = result.table.set_index(["feature_setting", "estimator"])
    windows = feature_sets[1].name
    assert table.loc[("whole sessions", "hist_gradient_boosting"), "folds_scored"] >= 1  # 8 rows x 4 users
    skipped = table.loc[(windows, "hist_gradient_boosting")]
    assert skipped["note"].startswith("over budget") and skipped["round_reached"] == -1
    assert np.isnan(skipped["cv_macro_f1"]) and skipped["folds_scored"] == 0
    assert result.table.iloc[-1]["note"].startswith("over budget")
    trees = settings.estimators()[1]
    assert settings.affordable(trees, 1000, 10) and not settings.affordable(trees, 10**6, 200)


def test_every_default_estimator_loads_with_skops_trusting_only_the_tracked_types(small_simulation):
    table = extract_features(small_simulation.train)
    columns = feature_columns(table)
    for candidate in SelectionSettings(mlp_max_iter=50, extra_trees_n_estimators=10).estimators():
        model = candidate.build(0).fit(table[columns], table[c.USER_ID])
        assert untrusted_types(model) == [], candidate.name


def test_folds_that_would_hold_no_session_are_dropped():
    """Two new accounts, one session each, cut in blocks: six folds asked, only the folds that hold a block are
    scored, and the card's numbers use them."""
    data = simulate(users=2, sessions=1, test_sessions=0, actions_per_session=40, seed=3)
    half = int(data.train.groupby(c.USER_ID).size().min() // 2)  # sessions to score: blocks of half a session
    settings = replace(FAST, n_splits=6, first_round_folds=2, scored_session_events=half)
    enrolment, feature_sets, result = run_selection(data.train, settings)
    assert (enrolment.users["validation_groups"] == 2).all()  # 2 users x 2 blocks dealt over 6 folds: 3 hold one
    assert result.settings.n_splits == result.folds.nunique() == 3
    assert sorted(result.folds.unique()) == [0, 1, 2]
    assert result.champion.cv.truth.nunique() == 2 and set(result.ablation)


def test_recorded_folds_name_recorded_sessions_and_how_they_were_scored():
    from mouse_pipeline.selection import recorded_folds

    folds = pd.Series({"a#1": 0, "a#2": 2, "b": 1})
    recorded = pd.Series({"a#1": "a", "a#2": "a", "b": "b"})
    assert recorded_folds(folds, recorded).to_dict() == {"a": "0,2", "b": "1"}
    assert recorded_folds(folds, recorded, 500).to_dict() == {"a": "0,2@500", "b": "1@500"}
