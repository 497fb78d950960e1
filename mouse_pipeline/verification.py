"""Verification (is this session really the claimed user?) and open-set identification.

The score of a claim "session s is user u" is the identification model's
window probabilities for s fused into one number for u
(:mod:`mouse_pipeline.fusion`: a mean probability, a log-likelihood ratio, a
T-normalised score...; higher means more like u). Nothing here assumes a
scale. Calibration uses out-of-fold scores only, so the thresholds are set on
sessions the model never trained on:

* *genuine* scores: every session against its true user;
* *impostor* scores: every session against every other user.

The decision threshold is the lowest one whose false-accept rate on the
impostor scores does not exceed a target. The equal error rate (EER), where
false accepts and false rejects balance, and the ROC AUC summarise the
separation, as the biometrics field reports it.

Open set: a session whose best score falls below a threshold calibrated the
same way (known users' best scores against those of users left out of
training, :func:`mouse_pipeline.calibration.open_set_scores`) gets the verdict ``unknown``.

What scoring applies is a :class:`ScoringRule`: the chosen fusion of window
probabilities (:mod:`mouse_pipeline.fusion`), the verification thresholds
and the ``unknown`` thresholds, each calibrated for sessions of a given
number of actions (:mod:`mouse_pipeline.calibration` computes them; the
rule is read back from a model's MLflow metrics and params with
:meth:`ScoringRule.from_run`). A session of n actions is judged with
thresholds calibrated on the first N actions of training sessions, N = n
(interpolated between calibrated N: short sessions score differently from
long ones), else with the whole-session thresholds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from mouse_pipeline import contract as c
from mouse_pipeline.figures import png_bytes, pyplot
from mouse_pipeline.fusion import LEGACY_FUSION, best_users

UNKNOWN = "unknown"
#: Run parameters and artifact that carry a :class:`ScoringRule` besides its threshold metrics.
FUSION_PARAM = "verification.fusion"
UNKNOWN_MODE_PARAM = "verification.unknown_mode"
USER_OFFSETS_ARTIFACT = "verification/unknown_user_offsets.json"
UNKNOWN_MODES = ("global", "per_user")
_BY_ACTIONS = re.compile(r"^(verification|unknown)_threshold_(\d+)_actions$")


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


def lookup_scores(scores: pd.DataFrame, sessions: np.ndarray, users: np.ndarray) -> np.ndarray:
    """``scores[session, user]`` for each pair (float array); NaN where the session or the user is not in the table."""
    rows = pd.Index(scores.index.astype(str)).get_indexer(np.asarray(sessions).astype(str))
    columns = pd.Index(np.asarray(scores.columns).astype(str)).get_indexer(np.asarray(users).astype(str))
    ok = (rows >= 0) & (columns >= 0)
    out = np.full(len(rows), np.nan)
    out[ok] = scores.to_numpy(dtype=np.float64)[rows[ok], columns[ok]]
    return out


def verify_claims(proba: pd.DataFrame, claims: pd.DataFrame, threshold: float | np.ndarray) -> pd.DataFrame:
    """Decide each claim ``(session_id, claimed_user_id)``.

    ``proba`` holds a score per session (index) and user (columns): the session probabilities, or fused
    scores (:func:`mouse_pipeline.fusion.fuse`); ``threshold`` is one value or one per claim.
    Returns one row per claim, in the claims' order: ``session_id``,
    ``claimed_user_id``, ``score`` and ``threshold`` (both empty when not scored), ``accepted`` and
    ``problem`` (empty, or why the claim could not be scored: an unknown session or a
    user the model does not know; such claims are kept and rejected).
    """
    missing = {"session_id", "claimed_user_id"} - set(claims.columns)
    if missing:
        raise KeyError(f"claims lack column(s) {sorted(missing)}")
    sessions = claims[c.SESSION_ID].astype(str).to_numpy()
    users = claims["claimed_user_id"].astype(str).to_numpy()
    known_session = np.isin(sessions, proba.index.astype(str))
    known_user = np.isin(users, np.asarray(proba.columns).astype(str))
    ok = known_session & known_user
    score = lookup_scores(proba, sessions, users)
    problem = np.where(~known_session, "unknown session", np.where(~known_user, "unknown user", ""))
    return pd.DataFrame(
        {
            c.SESSION_ID: sessions,
            "claimed_user_id": users,
            "score": score,
            "accepted": ok & (np.nan_to_num(score, nan=-np.inf) >= threshold),
            "threshold": np.where(ok, threshold, np.nan),
            "problem": problem,
        }
    )


def open_set_verdicts(best_score: pd.Series, best_user: pd.Series, threshold: float | np.ndarray) -> pd.Series:
    """The best user, or ``unknown`` when the best score is below ``threshold`` (one value or one per session)."""
    return best_user.where(best_score >= threshold, UNKNOWN)


def threshold_by_length(whole: float, by_actions: Mapping[int, float], n_actions: np.ndarray) -> np.ndarray:
    """The threshold for each session of ``n_actions`` actions (float array; NaN: length unknown).

    ``by_actions`` holds thresholds calibrated on the first N actions of sessions (N -> threshold): a
    session of n actions gets the one of N = n, interpolated linearly in log N between calibrated N,
    and the nearest one outside their range. ``whole`` when ``by_actions`` is empty or the length unknown.
    """
    n = np.asarray(n_actions, dtype=np.float64)
    if not by_actions:
        return np.full(len(n), float(whole))
    grid = np.array(sorted(by_actions), dtype=np.float64)
    values = np.array([by_actions[int(k)] for k in grid], dtype=np.float64)
    known = ~np.isnan(n) & (n > 0)
    out = np.full(len(n), float(whole))
    out[known] = np.interp(np.log(n[known]), np.log(grid), values)
    return out


def _shifted(thresholds: np.ndarray, n_actions: np.ndarray, shift: float) -> np.ndarray:
    """``thresholds + shift`` where the length is known (the whole-session threshold stands elsewhere)."""
    n = np.asarray(n_actions, dtype=np.float64)
    return np.where(~np.isnan(n) & (n > 0), thresholds + shift, thresholds)


@dataclass(frozen=True)
class ScoringRule:
    """How a model's window probabilities become decisions: fusion, thresholds, ``unknown`` mode.

    A claim is accepted when its fused score is at least the verification threshold; a session is
    ``unknown`` when its best user's fused score, less that user's offset (per_user mode), is below the
    ``unknown`` threshold. Thresholds depend on how many actions were seen:

    * the first N actions of a session (a *prefix*) are judged with the thresholds calibrated on prefixes
      of N actions (``*_thresholds``; between calibrated N, interpolated in log N: :func:`threshold_by_length`);
    * a whole session of n actions with the prefix threshold of N = n plus a *shift* calibrated so that
      the rule meets its targets on whole out-of-fold sessions (a prefix of n actions of a longer session
      scores differently from a session that ends there);
    * without prefix thresholds (a model calibrated before them), with the whole-session thresholds.

    Attributes
    ----------
    fusion:
        A key of :data:`mouse_pipeline.fusion.FUSIONS`.
    verification_threshold, unknown_threshold:
        Whole-session thresholds, regardless of length (None: no open-set threshold).
    verification_thresholds, unknown_thresholds:
        Thresholds calibrated on the first N actions of sessions (N -> threshold).
    verification_shift, unknown_shift:
        Added to the prefix thresholds for whole sessions.
    unknown_mode:
        ``"global"`` (one threshold for everyone) or ``"per_user"`` (``user_offsets`` shift each user's scores).
    user_offsets:
        Per-user score offsets (user id -> offset, in fused-score units) of the per_user mode.
    """

    fusion: str = LEGACY_FUSION
    verification_threshold: float = 0.5
    unknown_threshold: float | None = None
    verification_thresholds: Mapping[int, float] = field(default_factory=dict)
    unknown_thresholds: Mapping[int, float] = field(default_factory=dict)
    verification_shift: float = 0.0
    unknown_shift: float = 0.0
    unknown_mode: str = "global"
    user_offsets: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unknown_mode not in UNKNOWN_MODES:
            raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}, not {self.unknown_mode!r}")

    def verification_threshold_for(self, n_actions: np.ndarray, prefix: bool = False) -> np.ndarray:
        """Verification threshold of each session (or, with ``prefix``, each first-N-actions prefix) of
        ``n_actions`` actions."""
        shift = 0.0 if prefix or not self.verification_thresholds else self.verification_shift
        return _shifted(threshold_by_length(self.verification_threshold, self.verification_thresholds, n_actions),
                        n_actions, shift)

    def unknown_threshold_for(self, n_actions: np.ndarray, prefix: bool = False) -> np.ndarray:
        """``unknown`` threshold of each session (or prefix) of ``n_actions`` actions, before user offsets
        (-inf: no open-set threshold)."""
        if self.unknown_threshold is None:
            return np.full(len(np.asarray(n_actions)), -np.inf)
        shift = 0.0 if prefix or not self.unknown_thresholds else self.unknown_shift
        return _shifted(threshold_by_length(self.unknown_threshold, self.unknown_thresholds, n_actions),
                        n_actions, shift)

    def offsets_of(self, users: np.ndarray) -> np.ndarray:
        """The per-user offset of each user (0 in the global mode or for a user without one)."""
        if self.unknown_mode != "per_user":
            return np.zeros(len(np.asarray(users)))
        return np.array([float(self.user_offsets.get(str(u), 0.0)) for u in np.asarray(users)], dtype=np.float64)

    def metrics(self) -> dict[str, float]:
        """The thresholds as MLflow metrics: ``verification_threshold``, ``unknown_threshold``, their
        ``_<N>_actions`` forms and ``_shift``."""
        out = {"verification_threshold": float(self.verification_threshold),
               "verification_threshold_shift": float(self.verification_shift)}
        out.update({f"verification_threshold_{n}_actions": float(t) for n, t in self.verification_thresholds.items()})
        if self.unknown_threshold is not None:
            out["unknown_threshold"] = float(self.unknown_threshold)
            out["unknown_threshold_shift"] = float(self.unknown_shift)
            out.update({f"unknown_threshold_{n}_actions": float(t) for n, t in self.unknown_thresholds.items()})
        return out

    def params(self) -> dict[str, str]:
        """The run parameters of the rule (``verification.fusion``, ``verification.unknown_mode``)."""
        return {FUSION_PARAM: self.fusion, UNKNOWN_MODE_PARAM: self.unknown_mode}

    def offsets_json(self) -> str:
        """The per-user offsets as the JSON of :data:`USER_OFFSETS_ARTIFACT`."""
        return json.dumps({str(k): float(v) for k, v in sorted(self.user_offsets.items())}, indent=1)

    @classmethod
    def from_run(cls, metrics: Mapping[str, float], params: Mapping[str, str],
                 offsets_json: str | None = None) -> "ScoringRule":
        """The rule recorded on a model's MLflow run (metrics, params and, in the per_user mode, the offsets
        artifact's text). A run calibrated before fusions were chosen gives the legacy rule: mean window
        probability, whole-session thresholds."""
        by_actions: dict[str, dict[int, float]] = {"verification": {}, "unknown": {}}
        for key, value in metrics.items():
            match = _BY_ACTIONS.match(key)
            if match:
                by_actions[match.group(1)][int(match.group(2))] = float(value)
        unknown = metrics.get("unknown_threshold")
        mode = params.get(UNKNOWN_MODE_PARAM, "global")
        return cls(
            fusion=params.get(FUSION_PARAM, LEGACY_FUSION),
            verification_threshold=float(metrics.get("verification_threshold", 0.5)),
            unknown_threshold=None if unknown is None else float(unknown),
            verification_thresholds=by_actions["verification"],
            unknown_thresholds=by_actions["unknown"],
            verification_shift=float(metrics.get("verification_threshold_shift", 0.0)),
            unknown_shift=float(metrics.get("unknown_threshold_shift", 0.0)),
            unknown_mode=mode,
            user_offsets=json.loads(offsets_json) if offsets_json and mode == "per_user" else {},
        )


def open_set_decisions(scores: pd.DataFrame, n_actions: pd.Series | None, rule: ScoringRule) -> pd.DataFrame:
    """Open-set verdict of each session from its fused scores.

    Parameters
    ----------
    scores:
        Fused scores (index: session id; one column per known user), with ``rule.fusion``.
    n_actions:
        Number of actions of each session (index: session id); None: lengths unknown (whole-session
        thresholds).
    rule:
        The calibrated rule.

    Returns
    -------
    pandas.DataFrame
        Index: session id; ``best_user_id`` (highest fused score), ``best_score``, ``unknown_threshold``
        (after the per-user offset in that mode) and ``verdict`` (the best user, or ``unknown``).
    """
    user, best = best_users(scores)
    lengths = np.full(len(scores), np.nan) if n_actions is None else \
        n_actions.reindex(scores.index.astype(str)).to_numpy(dtype=np.float64)
    threshold = rule.unknown_threshold_for(lengths) + rule.offsets_of(user.to_numpy())
    return pd.DataFrame({"best_user_id": user, "best_score": best, "unknown_threshold": threshold,
                         "verdict": open_set_verdicts(best, user, threshold)}, index=scores.index)


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
