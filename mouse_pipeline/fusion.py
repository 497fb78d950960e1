"""Fusing window probabilities into one claim score per (session, user).

A session (or its first N actions) is scored as one or more windows; the
model gives each window a probability per known user. A *fusion* turns the
windows of a session into a score per user: the score of the claim "this
session is user u". Candidates (``EPS`` keeps logs of zero probabilities finite):

``mean_proba``
    mean over windows of p_u (today's identification score);
``mean_log_proba``
    mean of log p_u;
``mean_llr``
    mean log-likelihood ratio of u against the mean of the other users,
    log p_u - log mean_{v != u} p_v;
``mean_llr_best_other``
    mean log-likelihood ratio of u against the most likely other user,
    log p_u - log max_{v != u} p_v (a cohort normalisation: the claim must
    beat every other enrolled user);
``llr_best_other_of_mean``
    the same ratio computed on the session's mean probabilities;
``mean_proba_tnorm``, ``mean_llr_tnorm``
    ``mean_proba`` or ``mean_llr``, then T-normalised (test normalisation,
    Auckenthaler et al. 2000, with every enrolled user as the cohort): the
    claim's score minus the mean of the same session's scores for all users,
    divided by their standard deviation: how far the claimed user stands out
    among the enrolled users for this session, on one scale for every session
    (at most sqrt(n_users - 1)), so that one threshold serves sessions whose
    raw scores run high or low. Within a session the users keep their order.
    It ignores how confident the raw scores are, so a flat session with one
    user slightly ahead can score like a clear one; the fusion is chosen by
    EER, and what the ``unknown`` verdict catches is measured separately.

Which one a model uses is chosen by out-of-fold EER
(:func:`mouse_pipeline.calibration.calibrate_verification`) and recorded as
the run parameter ``verification.fusion``. Higher scores mean "more like u".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

#: Added to probabilities before a log (ExtraTrees gives exact zeros).
EPS = 1e-3
#: The fusion of a model calibrated before fusions were chosen: the mean window probability.
LEGACY_FUSION = "mean_proba"


def best_other(values: np.ndarray) -> np.ndarray:
    """For each row and column u, the largest value of the row outside column u (shape kept).

    A single column has no other: its result is ``-inf``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] < 2:
        return np.full(values.shape, -np.inf)
    rows = np.arange(len(values))
    top_column = values.argmax(axis=1)
    top = values[rows, top_column]
    masked = values.copy()
    masked[rows, top_column] = -np.inf
    second = masked.max(axis=1)
    is_top = np.arange(values.shape[1])[None, :] == top_column[:, None]
    return np.where(is_top, second[:, None], top[:, None])


def mean_of_others(values: np.ndarray) -> np.ndarray:
    """For each row and column u, the mean of the row outside column u (shape kept)."""
    k = values.shape[1]
    return (values.sum(axis=1, keepdims=True) - values) / max(k - 1, 1)


def cohort_normalised(scores: np.ndarray) -> np.ndarray:
    """T-norm: each score standardised against all scores of its row (mean 0, standard deviation 1).

    The cohort is every enrolled user, the claimed one included, so each row
    is shifted and scaled as a whole: a session's ranking of users, and so the
    user it names, stays that of the raw scores. A row with no spread (one
    user, or all scores equal) is only centred.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 0:
        return scores
    spread = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(spread > 1e-12, spread, 1.0)


def session_means(values: np.ndarray, codes: np.ndarray, n_sessions: int) -> np.ndarray:
    """Mean of the rows of each session: ``values`` (windows x users), ``codes`` the session number of each row."""
    totals = np.zeros((n_sessions, values.shape[1]))
    np.add.at(totals, codes, values)
    counts = np.bincount(codes, minlength=n_sessions)
    return totals / np.maximum(counts, 1)[:, None]


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(p + EPS)


def _mean_proba(p, codes, n):
    return session_means(p, codes, n)


def _mean_log_proba(p, codes, n):
    return session_means(_log(p), codes, n)


def _mean_llr(p, codes, n):
    return session_means(_log(p) - _log(mean_of_others(p)), codes, n)


def _mean_llr_best_other(p, codes, n):
    return session_means(_log(p) - _log(np.maximum(best_other(p), 0.0)), codes, n)


def _llr_best_other_of_mean(p, codes, n):
    mean = session_means(p, codes, n)
    return _log(mean) - _log(np.maximum(best_other(mean), 0.0))


def _mean_proba_tnorm(p, codes, n):
    return cohort_normalised(_mean_proba(p, codes, n))


def _mean_llr_tnorm(p, codes, n):
    return cohort_normalised(_mean_llr(p, codes, n))


#: Every candidate fusion, in order of preference when two score the same.
FUSIONS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "mean_proba": _mean_proba,
    "mean_log_proba": _mean_log_proba,
    "mean_llr": _mean_llr,
    "mean_llr_best_other": _mean_llr_best_other,
    "llr_best_other_of_mean": _llr_best_other_of_mean,
    "mean_proba_tnorm": _mean_proba_tnorm,
    "mean_llr_tnorm": _mean_llr_tnorm,
}


def fuse(proba: np.ndarray, classes: np.ndarray, sessions: np.ndarray, fusion: str) -> pd.DataFrame:
    """Claim scores per session and user.

    Parameters
    ----------
    proba:
        Window probabilities, shape (n_windows, n_users), columns in the order of ``classes``.
    classes:
        The users (the model's ``classes_``).
    sessions:
        The session id of each window (n_windows).
    fusion:
        A key of :data:`FUSIONS`.

    Returns
    -------
    pandas.DataFrame
        Index: session id (text, sorted); one float column per user (text): the fused score.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {sorted(FUSIONS)}")
    ids, codes = np.unique(np.asarray(sessions).astype(str), return_inverse=True)
    scores = FUSIONS[fusion](np.asarray(proba, dtype=np.float64), codes.ravel(), len(ids))
    return pd.DataFrame(scores, index=pd.Index(ids, name="session_id"), columns=np.asarray(classes).astype(str))


def best_users(scores: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The user with the highest fused score in each session, and that score (ties: the first column)."""
    values = scores.to_numpy()
    top = values.argmax(axis=1)
    columns = np.asarray(scores.columns)
    return (pd.Series(columns[top], index=scores.index),
            pd.Series(values[np.arange(len(values)), top], index=scores.index))
