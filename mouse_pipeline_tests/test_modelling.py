"""Session-grouped cross-validation, model selection, evaluation and prediction helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.evaluation import (
    confusion_heatmap_png, evaluation_report, session_probabilities, session_scores, top_k_accuracy,
)
from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.modelling import (
    Candidate, SessionPerUserKFold, build_feature_matrix, cross_validate, signed_log1p,
)
from mouse_pipeline.prediction import label_test_rows, predict_sessions


def rows(users=4, sessions=6, windows=3):
    """User and session of each row: ``windows`` rows per session."""
    y = np.repeat([f"u{u}" for u in range(users)], sessions * windows)
    groups = np.repeat([f"u{u}-s{s}" for u in range(users) for s in range(sessions)], windows)
    return y, groups


def test_no_held_out_session_leaks_into_training_and_one_session_per_user_per_fold():
    y, groups = rows()
    cv = SessionPerUserKFold(n_splits=6, random_state=1)
    seen = []
    for train, test in cv.split(np.zeros((len(y), 1)), y, groups):
        assert not set(groups[train]) & set(groups[test])
        held = pd.Series(groups[test]).drop_duplicates()
        assert held.str.split("-").str[0].value_counts().eq(1).all()  # one session per user
        assert len(held) == 4
        seen.extend(held)
    assert sorted(seen) == sorted(set(groups))  # every session held out exactly once


def test_users_with_fewer_sessions_than_folds_spread_over_folds():
    y, groups = rows(users=5, sessions=2, windows=1)
    cv = SessionPerUserKFold(n_splits=4)
    sizes = [len(test) for _, test in cv.split(np.zeros((len(y), 1)), y, groups)]
    assert sum(sizes) == 10 and max(sizes) - min(sizes) <= 1


def test_folds_need_groups():
    with pytest.raises(ValueError):
        list(SessionPerUserKFold(3).split(np.zeros((4, 1)), np.zeros(4), None))


def test_signed_log1p_keeps_sign_and_zero():
    assert list(signed_log1p(np.array([-np.e + 1, 0.0, np.e - 1]))) == pytest.approx([-1, 0, 1])


def test_session_scores_and_top3():
    proba = pd.DataFrame([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]], columns=["a", "b", "c"],
                         index=["s1", "s2", "s3"])
    truth = pd.Series(["a", "b", "b"], index=proba.index)
    scores = session_scores(truth, proba)
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert top_k_accuracy(truth, proba, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(truth, proba, 2) == pytest.approx(1.0)
    report = evaluation_report(truth, proba)
    assert report.confusion.loc["b", "a"] == 1 and report.confusion.loc["b", "c"] == 1
    assert report.per_user["user_id"].tolist() == ["a", "b", "c", "macro average"]
    macro = report.per_user.set_index("user_id").loc["macro average"]
    assert macro["f1-score"] == pytest.approx(scores["macro_f1"]) and macro["support"] == 3
    png = confusion_heatmap_png(pd.DataFrame([[2, 0], [1, 3]], index=["-2416201411472988629", "u2"],
                                             columns=["-2416201411472988629", "u2"]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_window_probabilities_are_averaged_per_session():
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]])
    out = session_probabilities(proba, np.array(["a", "b"]), np.array(["s1", "s1", "s2"]))
    assert out.loc["s1"].tolist() == [0.5, 0.5] and out.loc["s2", "b"] == 0.8


@pytest.fixture(scope="module")
def matrix(small_simulation):
    config = FeatureConfig(window_size=40)
    train = extract_features(small_simulation.train, config)
    test = extract_features(small_simulation.test, config)
    return build_feature_matrix(train, test)


def test_feature_matrix_scales_with_training_rows_only(matrix):
    assert list(matrix.test.columns) == matrix.columns == list(matrix.train.columns)
    assert np.allclose(matrix.train_scaled.mean(axis=0), 0, atol=1e-9)
    scaler = matrix.preprocessor.named_steps["scale"]
    expected = (signed_log1p(matrix.test.to_numpy()) - scaler.mean_) / scaler.scale_
    assert np.allclose(matrix.test_scaled, expected)


def test_feature_matrix_rejects_test_features_missing_columns(matrix, small_simulation):
    train = extract_features(small_simulation.train)
    with pytest.raises(KeyError, match="speed_mean"):
        build_feature_matrix(train, train.drop(columns=["speed_mean"]))


MLP = Candidate("mlp_16", "mlp", {"hidden_layer_sizes": (16,), "alpha": 0.01, "max_iter": 300})


def test_a_cross_validated_candidate_predicts_sessions_and_labels_test_rows(matrix, small_simulation):
    cv = cross_validate(MLP, matrix.train, matrix.labels, matrix.sessions, SessionPerUserKFold(4, 0))
    assert cv.scores["macro_f1"] > 0.5  # 6 well-separated simulated users
    assert len(cv.session_proba) == len(set(matrix.sessions))
    model = MLP.build(0).fit(matrix.train, matrix.labels)
    # The pipeline's own scaler is the feature matrix's (same rows, same transform).
    assert np.allclose(model.named_steps["scale"].mean_, matrix.preprocessor.named_steps["scale"].mean_)
    test_features = extract_features(small_simulation.test, FeatureConfig(window_size=40))
    sessions = predict_sessions(model, test_features)
    assert len(sessions) == small_simulation.test[c.SESSION_ID].nunique()
    assert (sessions["probability"] >= sessions["runner_up_probability"]).all()
    truth = small_simulation.truth.set_index(c.SESSION_ID)[c.USER_ID]
    predicted = sessions.set_index(c.SESSION_ID)[c.USER_ID]
    assert (predicted == truth.loc[predicted.index]).mean() >= 0.5
    labelled = label_test_rows(small_simulation.test.assign(**{c.SOURCE_LINE: np.arange(len(small_simulation.test))}),
                               sessions)
    assert len(labelled) == len(small_simulation.test)
    assert list(labelled[c.UID]) == list(small_simulation.test[c.UID])  # original order
    assert tuple(labelled.columns) == c.TRAIN_COLUMNS


def test_training_is_deterministic(matrix):
    a, b = (cross_validate(MLP, matrix.train, matrix.labels, matrix.sessions, SessionPerUserKFold(3, 0))
            for _ in range(2))
    pd.testing.assert_frame_equal(a.session_proba, b.session_proba)
