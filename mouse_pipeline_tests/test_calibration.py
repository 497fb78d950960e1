"""Verification a bank can act on: fusion, decision curve, bootstrap intervals, the calibrated ``unknown``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.calibration import (
    calibrate_verification, far_threshold, fit_fold_models, lower_quantile_threshold, session_truth,
)
from mouse_pipeline.error_stats import ClaimScores, bootstrap_intervals, gini, per_user_eer, weighted_eer_auc
from mouse_pipeline.features import FeatureConfig, extract_features, feature_columns
from mouse_pipeline.fusion import FUSIONS, best_other, cohort_normalised, fuse
from mouse_pipeline.modelling import SessionPerUserKFold, build_pipeline
from mouse_pipeline.prediction import predict_sessions
from mouse_pipeline.prefixes import action_counts, prefix_events, source_session
from mouse_pipeline.simulate import simulate
from mouse_pipeline.verification import ScoringRule, error_rates, threshold_by_length

TREES = 40


def build():
    return build_pipeline("extra_trees", {"n_estimators": TREES})


def calibrate(train: pd.DataFrame, config: FeatureConfig = FeatureConfig(), n_splits: int = 3, **options):
    features = extract_features(train, config)
    folds = SessionPerUserKFold(n_splits, 0).session_folds(features[c.USER_ID].to_numpy(),
                                                           features[c.SESSION_ID].to_numpy())
    options = {"n_resamples": 200, "unknown_groups": 3, "open_set_folds": 2, **options}
    report = calibrate_verification(train, config, feature_columns(features), build, folds, features=features,
                                    **options)
    return report, features


def fit_all(features: pd.DataFrame):
    return build().fit(features[feature_columns(features)], features[c.USER_ID].to_numpy())


@pytest.fixture(scope="module")
def realistic():
    """10 users with a realistic spread of habits: 6 training and 8 fresh sessions each, about 20 actions."""
    data = simulate(users=10, sessions=6, test_sessions=8, actions_per_session=20, separation=1.0, seed=2)
    report, features = calibrate(data.train)
    return data, report, features


def test_prefixes_hold_the_first_n_actions_of_sessions_long_enough():
    data = simulate(users=2, sessions=3, test_sessions=0, actions_per_session=12, seed=4)
    counts = action_counts(data.train, 2000.0)
    prefixes = prefix_events(data.train, 5, 2000.0)
    assert set(source_session(prefixes[c.SESSION_ID].unique(), 5)) == set(counts.index[counts >= 5])
    assert (action_counts(prefixes, 2000.0) == 5).all()
    assert prefixes[c.SESSION_ID].str.endswith("@5").all()
    longest = int(counts.max())
    assert action_counts(prefix_events(data.train, longest, 2000.0), 2000.0).to_dict() == \
        {f"{s}@{longest}": longest for s in counts.index[counts == longest]}
    assert prefix_events(data.train, longest + 1, 2000.0).empty


def test_fusions_of_one_window_and_the_best_other_user():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert np.allclose(best_other(p), [[0.2, 0.7, 0.7], [0.8, 0.8, 0.1]])
    scores = fuse(np.r_[p, p[:1]], np.array(["a", "b", "c"]), np.array(["s2", "s1", "s1"]), "mean_proba")
    assert list(scores.index) == ["s1", "s2"] and np.allclose(scores.loc["s1"], [0.4, 0.15, 0.45])
    llr = fuse(p, np.array(["a", "b", "c"]), np.array(["s1", "s2"]), "mean_llr_best_other")
    assert llr.loc["s1", "a"] > 0 > llr.loc["s1", "b"]
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(p, np.array(["a", "b", "c"]), np.array(["s1", "s2"]), "max")


def test_the_cohort_normalised_score_puts_every_session_on_one_scale():
    # Two sessions with the same ranking of users on different scales: one T-normalised score each.
    scores = np.array([[4.0, 1.0, 2.0, 1.0], [40.0, 10.0, 20.0, 10.0]])
    z = cohort_normalised(scores)
    assert np.allclose(z[0], z[1])
    assert np.isclose(z[0, 0], (4.0 - scores[0].mean()) / scores[0].std())
    assert np.allclose(z.mean(axis=1), 0.0) and np.allclose(z.std(axis=1), 1.0)
    assert np.allclose(cohort_normalised(np.ones((2, 4))), 0.0)  # no spread: centred, no division by zero
    assert np.allclose(cohort_normalised(np.array([[0.3]])), 0.0)  # one user
    # Within a session the users keep their order, so the user a session names does not change.
    rng = np.random.default_rng(0)
    skewed = np.exp(3 * rng.standard_normal((2000, 6)) * rng.exponential(1.0, (2000, 1)))
    in_raw_order = np.take_along_axis(cohort_normalised(skewed), np.argsort(skewed, axis=1), axis=1)
    assert (np.diff(in_raw_order, axis=1) >= 0).all()
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    tnorm = fuse(p, np.array(["a", "b", "c"]), np.array(["s1", "s2"]), "mean_llr_tnorm")
    assert np.allclose(tnorm.to_numpy(), cohort_normalised(
        fuse(p, np.array(["a", "b", "c"]), np.array(["s1", "s2"]), "mean_llr").to_numpy()))


def test_weighted_rates_with_unit_weights_are_the_plain_ones():
    rng = np.random.default_rng(3)
    score = np.round(rng.normal(size=500), 1)  # ties
    genuine = rng.random(500) < 0.2
    score[genuine] += 1.5
    eer, auc = weighted_eer_auc(score, genuine, np.ones((1, 500)))
    plain = error_rates(score[genuine], score[~genuine], 0.01)
    assert eer[0] == pytest.approx(plain.eer) and auc[0] == pytest.approx(plain.auc)


def synthetic_claims(n_users: int, sessions: int = 5, seed: int = 0) -> ClaimScores:
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in range(n_users)]
    truth = pd.Series(np.repeat(users, sessions), index=[f"s{i}" for i in range(n_users * sessions)])
    values = rng.normal(size=(len(truth), n_users))
    own = np.repeat(np.arange(n_users), sessions)
    values[np.arange(len(truth)), own] += rng.normal(2.0, 1.0, n_users)[own]  # some users are easier than others
    return ClaimScores.of(pd.DataFrame(values, index=truth.index, columns=users), truth)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_users():
    widths = []
    for n_users in (8, 64):
        intervals = bootstrap_intervals(synthetic_claims(n_users), n_resamples=400, seed=1)
        for interval in intervals.values():
            assert interval.low <= interval.estimate <= interval.high
        widths.append(intervals["eer"].high - intervals["eer"].low)
    assert widths[1] < widths[0] / 2
    again = bootstrap_intervals(synthetic_claims(8), n_resamples=400, seed=1)
    assert again["eer"].low == bootstrap_intervals(synthetic_claims(8), n_resamples=400, seed=1)["eer"].low


def test_per_user_eers_and_their_gini():
    table = per_user_eer(synthetic_claims(6))
    assert list(table.columns) == ["user_id", "genuine_sessions", "impostor_sessions", "eer", "auc"]
    assert (table["genuine_sessions"] == 5).all() and (table["impostor_sessions"] == 25).all()
    assert table["eer"].is_monotonic_decreasing
    assert gini(np.zeros(4)) == 0.0 and gini(np.ones(4)) == 0.0
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)


def test_thresholds_by_length_interpolate_and_fall_back_to_whole_sessions():
    by_actions = {1: 0.9, 10: 0.5, 100: 0.1}
    got = threshold_by_length(0.3, by_actions, np.array([1, 10, np.sqrt(10) * 10, 500, np.nan, 0]))
    assert np.allclose(got, [0.9, 0.5, 0.3, 0.1, 0.3, 0.3])
    assert np.allclose(threshold_by_length(0.3, {}, np.array([5.0])), [0.3])
    assert lower_quantile_threshold(np.arange(100.0), 0.05) == pytest.approx(4.5)  # 5 of 100 below
    assert far_threshold(np.arange(100.0), 0.01) == pytest.approx(98.5)  # 1 of 100 accepted


def test_the_rule_travels_through_mlflow_metrics_and_params(realistic):
    _, report, _ = realistic
    rule = report.rule
    assert ScoringRule.from_run(report.metrics(), report.params()) == rule
    legacy = ScoringRule.from_run({"verification_threshold": 0.4, "unknown_threshold": 0.2}, {})
    assert legacy == ScoringRule(verification_threshold=0.4, unknown_threshold=0.2)


def test_per_user_unknown_thresholds_are_an_option_measured_like_the_global_one(realistic):
    data, report, _ = realistic
    assert list(report.unknown.rates.index) == ["global", "per_user"]
    per_user, _ = calibrate(data.train, unknown_mode="per_user")
    assert per_user.unknown.mode == "per_user" and per_user.rule.user_offsets
    assert per_user.unknown.rates.equals(report.unknown.rates)  # both modes measured either way
    assert per_user.metrics()["unknown_false_rate"] == per_user.metrics()["unknown_false_per_user"]
    again = ScoringRule.from_run(per_user.metrics(), per_user.params(), per_user.rule.offsets_json())
    assert again == per_user.rule
    with pytest.raises(ValueError, match="unknown_mode"):
        calibrate(data.train, unknown_mode="per_session")


def test_report_metrics_are_the_mlflow_names(realistic):
    _, report, _ = realistic
    metrics = report.metrics()
    for name in ("verification_eer", "verification_auc", "verification_threshold", "unknown_threshold",
                 "verification_eer_ci95_low", "verification_eer_ci95_high", "verification_auc_ci95_low",
                 "verification_auc_ci95_high", "unknown_false_rate", "unknown_detection_rate",
                 "verification_eer_1_actions", "verification_frr_at_far1_5_actions", "verification_eer_gini"):
        assert name in metrics and np.isfinite(metrics[name])
    table = report.curve_table()
    assert list(table.columns) == ["n_actions", "sessions", "users", "eer", "frr_at_far1", "auc", "threshold",
                                   "unknown_threshold"]
    assert table["n_actions"].iloc[-1] == "whole" and table["sessions"].iloc[-1] == 60
    assert report.curve_png.startswith(b"\x89PNG") and report.det_png.startswith(b"\x89PNG")
    assert report.params() == {"verification.fusion": report.fusion, "verification.unknown_mode": "global"}


def test_decision_curve_improves_with_more_actions_for_distinct_users():
    data = simulate(users=6, sessions=6, test_sessions=0, actions_per_session=30, separation=3.0, seed=5)
    report, _ = calibrate(data.train)
    table = report.curve_table()
    reported = table[(table["sessions"] >= report.min_sessions) & table["eer"].notna()]
    assert len(reported) >= 4
    eers = reported["eer"].to_numpy()
    assert np.all(np.diff(eers) <= 0.01), table
    assert eers[0] > eers[-1]


def test_the_chosen_fusion_has_the_lowest_out_of_fold_eer():
    data = simulate(users=6, sessions=5, test_sessions=0, actions_per_session=25, separation=0.7, seed=6)
    config = FeatureConfig(window_size=20)
    report, features = calibrate(data.train, config)
    assert set(report.fusions.index) == set(FUSIONS)
    eers = report.fusions["eer"]
    assert eers[report.fusion] == eers.min()
    tied = report.fusions[eers == eers.min()]
    assert report.fusion == tied["auc"].idxmax()  # ties: the higher AUC, then the first candidate
    folds = SessionPerUserKFold(3, 0).session_folds(features[c.USER_ID].to_numpy(), features[c.SESSION_ID].to_numpy())
    columns = feature_columns(features)
    models = fit_fold_models(features, columns, build, folds)
    sessions = features[c.SESSION_ID].to_numpy()
    truth = session_truth(features)
    for name in FUSIONS:  # recomputed independently of choose_fusion
        claims = ClaimScores.of(fuse(models.probabilities(features, columns, sessions), models.classes, sessions,
                                     name), truth)
        assert error_rates(claims.score[claims.genuine], claims.score[~claims.genuine], 0.01).eer == \
            pytest.approx(eers[name])


def test_false_unknown_rate_on_fresh_sessions_of_known_users_is_near_its_target(realistic):
    data, report, features = realistic
    assert report.unknown.false_rate <= report.unknown.target_rate
    fresh = predict_sessions(fit_all(features), extract_features(data.test), rule=report.rule,
                             n_actions=action_counts(data.test, 2000.0))
    rate = float((fresh["verdict"] == "unknown").mean())
    target, n_calibration, n_fresh = 0.05, 60, len(fresh)
    sampling = np.sqrt(target * (1 - target) * (1 / n_calibration + 1 / n_fresh))
    assert abs(rate - target) <= 3 * sampling, rate
    named = fresh[fresh["verdict"] != "unknown"]
    truth = data.truth.set_index(c.SESSION_ID)[c.USER_ID]
    assert (named["verdict"] == truth.loc[named[c.SESSION_ID]].to_numpy()).mean() > 0.9


def test_a_user_left_out_of_training_is_called_unknown_far_more_often(realistic):
    data, _, _ = realistic
    stranger = data.train[c.USER_ID].unique()[0]
    known_train = data.train[data.train[c.USER_ID] != stranger]
    report, features = calibrate(known_train)
    model = fit_all(features)
    truth = data.truth.set_index(c.SESSION_ID)[c.USER_ID]
    everyone = pd.concat([data.test, data.train[data.train[c.USER_ID] == stranger].drop(columns=[c.USER_ID])])
    verdicts = predict_sessions(model, extract_features(everyone), rule=report.rule,
                                n_actions=action_counts(everyone, 2000.0)).set_index(c.SESSION_ID)["verdict"]
    strangers = verdicts.index.isin(truth[truth == stranger].index) | \
        verdicts.index.isin(data.train.loc[data.train[c.USER_ID] == stranger, c.SESSION_ID])
    unknown = verdicts == "unknown"
    assert unknown[strangers].mean() >= unknown[~strangers].mean() + 0.4
    assert report.unknown.detection_rate > report.unknown.false_rate


def test_legacy_rule_gives_the_old_open_set_verdicts(small_simulation):
    features = extract_features(small_simulation.train)
    model = fit_all(features)
    proba = predict_sessions(model, features)["probability"]
    threshold = float(proba.median())
    legacy = predict_sessions(model, features, unknown_below=threshold)
    assert ((legacy["verdict"] == "unknown") == (legacy["probability"] < threshold)).all()
    assert (legacy["verdict"] == predict_sessions(model, features, rule=ScoringRule(unknown_threshold=threshold))[
        "verdict"]).all()
