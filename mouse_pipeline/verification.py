"""Verification (is this session really the claimed user?) and open-set identification.

Scores are the identification model's session probabilities: the score of a
claim "session s is user u" is the probability the model gives to u for s.
Calibration uses out-of-fold probabilities only, so the thresholds are set on
sessions the model never trained on:

* *genuine* scores: every session against its true user;
* *impostor* scores: every session against every other user.

The decision threshold is the lowest one whose false-accept rate on the
impostor scores does not exceed a target. The equal error rate (EER), where
false accepts and false rejects balance, and the ROC AUC summarise the
separation, as the biometrics field reports it.

Open set: a session whose best score falls below a threshold calibrated the
same way (known users' best scores against those of users left out of
training, :func:`leave_one_user_out_scores`) gets the verdict ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import roc_auc_score, roc_curve

from mouse_pipeline import contract as c
from mouse_pipeline.evaluation import session_probabilities
from mouse_pipeline.figures import png_bytes, pyplot
from mouse_pipeline.modelling import SessionPerUserKFold

UNKNOWN = "unknown"


def genuine_and_impostor_scores(proba: pd.DataFrame, truth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every session against its true user (genuine) and every other user (impostor).

    ``proba`` is indexed by session with one column per user; ``truth`` gives
    each session's user. A true user missing from the columns scores 0.
    """
    values = proba.to_numpy(dtype=np.float64)
    users = np.asarray(proba.columns).astype(str)
    own = users[None, :] == truth.loc[proba.index].astype(str).to_numpy()[:, None]
    genuine = np.where(own.any(axis=1), (values * own).sum(axis=1), 0.0)
    return genuine, values[~own]


@dataclass(frozen=True)
class ErrorRates:
    """Separation of genuine from impostor scores, and the error rates at a threshold."""

    eer: float
    auc: float
    threshold: float
    far: float  # share of impostor scores accepted at the threshold
    frr: float  # share of genuine scores rejected at the threshold
    target_far: float
    curve: pd.DataFrame  # false_accept_rate, false_reject_rate, threshold


def threshold_for_far(impostor: np.ndarray, target_far: float) -> float:
    """The lowest threshold (accept when ``score >= threshold``) whose false-accept rate on
    ``impostor`` is at most ``target_far``."""
    if not 0 <= target_far <= 1:
        raise ValueError("target_far must be within [0, 1]")
    ordered = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    allowed = int(np.floor(target_far * len(ordered) + 1e-9))
    if len(ordered) == 0:
        return 0.0
    if allowed >= len(ordered):
        return float(ordered[-1])
    # Accept strictly above the (allowed+1)-th highest impostor score, ties included.
    return float(np.nextafter(ordered[allowed], np.inf))


def error_rates(genuine: np.ndarray, impostor: np.ndarray, target_far: float) -> ErrorRates:
    """EER, ROC AUC, the threshold for ``target_far`` and the FAR/FRR there."""
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("need both genuine and impostor scores")
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    scores = np.r_[genuine, impostor]
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    k = int(np.argmin(np.abs(fnr - fpr)))
    eer = float((fpr[k] + fnr[k]) / 2)
    threshold = threshold_for_far(impostor, target_far)
    return ErrorRates(
        eer=eer,
        auc=float(roc_auc_score(labels, scores)),
        threshold=threshold,
        far=float(np.mean(impostor >= threshold)),
        frr=float(np.mean(genuine < threshold)),
        target_far=target_far,
        curve=pd.DataFrame({"false_accept_rate": fpr, "false_reject_rate": fnr,
                            "threshold": np.minimum(thresholds, 1.0)}),
    )


def verify_claims(proba: pd.DataFrame, claims: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Decide each claim ``(session_id, claimed_user_id)``.

    Returns one row per claim, in the claims' order: ``session_id``,
    ``claimed_user_id``, ``score``, ``accepted``, ``threshold`` and ``problem``
    (empty, or why the claim could not be scored: an unknown session or a
    user the model does not know; such claims are kept and rejected).
    """
    missing = {"session_id", "claimed_user_id"} - set(claims.columns)
    if missing:
        raise KeyError(f"claims lack column(s) {sorted(missing)}")
    sessions = claims[c.SESSION_ID].astype(str).to_numpy()
    users = claims["claimed_user_id"].astype(str).to_numpy()
    known_session = np.isin(sessions, proba.index.astype(str))
    known_user = np.isin(users, np.asarray(proba.columns).astype(str))
    index = pd.Index(proba.index.astype(str))
    columns = pd.Index(np.asarray(proba.columns).astype(str))
    ok = known_session & known_user
    score = np.zeros(len(claims))
    if ok.any():
        score[ok] = proba.to_numpy()[index.get_indexer(sessions[ok]), columns.get_indexer(users[ok])]
    problem = np.where(~known_session, "unknown session", np.where(~known_user, "unknown user", ""))
    return pd.DataFrame(
        {
            c.SESSION_ID: sessions,
            "claimed_user_id": users,
            "score": score,
            "accepted": ok & (score >= threshold),
            "threshold": threshold,
            "problem": problem,
        }
    )


def leave_one_user_out_scores(
    build: Callable[[], object], X: pd.DataFrame, y: np.ndarray, sessions: np.ndarray, n_splits: int = 2,
    random_state: int = 0, n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Best-score of sessions from known users and from users never seen in training.

    For each user u and each fold of a session-grouped K-fold over the other
    users, a model is trained on the fold's training sessions without u; it
    scores the fold's held-out sessions (known users, out-of-fold) and all of
    u's sessions (an unknown user). Returns (known best scores, unknown best
    scores), one per session and fold.
    """
    y = np.asarray(y).astype(str)
    sessions = np.asarray(sessions).astype(str)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_without_user)(build, X, y, sessions, user, n_splits, random_state) for user in np.unique(y)
    )
    return np.concatenate([k for k, _ in parts]), np.concatenate([u for _, u in parts])


def _without_user(build, X, y, sessions, user, n_splits, random_state) -> tuple[np.ndarray, np.ndarray]:
    """Known and unknown best scores with ``user`` left out of training (one user of the LOUO loop)."""
    others = np.flatnonzero(y != user)
    unknown_rows = np.flatnonzero(y == user)
    known_scores, unknown_scores = [], []
    cv = SessionPerUserKFold(n_splits, random_state)
    for train, test in cv.split(X.iloc[others], y[others], sessions[others]):
        model = clone(build()).fit(X.iloc[others[train]], y[others[train]])
        held = others[test]
        known = session_probabilities(model.predict_proba(X.iloc[held]), model.classes_, sessions[held])
        unknown = session_probabilities(model.predict_proba(X.iloc[unknown_rows]), model.classes_,
                                        sessions[unknown_rows])
        known_scores.append(known.max(axis=1).to_numpy())
        unknown_scores.append(unknown.max(axis=1).to_numpy())
    return np.concatenate(known_scores), np.concatenate(unknown_scores)


def open_set_verdicts(best_score: pd.Series, best_user: pd.Series, threshold: float) -> pd.Series:
    """The best user, or ``unknown`` when the best score is below ``threshold``."""
    return best_user.where(best_score >= threshold, UNKNOWN)


def det_curve_png(curves: dict[str, ErrorRates]) -> bytes:
    """ROC curves (false-reject against false-accept rate, log false-accept axis) as a PNG."""
    fig, ax = pyplot().subplots(figsize=(5, 4), dpi=90)
    for name, rates in curves.items():
        curve = rates.curve
        ax.plot(np.maximum(curve["false_accept_rate"], 1e-4), curve["false_reject_rate"],
                label=f"{name} (EER {rates.eer:.1%}, AUC {rates.auc:.3f})")
        ax.scatter([max(rates.far, 1e-4)], [rates.frr], s=20)
    ax.plot([1e-4, 1], [1e-4, 1], color="lightgrey", linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel("false-accept rate")
    ax.set_ylabel("false-reject rate")
    ax.set_title("Error trade-off (dots: chosen thresholds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)
