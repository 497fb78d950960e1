"""Calibrating verification a bank can act on, out of fold: fusion, decision curve, intervals, ``unknown``.

:func:`calibrate_verification` takes the labelled training events, the
feature settings, the model's feature columns, a ``build()`` that returns an
unfitted pipeline and the cross-validation fold of every session. It does
not depend on how the model or its settings were selected. It

1. fits one model per fold and keeps them; every training session is scored
   by the model that did not see it (out of fold);
2. fuses window probabilities into claim scores with every candidate of
   :data:`mouse_pipeline.fusion.FUSIONS` and keeps the lowest out-of-fold
   EER (ties: the higher AUC, then the simpler candidate);
3. cuts every held-out session to its first N actions (N in ``action_grid``;
   a session enters the N point only if it has at least N actions),
   featurises all prefixes of one N in one call, scores them with their
   fold's model and fuses: EER, FRR at FAR 1 %, AUC and thresholds per N,
   the *decision curve*;
4. resamples users (bootstrap) for 95 % intervals of the session EER and AUC,
   and tabulates each user's EER and their Gini coefficient;
5. calibrates the ``unknown`` verdict to a target false-unknown rate (share
   of known users' out-of-fold sessions whose best fused score is below the
   threshold), then trains without each of a few groups of users to measure
   what it catches of truly unknown users; a per-user mode (user offsets)
   is evaluated the same way.

Everything lands in a :class:`VerificationReport`: its :meth:`~VerificationReport.metrics` are the MLflow
metrics, its ``rule`` (:class:`~mouse_pipeline.verification.ScoringRule`) what scoring applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from mouse_pipeline import contract as c
from mouse_pipeline.evaluation import session_truth
from mouse_pipeline.error_stats import ClaimScores, Interval, bootstrap_intervals, gini, per_user_eer
from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.figures import png_bytes, pyplot
from mouse_pipeline.fusion import FUSIONS, best_users, fuse
from mouse_pipeline.modelling import fit_quietly
from mouse_pipeline.prefixes import DEFAULT_ACTION_COUNTS, action_counts, prefix_scores, reached_counts
from mouse_pipeline.timing import LapClock
from mouse_pipeline.verification import (
    UNKNOWN_MODES, ErrorRates, ScoringRule, det_curve_png, error_rates,
)

#: Sessions an N point needs before its rates are reported as metrics and its thresholds used.
MIN_SESSIONS = 10
#: Pseudo-count of sessions that shrinks a user's offset towards 0 in the per_user ``unknown`` mode.
OFFSET_PRIOR_SESSIONS = 5.0


# Out-of-fold models and probabilities ----------------------------------------------------------------

@dataclass(frozen=True)
class FoldModels:
    """One fitted pipeline per fold; ``classes`` every user of the training data (text, sorted)."""

    models: dict[int, object]
    classes: np.ndarray
    folds: pd.Series  # session id (text) -> fold

    def fold_of(self, sessions: np.ndarray) -> np.ndarray:
        """The fold of each session id; KeyError naming sessions without one."""
        found = self.folds.reindex(np.asarray(sessions).astype(str))
        if found.isna().any():
            raise KeyError(f"no fold for session(s) {found[found.isna()].index.unique()[:5].tolist()}")
        return found.to_numpy().astype(int)

    def probabilities(self, table: pd.DataFrame, columns: Sequence[str], sessions: np.ndarray) -> np.ndarray:
        """Out-of-fold window probabilities (n_rows x n_classes): each row scored by the model of the fold of
        its session (``sessions``: the original session id of each row); a user a fold's model never saw
        gets probability 0."""
        fold = self.fold_of(sessions)
        out = np.zeros((len(table), len(self.classes)))
        for k, model in self.models.items():
            rows = np.flatnonzero(fold == k)
            if len(rows):
                proba = model.predict_proba(table.iloc[rows][list(columns)])
                out[np.ix_(rows, class_positions(model, self.classes))] = proba
        return out


def class_positions(model, classes: np.ndarray) -> np.ndarray:
    """Position in ``classes`` of each of the fitted model's classes."""
    return pd.Index(classes).get_indexer(np.asarray(model.classes_).astype(str))


def _fit(build: Callable[[], object], X: pd.DataFrame, y: np.ndarray):
    return fit_quietly(clone(build()), X, y)


def fit_fold_models(table: pd.DataFrame, columns: Sequence[str], build: Callable[[], object], folds: pd.Series,
                    n_jobs: int = 1) -> FoldModels:
    """Fit ``build()`` once per fold on the rows of the other folds' sessions (``table``: a labelled feature
    table; ``folds``: session id -> fold)."""
    folds = pd.Series(folds.to_numpy(), index=folds.index.astype(str))
    sessions = table[c.SESSION_ID].to_numpy().astype(str)
    labels = table[c.USER_ID].to_numpy().astype(str)
    result = FoldModels({}, np.unique(labels), folds)
    fold = result.fold_of(sessions)
    keys = sorted(np.unique(fold).tolist())
    fitted = Parallel(n_jobs=n_jobs)(
        delayed(_fit)(build, table.loc[fold != k, list(columns)], labels[fold != k]) for k in keys
    )
    result.models.update(dict(zip(keys, fitted)))
    return result


# Choosing the fusion ---------------------------------------------------------------------------------

def rates_of(scores: pd.DataFrame, truth: pd.Series, target_far: float) -> ErrorRates:
    """EER, AUC and FAR/FRR at ``target_far`` of a fused score table."""
    claims = ClaimScores.of(scores, truth)
    return error_rates(claims.score[claims.genuine], claims.score[~claims.genuine], target_far)


def choose_fusion(proba: np.ndarray, classes: np.ndarray, sessions: np.ndarray, truth: pd.Series,
                  candidates: Sequence[str] = tuple(FUSIONS)) -> tuple[str, pd.DataFrame]:
    """The candidate fusion with the lowest out-of-fold EER (ties: higher AUC, then candidate order),
    and the table of every candidate's ``eer`` and ``auc`` (index: fusion)."""
    rows = []
    for name in candidates:
        rates = rates_of(fuse(proba, classes, sessions, name), truth, 0.01)
        rows.append({"fusion": name, "eer": rates.eer, "auc": rates.auc})
    table = pd.DataFrame(rows).set_index("fusion")
    order = sorted(range(len(rows)), key=lambda i: (round(rows[i]["eer"], 12), -round(rows[i]["auc"], 12), i))
    return rows[order[0]]["fusion"], table


# The decision curve ----------------------------------------------------------------------------------

def _margin(value: float) -> float:
    return 1e-9 * max(1.0, abs(value))


def lower_quantile_threshold(best: np.ndarray, target_rate: float) -> float:
    """The threshold that calls at most ``target_rate`` of ``best`` unknown (``best < threshold``) and as
    many as that allows: midway between the first value kept and the next lower one, so that the decision
    does not hang on rounding."""
    ordered = np.unique(np.asarray(best, dtype=np.float64))
    values = np.sort(np.asarray(best, dtype=np.float64))
    if len(values) == 0:
        return -np.inf
    kept = values[min(int(np.floor(target_rate * len(values) + 1e-9)), len(values) - 1)]
    lower = ordered[ordered < kept]
    return float((kept + lower[-1]) / 2) if len(lower) else float(kept - _margin(kept))


def far_threshold(impostor: np.ndarray, target_far: float) -> float:
    """The threshold that accepts (``score >= threshold``) at most ``target_far`` of ``impostor`` and as many
    as that allows: midway between the first impostor score rejected and the next higher one."""
    values = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    if len(values) == 0:
        return 0.0
    allowed = int(np.floor(target_far * len(values) + 1e-9))
    if allowed >= len(values):
        return float(values[-1] - _margin(values[-1]))
    rejected = values[allowed]
    higher = values[values > rejected]
    return float((rejected + higher.min()) / 2) if len(higher) else float(rejected + _margin(rejected))


@dataclass(frozen=True)
class CurvePoint:
    """Verification after the first ``n_actions`` actions (None: whole sessions), out of fold."""

    n_actions: int | None
    sessions: int
    users: int
    rates: ErrorRates | None  # None when fewer than two users' sessions reach this point
    unknown_threshold: float

    def row(self) -> dict:
        r = self.rates
        return {"n_actions": "whole" if self.n_actions is None else self.n_actions, "sessions": self.sessions,
                "users": self.users, "eer": r.eer if r else np.nan, "frr_at_far1": r.frr if r else np.nan,
                "auc": r.auc if r else np.nan, "threshold": r.threshold if r else np.nan,
                "unknown_threshold": self.unknown_threshold}


def curve_point(scores: pd.DataFrame, truth: pd.Series, n_actions: int | None, target_far: float,
                unknown_target: float) -> CurvePoint:
    """A :class:`CurvePoint` from fused scores (index: original session id)."""
    owners = truth.loc[scores.index]
    rates = rates_of(scores, truth, target_far) if owners.nunique() >= 2 else None
    _, best = best_users(scores)
    return CurvePoint(n_actions, len(scores), int(owners.nunique()), rates,
                      lower_quantile_threshold(best.to_numpy(), unknown_target))


def decision_curve(events: pd.DataFrame, config: FeatureConfig, columns: Sequence[str], models: FoldModels,
                   fusion: str, whole: pd.DataFrame, truth: pd.Series, action_grid: Sequence[int],
                   target_far: float, unknown_target: float) -> tuple[list[CurvePoint], list[pd.DataFrame]]:
    """The decision curve: a point per N of ``action_grid`` that some session reaches, then whole sessions
    (``whole``: their fused out-of-fold scores); and the fused scores of each point."""
    ns = [*reached_counts(action_counts(events, config.pause_ms), action_grid), None]

    def proba_of(table: pd.DataFrame, source: np.ndarray) -> np.ndarray:
        return models.probabilities(table, columns, source)

    scores = [prefix_scores(events, config, n, fusion, models.classes, proba_of) for n in ns[:-1]] + [whole]
    return [curve_point(s, truth, n, target_far, unknown_target) for s, n in zip(scores, ns)], scores


# The unknown verdict ---------------------------------------------------------------------------------

def user_offsets(genuine: pd.Series, owners: pd.Series, prior: float = OFFSET_PRIOR_SESSIONS) -> dict[str, float]:
    """Per-user offsets of the per_user ``unknown`` mode: how far each user's genuine scores sit from
    everyone's (difference of medians), shrunk by n / (n + ``prior``) for a user of n sessions."""
    centre = float(np.median(genuine)) if len(genuine) else 0.0
    grouped = genuine.groupby(owners.to_numpy())
    shrink = grouped.size() / (grouped.size() + prior)
    return {str(u): float(v) for u, v in ((grouped.median() - centre) * shrink).items()}


def _genuine_scores(scores: pd.DataFrame, truth: pd.Series) -> pd.Series:
    owners = truth.loc[scores.index].to_numpy()
    columns = pd.Index(np.asarray(scores.columns).astype(str)).get_indexer(owners)
    values = np.where(columns >= 0, scores.to_numpy()[np.arange(len(scores)), np.maximum(columns, 0)], np.nan)
    return pd.Series(values, index=scores.index)


def cross_fitted_offsets(whole: pd.DataFrame, truth: pd.Series, folds: pd.Series) -> pd.Series:
    """The per-user offset of each session's best user, computed without the session's fold (index: session)."""
    best_user, _ = best_users(whole)
    genuine = _genuine_scores(whole, truth)
    fold = folds.reindex(whole.index).to_numpy()
    out = pd.Series(0.0, index=whole.index)
    for k in np.unique(fold):
        other = fold != k
        offsets = user_offsets(genuine[other], truth.loc[whole.index[other]])
        mine = fold == k
        out[mine] = best_user[mine].map(offsets).fillna(0.0).to_numpy()
    return out


def unknown_margins(scores: pd.DataFrame, lengths: pd.Series, rule: ScoringRule, offsets: pd.Series | None = None,
                    prefix: bool = False) -> np.ndarray:
    """Per session: best fused score, less the rule's ``unknown`` threshold for its length (``prefix``: the
    prefix thresholds, without shift), less its best user's offset (``offsets``: each session's offset, else
    the rule's own). Negative: ``unknown``."""
    best_user, best = best_users(scores)
    threshold = rule.unknown_threshold_for(lengths.reindex(scores.index).to_numpy(dtype=np.float64), prefix)
    shift = offsets.reindex(scores.index).to_numpy() if offsets is not None else rule.offsets_of(best_user.to_numpy())
    return best.to_numpy() - threshold - shift


def unknown_rate(scores: pd.DataFrame, lengths: pd.Series, rule: ScoringRule,
                 offsets: pd.Series | None = None) -> float:
    """Share of the sessions of ``scores`` the rule calls unknown (see :func:`unknown_margins`)."""
    return float(np.mean(unknown_margins(scores, lengths, rule, offsets) < 0)) if len(scores) else float("nan")


def user_groups(users: np.ndarray, n_groups: int, seed: int) -> list[np.ndarray]:
    """Users dealt at random (seeded) into ``min(n_groups, len(users))`` groups of near-equal size."""
    shuffled = np.random.default_rng(seed).permutation(np.asarray(users))
    k = max(1, min(n_groups, len(shuffled)))
    return [shuffled[i::k] for i in range(k)]


@dataclass(frozen=True)
class OpenSetScores:
    """Fused scores from models trained without a group of users: ``known`` the other users' held-out
    sessions (out of fold), ``unknown`` the group's sessions (index: session; one column per known user)."""

    known: pd.DataFrame
    unknown: pd.DataFrame


def _open_set_fold(build, table, columns, fusion, group, fold, k) -> OpenSetScores:
    users = table[c.USER_ID].to_numpy().astype(str)
    outside = ~np.isin(users, group)
    model = _fit(build, table.loc[outside & (fold != k), list(columns)], users[outside & (fold != k)])
    classes = np.unique(users[outside])
    held = [table.loc[mask] for mask in (outside & (fold == k), ~outside & (fold == k))]
    tables = []
    for rows in held:
        proba = np.zeros((len(rows), len(classes)))
        if len(rows):
            proba[:, class_positions(model, classes)] = model.predict_proba(rows[list(columns)])
        tables.append(fuse(proba, classes, rows[c.SESSION_ID].to_numpy(), fusion))
    return OpenSetScores(*tables)


def open_set_scores(table: pd.DataFrame, columns: Sequence[str], build: Callable[[], object], folds: pd.Series,
                    fusion: str, n_groups: int, n_folds: int, seed: int, n_jobs: int = 1) -> list[OpenSetScores]:
    """Known and unknown users' scores for each group of users (:func:`user_groups`) left out of training.

    Within a group, the cross-validation folds are merged into ``n_folds`` (fold mod ``n_folds``); each
    merged fold's model, trained on the other users' sessions outside that fold, scores the other users'
    sessions of the fold (known, out of fold) and the group's sessions of the fold (unknown, each once).
    ``n_groups * n_folds`` fits in all.
    """
    users = table[c.USER_ID].to_numpy().astype(str)
    groups = [g for g in user_groups(np.unique(users), n_groups, seed) if len(g) < len(np.unique(users))]
    fold = folds.reindex(table[c.SESSION_ID].to_numpy().astype(str)).to_numpy().astype(int) % max(n_folds, 2)
    jobs = [(g, k) for g in range(len(groups)) for k in np.unique(fold)]
    parts = Parallel(n_jobs=n_jobs)(delayed(_open_set_fold)(build, table, columns, fusion, groups[g], fold, k)
                                    for g, k in jobs)
    return [OpenSetScores(pd.concat([p.known for (j, _), p in zip(jobs, parts) if j == g]),
                          pd.concat([p.unknown for (j, _), p in zip(jobs, parts) if j == g]))
            for g in range(len(groups))]


@dataclass(frozen=True)
class UnknownCalibration:
    """The ``unknown`` verdict: mode, target, and measured false-unknown and detection rates of each mode."""

    mode: str
    target_rate: float
    groups: int
    rates: pd.DataFrame  # index: mode; columns false_rate, detection_rate

    @property
    def false_rate(self) -> float:
        return float(self.rates.loc[self.mode, "false_rate"])

    @property
    def detection_rate(self) -> float:
        return float(self.rates.loc[self.mode, "detection_rate"])


# The report ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerificationReport:
    """Everything the verification calibration measured, and the rule scoring applies.

    Attributes
    ----------
    fusion:
        The chosen fusion; ``fusions`` every candidate's out-of-fold ``eer`` and ``auc`` (index: fusion).
    rates:
        Whole sessions, chosen fusion: EER, AUC, the threshold at ``target_far`` and the FAR/FRR there.
    rule_rates:
        False-accept and false-reject rates of the scoring rule's decisions (length-aware thresholds) on
        the same sessions: the ``verification_far`` and ``verification_frr`` metrics.
    curve:
        The decision curve, one :class:`CurvePoint` per N reached, whole sessions last.
    intervals:
        ``"eer"`` and ``"auc"``: bootstrap-over-users :class:`~mouse_pipeline.error_stats.Interval`.
    per_user:
        Each user's EER and AUC as the claimed user (worst first); ``gini`` their Gini coefficient.
    unknown:
        The ``unknown`` calibration; ``rule`` the scoring rule (fusion and every threshold).
    curve_png, det_png:
        The decision curve and the error trade-off (whole sessions and each N) as PNG bytes.
    seconds:
        Wall time of each step (s).
    """

    fusion: str
    fusions: pd.DataFrame
    rates: ErrorRates
    rule_rates: tuple[float, float]
    curve: list[CurvePoint]
    intervals: dict[str, Interval]
    per_user: pd.DataFrame
    gini: float
    unknown: UnknownCalibration
    rule: ScoringRule
    min_sessions: int
    curve_png: bytes = b""
    det_png: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)

    def curve_table(self) -> pd.DataFrame:
        """The decision curve: n_actions (an int, or ``whole``), sessions, users, eer, frr_at_far1, auc,
        threshold (verification, at FAR 1 %), unknown_threshold."""
        return pd.DataFrame([p.row() for p in self.curve])

    def metrics(self) -> dict[str, float]:
        """Every number, keyed by its MLflow metric name."""
        r = self.rates
        out = {
            "verification_eer": r.eer, "verification_auc": r.auc, "verification_frr_at_far1": r.frr,
            "verification_far": self.rule_rates[0], "verification_frr": self.rule_rates[1],
            "verification_target_far": r.target_far,
            "verification_eer_ci95_low": self.intervals["eer"].low,
            "verification_eer_ci95_high": self.intervals["eer"].high,
            "verification_auc_ci95_low": self.intervals["auc"].low,
            "verification_auc_ci95_high": self.intervals["auc"].high,
            "verification_eer_gini": self.gini,
            "verification_eer_worst_user": float(self.per_user["eer"].max()),
            "verification_eer_median_user": float(self.per_user["eer"].median()),
            "unknown_target_rate": self.unknown.target_rate,
            "unknown_false_rate": self.unknown.false_rate,
            "unknown_detection_rate": self.unknown.detection_rate,
            **{f"unknown_{kind}_{mode}": float(self.unknown.rates.loc[mode, f"{kind}_rate"])
               for mode in self.unknown.rates.index for kind in ("false", "detection")},
            **self.rule.metrics(),
        }
        for point in self.curve:
            if point.n_actions is None or point.rates is None or point.sessions < self.min_sessions:
                continue
            n = point.n_actions
            out[f"verification_eer_{n}_actions"] = point.rates.eer
            out[f"verification_frr_at_far1_{n}_actions"] = point.rates.frr
            out[f"verification_auc_{n}_actions"] = point.rates.auc
            out[f"verification_sessions_{n}_actions"] = float(point.sessions)
        return {k: float(v) for k, v in out.items()}

    def params(self) -> dict[str, str]:
        """Run parameters: the fusion and the ``unknown`` mode (see :meth:`ScoringRule.params`)."""
        return self.rule.params()


def length_profile_rule(fusion: str, curve: list[CurvePoint], mode: str, offsets: dict[str, float],
                        min_sessions: int) -> ScoringRule:
    """The rule with the curve's thresholds: whole-session ones, and those of every N point with at least
    ``min_sessions`` sessions (shifts still 0: :func:`with_shifts`)."""
    whole = curve[-1]
    usable = [p for p in curve[:-1] if p.rates is not None and p.sessions >= min_sessions]
    return ScoringRule(
        fusion=fusion,
        verification_threshold=whole.rates.threshold,
        unknown_threshold=whole.unknown_threshold,
        verification_thresholds={p.n_actions: p.rates.threshold for p in usable},
        unknown_thresholds={p.n_actions: p.unknown_threshold for p in usable},
        unknown_mode=mode,
        user_offsets=offsets if mode == "per_user" else {},
    )


def unknown_shift(rule: ScoringRule, scores: pd.DataFrame, lengths: pd.Series, target: float,
                  offsets: pd.Series | None = None) -> float:
    """The shift of the rule's prefix ``unknown`` thresholds that calls ``target`` of the whole sessions
    ``scores`` (fused; ``lengths`` their numbers of actions) unknown (see :func:`unknown_margins`)."""
    return lower_quantile_threshold(unknown_margins(scores, lengths, rule, offsets, prefix=True), target)


def with_shifts(rule: ScoringRule, whole: pd.DataFrame, truth: pd.Series, lengths: pd.Series, target_far: float,
                unknown_target: float, offsets: pd.Series | None = None) -> ScoringRule:
    """``rule`` with the shifts that make it meet ``target_far`` and ``unknown_target`` on the out-of-fold
    whole sessions ``whole`` (see :func:`unknown_shift`)."""
    n = lengths.reindex(whole.index).to_numpy(dtype=np.float64)
    claims = ClaimScores.of(whole - rule.verification_threshold_for(n, prefix=True)[:, None], truth)
    return replace(rule, verification_shift=far_threshold(claims.score[~claims.genuine], target_far),
                   unknown_shift=unknown_shift(rule, whole, lengths, unknown_target, offsets))


def detection_rate(rule: ScoringRule, groups: list[OpenSetScores], lengths: pd.Series, target: float) -> float:
    """Share of unknown users' sessions called unknown, each group's shift recalibrated to ``target`` on its
    known sessions (a model of fewer users scores everyone differently); weighted by sessions."""
    rates, sizes = [], []
    for group in groups:
        shifted = replace(rule, unknown_shift=unknown_shift(rule, group.known, lengths, target))
        rates.append(unknown_rate(group.unknown, lengths, shifted))
        sizes.append(len(group.unknown))
    return float(np.average(rates, weights=sizes)) if sum(sizes) else float("nan")


def rule_error_rates(rule: ScoringRule, whole: pd.DataFrame, truth: pd.Series,
                     lengths: pd.Series) -> tuple[float, float]:
    """False-accept and false-reject rates of the rule's verification decisions on whole sessions."""
    n = lengths.reindex(whole.index).to_numpy(dtype=np.float64)
    claims = ClaimScores.of(whole - rule.verification_threshold_for(n)[:, None], truth)
    accepted = claims.score >= 0
    return float(np.mean(accepted[~claims.genuine])), float(np.mean(~accepted[claims.genuine]))


def _per_user_curve(curve: list[CurvePoint], scores_by_point: list[pd.DataFrame], offsets: dict[str, float],
                    target: float) -> list[CurvePoint]:
    """The curve's unknown thresholds recomputed on best scores less the best user's offset."""
    out = []
    for point, scores in zip(curve, scores_by_point):
        user, best = best_users(scores)
        adjusted = best.to_numpy() - user.map(offsets).fillna(0.0).to_numpy()
        out.append(CurvePoint(point.n_actions, point.sessions, point.users, point.rates,
                              lower_quantile_threshold(adjusted, target)))
    return out


def calibrate_unknown(fusion: str, curve: list[CurvePoint], scores_by_point: list[pd.DataFrame], whole: pd.DataFrame,
                      truth: pd.Series, folds: pd.Series, lengths: pd.Series, groups: list[OpenSetScores],
                      target_far: float, unknown_target: float, mode: str,
                      min_sessions: int) -> tuple[ScoringRule, UnknownCalibration]:
    """The scoring rule of ``mode`` and the ``unknown`` calibration of every mode: false-unknown rate on the
    out-of-fold whole sessions (per_user: offsets cross-fitted over folds), detection on ``groups``."""
    rules, rows = {}, []
    offsets = user_offsets(_genuine_scores(whole, truth), truth.loc[whole.index])
    for name in UNKNOWN_MODES:
        mode_curve = curve if name == "global" else _per_user_curve(curve, scores_by_point, offsets, unknown_target)
        held_out = cross_fitted_offsets(whole, truth, folds) if name == "per_user" else None
        rules[name] = with_shifts(length_profile_rule(fusion, mode_curve, name, offsets, min_sessions), whole, truth,
                                  lengths, target_far, unknown_target, held_out)
        rows.append({"mode": name, "false_rate": unknown_rate(whole, lengths, rules[name], held_out),
                     "detection_rate": detection_rate(rules[name], groups, lengths, unknown_target)})
    return rules[mode], UnknownCalibration(mode, unknown_target, len(groups), pd.DataFrame(rows).set_index("mode"))


def calibrate_verification(
    events: pd.DataFrame, config: FeatureConfig, columns: Sequence[str], build: Callable[[], object],
    folds: pd.Series, *, target_far: float = 0.01, unknown_target: float = 0.05, unknown_mode: str = "global",
    action_grid: Sequence[int] = DEFAULT_ACTION_COUNTS, unknown_groups: int = 5, open_set_folds: int = 3,
    n_resamples: int = 1000, seed: int = 0, n_jobs: int = 1, min_sessions: int = MIN_SESSIONS,
    fusions: Sequence[str] = tuple(FUSIONS), features: pd.DataFrame | None = None,
) -> VerificationReport:
    """Calibrate and measure verification out of fold (see the module docstring).

    Parameters
    ----------
    events:
        Labelled training events (contract columns, ``user_id`` included), with the session ids ``folds``
        uses (pseudo-sessions included).
    config, columns, build:
        The model's feature settings, its feature columns (in order) and a callable returning the unfitted
        pipeline.
    folds:
        Cross-validation fold of each session (index: session id), e.g.
        ``SessionPerUserKFold(n_splits, seed).session_folds(users, sessions)``.
    target_far:
        False-accept rate of the verification threshold (default 1 %).
    unknown_target, unknown_mode:
        Target share of known users' sessions called unknown (default 5 %), and the mode scoring uses
        (``"global"`` or ``"per_user"``; both are measured).
    action_grid:
        The N of the decision curve; points no session reaches are skipped.
    unknown_groups, open_set_folds:
        Groups of users left out of training in turn to measure detection, and the folds within each
        (``unknown_groups * open_set_folds`` model fits, see :func:`open_set_scores`).
    n_resamples, seed:
        Bootstrap resamples; seed of the bootstrap and of the user groups.
    n_jobs:
        Parallel model fits.
    min_sessions:
        Sessions an N point needs for its metrics and thresholds.
    fusions:
        Candidate fusions (keys of :data:`mouse_pipeline.fusion.FUSIONS`).
    features:
        The feature table of ``events`` with ``config``, when the caller has it (else computed here).
    """
    if unknown_mode not in UNKNOWN_MODES:
        raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}, not {unknown_mode!r}")
    clock = LapClock()
    table = extract_features(events, config) if features is None else features
    truth = session_truth(table)
    models = fit_fold_models(table, columns, build, folds, n_jobs)
    sessions = table[c.SESSION_ID].to_numpy().astype(str)
    proba = models.probabilities(table, columns, sessions)
    clock.lap("cross_validation")

    fusion, fusion_table = choose_fusion(proba, models.classes, sessions, truth, fusions)
    whole = fuse(proba, models.classes, sessions, fusion)
    rates = rates_of(whole, truth, target_far)
    clock.lap("fusion")

    curve, scores_by_point = decision_curve(events, config, columns, models, fusion, whole, truth, action_grid,
                                            target_far, unknown_target)
    clock.lap("decision_curve")

    claims = ClaimScores.of(whole, truth)
    intervals = bootstrap_intervals(claims, n_resamples, seed)
    users = per_user_eer(claims)
    clock.lap("bootstrap")

    lengths = action_counts(events, config.pause_ms)
    groups = open_set_scores(table, columns, build, models.folds, fusion, unknown_groups, open_set_folds, seed, n_jobs)
    clock.lap("unknown_users")
    rule, unknown = calibrate_unknown(fusion, curve, scores_by_point, whole, truth, models.folds, lengths, groups,
                                      target_far, unknown_target, unknown_mode, min_sessions)
    clock.lap("unknown_calibration")

    report = VerificationReport(fusion, fusion_table, rates, rule_error_rates(rule, whole, truth, lengths), curve,
                                intervals, users, gini(users["eer"].to_numpy()), unknown, rule, min_sessions,
                                seconds={step: round(t, 3) for step, t in clock.laps.items()})
    return _with_plots(report)


# Plots -------------------------------------------------------------------------------------------------

def decision_curve_png(curve: list[CurvePoint], min_sessions: int = MIN_SESSIONS) -> bytes:
    """EER and FRR at FAR 1 % against the number of actions (log axis), whole sessions as dashed lines;
    each point labelled with its number of sessions."""
    points = [p for p in curve if p.n_actions is not None and p.rates is not None and p.sessions >= min_sessions]
    fig, ax = pyplot().subplots(figsize=(5.5, 4), dpi=90)
    n = [p.n_actions for p in points]
    for label, values, colour in (("EER", [p.rates.eer for p in points], "tab:blue"),
                                  ("FRR at FAR 1%", [p.rates.frr for p in points], "tab:orange")):
        ax.plot(n, values, marker="o", color=colour, label=label)
    whole = curve[-1]
    if whole.rates is not None:
        ax.axhline(whole.rates.eer, color="tab:blue", linestyle="--",
                   label=f"EER, whole sessions ({whole.rates.eer:.1%})")
        ax.axhline(whole.rates.frr, color="tab:orange", linestyle="--",
                   label=f"FRR at FAR 1%, whole sessions ({whole.rates.frr:.1%})")
    for p in points:
        ax.annotate(f"{p.sessions}", (p.n_actions, p.rates.frr), textcoords="offset points", xytext=(0, 6),
                    fontsize=7, ha="center")
    if n:
        ax.set_xscale("log")
        ax.set_xticks(n, [str(v) for v in n])
        ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_xlabel("actions seen (first N of the session)")
    ax.set_ylabel("error rate (out of fold)")
    ax.set_title(f"Decision curve ({whole.sessions} sessions; labels: sessions reaching N)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def _with_plots(report: VerificationReport) -> VerificationReport:
    curves = {f"{p.n_actions} actions": p.rates for p in report.curve[:-1]
              if p.rates is not None and p.sessions >= report.min_sessions}
    det = det_curve_png({"whole sessions": report.rates, **curves})
    return replace(report, curve_png=decision_curve_png(report.curve, report.min_sessions), det_png=det)
