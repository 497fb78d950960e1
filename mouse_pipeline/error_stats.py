"""How sure are the verification error rates? Bootstrap intervals over users, per-user EER, Gini.

Claims are every (session, user) pair of a score table: *genuine* when the
user is the session's own, *impostor* otherwise. Users, not sessions, are
the unit that varies between deployments (some users are easy, some are
not), so the bootstrap resamples users: a resample of U users drawn with
replacement weighs a genuine claim of user a by a's multiplicity w_a and an
impostor claim of a's session against user b by w_a * w_b. The weighted EER
and ROC AUC of every resample are computed at once from one sort of the
scores (cumulative weights over tied-score groups), in chunks of resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Most resample x score cells held in memory at once.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class ClaimScores:
    """Every claim of a score table, flattened (one entry per session and user).

    ``score`` the claim score; ``owner`` the code of the session's true user;
    ``claimed`` the code of the claimed user; ``users`` the user id of each code.
    """

    score: np.ndarray
    owner: np.ndarray
    claimed: np.ndarray
    users: np.ndarray

    @property
    def genuine(self) -> np.ndarray:
        return self.owner == self.claimed

    @classmethod
    def of(cls, scores: pd.DataFrame, truth: pd.Series) -> "ClaimScores":
        """Claims of ``scores`` (index: session, one column per user) given each session's user ``truth``.

        Sessions whose user is not a column are left out (they have no genuine claim).
        """
        users = np.asarray(scores.columns).astype(str)
        owner = pd.Index(users).get_indexer(truth.loc[scores.index].astype(str).to_numpy())
        keep = owner >= 0
        values = scores.to_numpy(dtype=np.float64)[keep]
        n_sessions, n_users = values.shape
        return cls(
            score=values.ravel(),
            owner=np.repeat(owner[keep], n_users),
            claimed=np.tile(np.arange(n_users), n_sessions),
            users=users,
        )


def weighted_eer_auc(score: np.ndarray, genuine: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EER and ROC AUC of scores under each row of ``weights``.

    Parameters
    ----------
    score, genuine:
        One entry per claim (n,): the score, and whether the claim is genuine.
    weights:
        Shape (r, n): the weight of every claim in each of r weightings.

    Returns
    -------
    (eer, auc), each shape (r,). A weighting without genuine or impostor weight gives NaN.
    Accepting ``score >= t``: with unit weights, the same EER (the ROC point where the false-accept and
    false-reject rates are closest, their mean) and AUC as :func:`mouse_pipeline.verification.error_rates`.
    """
    order = np.argsort(-score, kind="stable")
    ordered = score[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    g = genuine[order]
    w = weights[:, order]
    tp = np.cumsum(w * g, axis=1)[:, last_of_tie]
    fp = np.cumsum(w * ~g, axis=1)[:, last_of_tie]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.c_[np.zeros(len(w)), tp / tp[:, -1:]]
        fpr = np.c_[np.zeros(len(w)), fp / fp[:, -1:]]
    fnr = 1 - tpr
    k = np.argmin(np.where(np.isnan(fpr), np.inf, np.abs(fnr - fpr)), axis=1)
    rows = np.arange(len(w))
    eer = (fpr[rows, k] + fnr[rows, k]) / 2
    auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
    bad = (tp[:, -1] <= 0) | (fp[:, -1] <= 0)
    return np.where(bad, np.nan, eer), np.where(bad, np.nan, auc)


def user_resample_weights(claims: ClaimScores, counts: np.ndarray) -> np.ndarray:
    """Claim weights (r, n) for user multiplicities ``counts`` (r, n_users): w_a for a genuine claim of
    user a, w_a * w_b for a's session claimed as b."""
    owner_w = counts[:, claims.owner]
    return np.where(claims.genuine, owner_w, owner_w * counts[:, claims.claimed]).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval."""

    estimate: float
    low: float
    high: float


def bootstrap_intervals(claims: ClaimScores, n_resamples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, Interval]:
    """Percentile intervals of the EER and ROC AUC over resamples of users (``"eer"``, ``"auc"``).

    Resamples that hold a single distinct user (no impostor claim) are dropped.
    """
    n_users = len(claims.users)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_resamples)
    chunk = max(1, _CHUNK_CELLS // max(len(claims.score), 1))
    eers, aucs = [], []
    for lo in range(0, n_resamples, chunk):
        eer, auc = weighted_eer_auc(claims.score, claims.genuine, user_resample_weights(claims, counts[lo:lo + chunk]))
        eers.append(eer)
        aucs.append(auc)
    ones = np.ones((1, len(claims.score)))
    point_eer, point_auc = weighted_eer_auc(claims.score, claims.genuine, ones)
    tail = (1 - level) / 2 * 100
    out = {}
    for name, point, values in (("eer", point_eer[0], np.concatenate(eers)),
                                ("auc", point_auc[0], np.concatenate(aucs))):
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        out[name] = Interval(float(point), float(low), float(high))
    return out


def per_user_eer(claims: ClaimScores) -> pd.DataFrame:
    """EER and ROC AUC of each claimed user: that user's genuine sessions against other users' sessions
    claiming that user. Columns: user_id, genuine_sessions, impostor_sessions, eer, auc; worst (highest
    EER) first."""
    rows = []
    for code, user in enumerate(claims.users):
        mine = claims.claimed == code
        genuine = claims.genuine[mine]
        eer, auc = weighted_eer_auc(claims.score[mine], genuine, np.ones((1, int(mine.sum()))))
        rows.append({"user_id": user, "genuine_sessions": int(genuine.sum()),
                     "impostor_sessions": int((~genuine).sum()), "eer": float(eer[0]), "auc": float(auc[0])})
    table = pd.DataFrame(rows, columns=["user_id", "genuine_sessions", "impostor_sessions", "eer", "auc"])
    return table.sort_values(["eer", "user_id"], ascending=[False, True], ignore_index=True)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; near 1: one holds everything); 0 when all are 0.

    NaN values are ignored.
    """
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[~np.isnan(v)])
    if len(v) == 0 or v.sum() <= 0:
        return 0.0
    n = len(v)
    # Mean absolute difference over 2 * mean, from the sorted values in O(n log n).
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * v) / (n * v.sum()))
