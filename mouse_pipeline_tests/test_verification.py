"""Verification scores, thresholds, EER, claims and open-set verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.features import extract_features, feature_columns
from mouse_pipeline.modelling import Candidate, SessionPerUserKFold, build_pipeline, cross_validate
from mouse_pipeline.prediction import predict_sessions
from mouse_pipeline.simulate import simulate
from mouse_pipeline.verification import (
    error_rates, genuine_and_impostor_scores, open_set_verdicts,
    threshold_for_far, verify_claims,
)


TREES = Candidate("extra_trees", "extra_trees", {"n_estimators": 300})


def proba_table(values, sessions, users):
    return pd.DataFrame(np.asarray(values, float), index=sessions, columns=users)


def test_perfectly_separable_scores_give_eer_zero():
    users = ["a", "b", "c"]
    proba = proba_table(np.eye(3) * 0.8 + 0.2 / 3, ["s1", "s2", "s3"], users)
    genuine, impostor = genuine_and_impostor_scores(proba, pd.Series(users, index=proba.index))
    assert len(genuine) == 3 and len(impostor) == 6
    rates = error_rates(genuine, impostor, target_far=0.0)
    assert rates.eer == 0.0 and rates.auc == 1.0 and rates.far == 0.0 and rates.frr == 0.0


def test_perfectly_separable_simulated_users_give_eer_zero():
    data = simulate(users=4, sessions=4, test_sessions=0, separation=4.0, seed=11)
    features = extract_features(data.train)
    best = cross_validate(TREES, features[feature_columns(features)], features[c.USER_ID].to_numpy(),
                          features[c.SESSION_ID].to_numpy(), SessionPerUserKFold(4, 0))
    rates = error_rates(*genuine_and_impostor_scores(best.session_proba, best.truth), 0.01)
    assert rates.eer == 0.0 and rates.auc == 1.0


def test_shuffled_labels_give_eer_near_one_half():
    data = simulate(users=8, sessions=4, test_sessions=0, seed=12)
    features = extract_features(data.train)
    rng = np.random.default_rng(0)
    sessions = features[c.SESSION_ID].to_numpy()
    shuffled = rng.permutation(features[c.USER_ID].to_numpy())  # one row per session: labels shuffled
    best = cross_validate(TREES, features[feature_columns(features)], shuffled, sessions, SessionPerUserKFold(4, 0))
    rates = error_rates(*genuine_and_impostor_scores(best.session_proba, best.truth), 0.05)
    assert 0.25 <= rates.eer <= 0.75
    assert 0.25 <= rates.auc <= 0.75


def test_threshold_meets_the_target_false_accept_rate_and_is_the_lowest_that_does():
    rng = np.random.default_rng(1)
    impostor = rng.random(1000)
    genuine = rng.random(100) * 0.5 + 0.5
    for target in (0.0, 0.01, 0.05, 0.2):
        rates = error_rates(genuine, impostor, target)
        assert rates.far <= target
        lower = np.nextafter(np.sort(impostor[impostor < rates.threshold])[-1], -np.inf)
        assert np.mean(impostor >= lower) > target  # any lower threshold breaks the target
    assert threshold_for_far(np.array([0.2, 0.5, 0.5, 0.9]), 0.25) > 0.5  # ties are not split
    with pytest.raises(ValueError):
        threshold_for_far(impostor, 1.5)


def test_claims_are_decided_and_bad_claims_reported():
    proba = proba_table([[0.9, 0.1], [0.3, 0.7]], ["s1", "s2"], ["a", "b"])
    claims = pd.DataFrame({c.SESSION_ID: ["s1", "s2", "s2", "zz", "s1"],
                           "claimed_user_id": ["a", "a", "b", "a", "nobody"]})
    out = verify_claims(proba, claims, threshold=0.5)
    assert list(out["accepted"]) == [True, False, True, False, False]
    assert list(out["score"][:3]) == [0.9, 0.3, 0.7]
    assert list(out["problem"]) == ["", "", "", "unknown session", "unknown user"]
    assert (out["threshold"][:3] == 0.5).all() and out["threshold"][3:].isna().all()  # no score, no threshold
    with pytest.raises(KeyError):
        verify_claims(proba, claims.drop(columns=["claimed_user_id"]), 0.5)


def test_open_set_verdicts():
    best = pd.Series([0.9, 0.2], index=["s1", "s2"])
    users = pd.Series(["a", "b"], index=["s1", "s2"])
    assert list(open_set_verdicts(best, users, 0.5)) == ["a", "unknown"]


def test_predictions_gain_an_unknown_verdict(small_simulation):
    features = extract_features(small_simulation.train)
    X = features[feature_columns(features)]
    model = build_pipeline("extra_trees", {"n_estimators": 30}).fit(X, features[c.USER_ID])
    out = predict_sessions(model, features, unknown_below=1.01)
    assert (out["verdict"] == "unknown").all()
    assert (predict_sessions(model, features, unknown_below=0.0)["verdict"] == out[c.USER_ID]).all()
