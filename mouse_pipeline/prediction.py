"""Predicting the user of each test session and labelling the test rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.evaluation import session_probabilities
from mouse_pipeline.fusion import fuse
from mouse_pipeline.verification import UNKNOWN, ScoringRule, open_set_decisions  # noqa: F401 (UNKNOWN re-exported)


def model_inputs(model, features: pd.DataFrame) -> pd.DataFrame:
    """The feature columns the fitted model was trained on, in its order.

    Raises KeyError naming the missing columns when the table lacks some.
    """
    expected = list(model.feature_names_in_)
    missing = [col for col in expected if col not in features.columns]
    if missing:
        raise KeyError(f"feature table lacks {len(missing)} column(s) the model needs: {missing[:10]}")
    return features[expected]


def window_probabilities(model, features: pd.DataFrame) -> np.ndarray:
    """The fitted model's probabilities of every row of a feature table (n_rows x n_classes)."""
    return model.predict_proba(model_inputs(model, features))


def session_probabilities_of(model, features: pd.DataFrame, proba: np.ndarray | None = None) -> pd.DataFrame:
    """Class probabilities per session (windows averaged): index session id, a column per user.

    ``proba``: the model's window probabilities of ``features`` when already computed.
    """
    if proba is None:
        proba = window_probabilities(model, features)
    table = session_probabilities(proba, model.classes_, features[c.SESSION_ID].to_numpy())
    table.columns = np.asarray(table.columns).astype(str)
    return table


def predict_sessions(model, features: pd.DataFrame, unknown_below: float | None = None,
                     rule: ScoringRule | None = None, n_actions: pd.Series | None = None) -> pd.DataFrame:
    """Most probable user and runner-up of each session, windows averaged.

    ``features`` is a feature table (one row per window); ``model`` a fitted
    classifier with ``predict_proba``, ``classes_`` and ``feature_names_in_``.
    With a ``rule`` that has an ``unknown`` threshold, the ``verdict`` column
    gives the open-set verdict (:func:`mouse_pipeline.verification.open_set_decisions`:
    the user of the highest fused score, or ``unknown``), the thresholds chosen
    by each session's number of actions ``n_actions`` (index: session id; None:
    whole-session thresholds). ``unknown_below`` alone is the legacy rule: ``unknown``
    when the best session probability is below it.
    """
    proba = window_probabilities(model, features)
    by_session = session_probabilities_of(model, features, proba)
    values = by_session.to_numpy()
    classes = np.asarray(by_session.columns)
    order = np.argsort(-values, axis=1, kind="stable")
    rows = np.arange(len(values))
    second = order[:, 1] if values.shape[1] > 1 else order[:, 0]
    out = pd.DataFrame(
        {
            c.SESSION_ID: by_session.index.astype(str),
            c.USER_ID: classes[order[:, 0]],
            "probability": values[rows, order[:, 0]],
            "runner_up_user_id": classes[second] if values.shape[1] > 1 else "",
            "runner_up_probability": values[rows, second] if values.shape[1] > 1 else 0.0,
            "n_windows": features[c.SESSION_ID].value_counts().loc[by_session.index].to_numpy(),
        }
    )
    if rule is None and unknown_below is not None:
        rule = ScoringRule(unknown_threshold=unknown_below)
    if rule is not None and rule.unknown_threshold is not None:
        scores = fuse(proba, model.classes_, features[c.SESSION_ID].to_numpy(), rule.fusion)
        out["verdict"] = open_set_decisions(scores, n_actions, rule)["verdict"].reindex(out[c.SESSION_ID]).to_numpy()
    return out


def label_test_rows(events: pd.DataFrame, session_predictions: pd.DataFrame) -> pd.DataFrame:
    """Every test row in its original file order, with the predicted ``user_id``.

    The columns are the notebook's output format: the training columns of
    the contract. A row of a session without a prediction raises.
    """
    ordered = events.sort_values(c.SOURCE_LINE, kind="stable") if c.SOURCE_LINE in events else events
    users = session_predictions.set_index(c.SESSION_ID)[c.USER_ID]
    labelled = ordered.assign(**{c.USER_ID: ordered[c.SESSION_ID].map(users)})
    unlabelled = labelled[c.USER_ID].isna()
    if unlabelled.any():
        missing = labelled.loc[unlabelled, c.SESSION_ID].unique()[:5].tolist()
        raise ValueError(f"no prediction for session(s) {missing}")
    return labelled[list(c.TRAIN_COLUMNS)].reset_index(drop=True)
