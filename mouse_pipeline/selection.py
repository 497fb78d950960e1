"""Model selection: feature settings x estimators, scored in one session-grouped CV at session level.

The steps, each a function the shell can run as its own step:

1. :func:`plan_feature_settings` offers whole sessions and window sizes that
   follow the training data (a typical session, or scoring chunk, gives
   between ``min_windows`` and ``max_windows`` windows);
2. :func:`featurise` computes each feature setting once (and, when held-out
   sessions are scored in chunks, the chunked view of the same sessions);
3. :func:`select` races every (feature setting, estimator) candidate through
   successive halving over the folds of one :class:`SessionPerUserKFold`:
   all candidates are scored on the first folds, the best third (and the best
   MLP, always reported beside the champion) go on to more folds, and the
   finalists are scored on every fold. Window probabilities are averaged per
   held-out session (or chunk) as in production. It also scores the
   champion on behaviour-only and environment-only columns and bootstraps
   95 % intervals;
4. :meth:`SelectionResult.fit` fits the champion on every training row.

Every fold of every candidate sees the same held-out sessions, so scores
are comparable across feature settings.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import split_sessions
from mouse_pipeline.evaluation import predicted_users, session_probabilities, session_scores
from mouse_pipeline.features import FeatureConfig, extract_features, feature_columns
from mouse_pipeline.features.actions import action_starts
from mouse_pipeline.features.families import BEHAVIOUR, ENVIRONMENT, select_columns
from mouse_pipeline.features.segments import sort_events
from mouse_pipeline.modelling import Candidate, CrossValidation, SessionPerUserKFold, fit_quietly
from mouse_pipeline.selection_settings import SelectionSettings

_SCORES = ("macro_f1", "accuracy", "top3_accuracy", "log_loss")
#: Separates a session id from its chunk number when held-out sessions are scored in chunks.
CHUNK_SEPARATOR = "@"


def setting_name(config: FeatureConfig) -> str:
    """``whole sessions`` or ``windows of 20 actions``."""
    return "whole sessions" if config.window_size <= 0 else f"windows of {config.window_size} {config.window_unit}"


# --- 1. Feature settings that follow the data ------------------------------------------------------

def session_lengths(events: pd.DataFrame, pause_ms: float = 2000.0) -> pd.DataFrame:
    """Events and actions of each session (index: session id), actions cut as the features cut them."""
    se = sort_events(events)
    first = np.r_[True, se.session[1:] != se.session[:-1]] if se.n_events else np.zeros(0, dtype=bool)
    starts = action_starts(se.code.astype(np.int64), se.t.astype(np.float64), first, pause_ms)
    return pd.DataFrame(
        {"events": np.bincount(se.session, minlength=se.n_sessions),
         "actions": np.bincount(se.session, weights=starts, minlength=se.n_sessions).astype(np.int64)},
        index=pd.Index(se.session_ids, name=c.SESSION_ID),
    )


def plan_feature_settings(events: pd.DataFrame,
                          settings: SelectionSettings = SelectionSettings()) -> list[FeatureConfig]:
    """The feature settings to compare: whole sessions, then window sizes per unit, largest first.

    The typical unit is the median session of ``events``, or a session to be
    scored (``settings.scored_session_events``) when that is shorter. For
    each unit, ``settings.sizes_per_unit`` sizes are spread geometrically
    between a size giving ``min_windows`` windows per typical unit and the
    smallest size allowed by ``max_windows``, ``min_window_<unit>`` and
    ``max_training_rows``. A unit whose sessions are too short for two
    windows offers none.
    """
    lengths = session_lengths(events, settings.pause_ms)
    typical = lengths.median()
    if 0 < settings.scored_session_events < typical["events"]:
        typical = typical * settings.scored_session_events / typical["events"]
    totals = lengths.sum()
    configs = [FeatureConfig(0, "events", settings.pause_ms)] if settings.whole_sessions else []
    smallest = {"events": settings.min_window_events, "actions": settings.min_window_actions}
    for unit in settings.window_units:
        hi = typical[unit] / settings.min_windows
        lo = max(smallest[unit], typical[unit] / settings.max_windows, totals[unit] / settings.max_training_rows)
        for size in window_sizes(lo, hi, settings.sizes_per_unit):
            configs.append(FeatureConfig(size, unit, settings.pause_ms))  # type: ignore[arg-type]
    if not configs:
        raise ValueError("no feature setting: sessions are too short for windows and whole sessions are off")
    return configs


def window_sizes(lo: float, hi: float, n: int) -> list[int]:
    """``n`` integer sizes spread geometrically from ``hi`` down to ``lo`` (none when ``hi < lo``)."""
    lo, hi = math.ceil(lo), math.floor(hi)
    if hi < lo or n < 1:
        return []
    if n == 1:
        return [round(math.sqrt(lo * hi))]
    sizes = [round(hi * (lo / hi) ** (i / (n - 1))) for i in range(n)]
    return sorted(set(sizes), reverse=True)


# --- 2. Each feature setting computed once ---------------------------------------------------------

@dataclass(frozen=True)
class FeatureSet:
    """One feature setting's training rows and the rows scored when a session is held out.

    ``scoring`` is ``table`` itself, or the same sessions cut in chunks of
    about ``chunk_events`` events (session ids ``<session>@<chunk>``)
    featurised apart; ``scored_session`` maps each scored unit (session or
    chunk) to its training session.
    """

    config: FeatureConfig
    table: pd.DataFrame
    scoring: pd.DataFrame
    scored_session: pd.Series
    chunk_events: int = 0

    @property
    def name(self) -> str:
        return setting_name(self.config)


def typical_session_events(events: pd.DataFrame) -> int:
    """Median events per session (of the unlabelled test file: the ``scored_session_events`` setting)."""
    return int(events.groupby(c.SESSION_ID).size().median()) if len(events) else 0


def chunk_plan(events: pd.DataFrame, settings: SelectionSettings) -> dict[str, int]:
    """Chunks per session when held-out sessions are scored in chunks (see :class:`SelectionSettings`):
    sessions of at least 1.5 chunks of about ``scored_session_events`` events; none otherwise."""
    length = settings.scored_session_events
    sizes = events.groupby(c.SESSION_ID, sort=True).size()
    if length <= 0 or length >= settings.chunk_below * sizes.median():
        return {}
    pieces = np.maximum(np.round(sizes / length), 1).astype(int)
    return {str(s): int(k) for s, k in pieces.items() if k > 1}


def featurise(events: pd.DataFrame, configs: Sequence[FeatureConfig],
              settings: SelectionSettings = SelectionSettings(),
              extract: Callable[[pd.DataFrame, FeatureConfig], pd.DataFrame] = extract_features) -> list[FeatureSet]:
    """Featurise ``events`` once per setting (plus the chunked view when scoring in chunks).

    ``extract`` computes one feature table (default: the pandas engine,
    :func:`~mouse_pipeline.features.extract_features`; the Spark engine gives the same tables).
    """
    pieces = chunk_plan(events, settings)
    chunked = split_sessions(events, pieces, CHUNK_SEPARATOR) if pieces else None
    chunk_of = {f"{s}{CHUNK_SEPARATOR}{k}": s for s, n in pieces.items() for k in range(1, n + 1)}
    out = []
    for config in configs:
        table = extract(events, config)
        scoring = table if chunked is None else extract(chunked, config)
        units = scoring[c.SESSION_ID].drop_duplicates().astype(str)
        sessions = units.map(chunk_of).fillna(units)
        out.append(FeatureSet(config, table, scoring, pd.Series(sessions.to_numpy(), index=units.to_numpy()),
                              settings.scored_session_events if pieces else 0))
    return out


# --- 3. The race -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """A candidate estimator on one feature setting and column list."""

    candidate: Candidate
    config: FeatureConfig
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.candidate.name} on {setting_name(self.config)}"

    @property
    def is_mlp(self) -> bool:
        return self.candidate.family == "mlp"

    def build(self, random_state: int = 0) -> Pipeline:
        return self.candidate.build(random_state)


@dataclass
class _Folds:
    """A feature set as arrays, with the fold of every training row and scored row."""

    feature_set: FeatureSet
    y: np.ndarray
    fold: np.ndarray
    held_fold: np.ndarray
    held_units: np.ndarray
    truth: pd.Series  # true user of each scored unit
    classes: np.ndarray

    @classmethod
    def of(cls, fs: FeatureSet, session_fold: pd.Series) -> "_Folds":
        y = fs.table[c.USER_ID].to_numpy().astype(str)
        sessions = fs.table[c.SESSION_ID].to_numpy().astype(str)
        units = fs.scoring[c.SESSION_ID].to_numpy().astype(str)
        unit_session = fs.scored_session.loc[units].to_numpy()
        user_of_session = pd.Series(y, index=sessions).groupby(level=0).first()
        truth = pd.Series(user_of_session.loc[unit_session].to_numpy(), index=units).groupby(level=0).first()
        return cls(fs, y, session_fold.loc[sessions].to_numpy(), session_fold.loc[unit_session].to_numpy(),
                   units, truth, np.unique(y))

    def arrays(self, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        cols = list(columns)
        return (self.feature_set.table[cols].to_numpy(np.float64),
                self.feature_set.scoring[cols].to_numpy(np.float64))


def _score_fold(candidate: Candidate, random_state: int, X: np.ndarray, y: np.ndarray, train: np.ndarray,
                X_held: np.ndarray, held: np.ndarray, units: np.ndarray, classes: np.ndarray):
    """Fit on ``train`` rows, average held-out window probabilities per unit; (proba frame, seconds)."""
    started = time.perf_counter()
    model = fit_quietly(candidate.build(random_state), X[train], y[train])
    proba = np.zeros((len(held), len(classes)))
    proba[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X_held[held])
    return session_probabilities(proba, classes, units[held]), time.perf_counter() - started


@dataclass
class _Entry:
    """The state of one candidate in the race."""

    choice: Choice
    folds: _Folds
    proba: dict[int, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0
    round_reached: int = 0

    def _held_out(self) -> tuple[pd.DataFrame, pd.Series]:
        proba = pd.concat([self.proba[f] for f in sorted(self.proba)]).sort_index()
        return proba, self.folds.truth.loc[proba.index]

    def scores(self) -> dict[str, float]:
        """Session-level scores on the folds scored so far, and the log loss that breaks ties.

        While some users have no held-out session yet, macro-F1 averages the users that do.
        """
        proba, truth = self._held_out()
        scores = session_scores(truth, proba)
        if set(truth) != set(self.folds.classes):
            scores["macro_f1"] = float(f1_score(truth, predicted_users(proba), average="macro",
                                                labels=sorted(set(truth)), zero_division=0))
        scores["log_loss"] = session_log_loss(truth, proba)
        return scores

    def cross_validation(self) -> CrossValidation:
        proba, truth = self._held_out()
        return CrossValidation(self.choice.candidate, self.folds.classes, proba, truth,
                               session_scores(truth, proba))


def _run(entries: list[_Entry], folds: Sequence[int], settings: SelectionSettings) -> None:
    """Score every entry on ``folds`` (those it lacks), in parallel over (entry, fold)."""
    tasks, arrays = [], {}
    for k, entry in enumerate(entries):
        key = (id(entry.folds), entry.choice.columns)
        if key not in arrays:
            arrays[key] = entry.folds.arrays(entry.choice.columns)
        X, X_held = arrays[key]
        for f in folds:
            if f not in entry.proba:
                train = np.flatnonzero(entry.folds.fold != f)
                held = np.flatnonzero(entry.folds.held_fold == f)
                tasks.append((k, f, len(train), delayed(_score_fold)(
                    entry.choice.candidate, settings.random_state, X, entry.folds.y, train, X_held, held,
                    entry.folds.held_units, entry.folds.classes)))
    # Largest training sets first, so that no long fit is left running alone at the end.
    tasks.sort(key=lambda task: -task[2])
    done = Parallel(n_jobs=settings.n_jobs)(task for *_, task in tasks)
    for (k, f, _, _), (proba, seconds) in zip(tasks, done):
        entries[k].proba[f] = proba
        entries[k].seconds += seconds


def fold_schedule(n_splits: int, first: int) -> list[int]:
    """Cumulative folds scored in each halving round: ``first``, twice that, ... up to ``n_splits``."""
    schedule = [min(first, n_splits)]
    while schedule[-1] < n_splits:
        schedule.append(min(schedule[-1] * 2, n_splits))
    return schedule


def session_log_loss(truth: pd.Series, proba: pd.DataFrame, floor: float = 1e-6) -> float:
    """Mean ``-log p(true user)`` over held-out sessions (probabilities floored at ``floor``)."""
    columns = pd.Index(np.asarray(proba.columns).astype(str))
    own = proba.to_numpy()[np.arange(len(proba)), columns.get_indexer(truth.astype(str).to_numpy())]
    return float(-np.log(np.maximum(own, floor)).mean())


def _rank(entries: list[_Entry], alive: list[int]) -> list[int]:
    """Best first: macro-F1, then (ties are common near 1.0) the lower log loss, then grid order."""
    scores = {i: entries[i].scores() for i in alive}
    return sorted(alive, key=lambda i: (-scores[i]["macro_f1"], scores[i]["log_loss"], i))


def race(entries: list[_Entry], settings: SelectionSettings) -> list[int]:
    """Successive halving over folds; returns the finalists (scored on every fold), best first."""
    alive = list(range(len(entries)))
    schedule = fold_schedule(settings.n_splits, settings.first_round_folds)
    for r, n_folds in enumerate(schedule):
        _run([entries[i] for i in alive], list(range(n_folds)), settings)
        for i in alive:
            entries[i].round_reached = r
        ranked = _rank(entries, alive)
        if r == len(schedule) - 1:
            return ranked
        keep = ranked[:max(1, math.ceil(len(ranked) / settings.halving_factor))]
        mlps = [i for i in ranked if entries[i].choice.is_mlp]
        if mlps and mlps[0] not in keep:
            keep.append(mlps[0])  # the best MLP is always reported beside the champion
        alive = sorted(keep)
    return alive


@dataclass
class Scored:
    """A choice and its out-of-fold cross-validation."""

    choice: Choice
    cv: CrossValidation


@dataclass
class SelectionResult:
    """Everything model selection decided and measured.

    Attributes
    ----------
    table:
        One row per candidate, best first: feature setting, estimator,
        params, CV scores on the folds it was scored on, folds scored,
        halving round reached, rows, seconds.
    champion, best_mlp:
        The best candidate and the best MLP, scored on every fold
        (``best_mlp`` is None when the grid has no MLP).
    ablation:
        The champion's estimator and feature setting on behaviour-only and
        environment-only columns (keys ``behaviour``, ``environment``; a kind
        without columns is missing).
    intervals:
        95 % bootstrap intervals of the champion's scores (metric -> (low, high)).
    seconds:
        Wall-clock time of the selection.
    settings:
        The settings the selection ran with (``n_splits``: the folds that held sessions).
    chunk_events:
        Held-out sessions were scored in chunks of about this many events (0: whole).
    folds:
        Fold of every training session (index: session id, pseudo-sessions included).
    """

    table: pd.DataFrame
    champion: Scored
    best_mlp: Scored | None
    ablation: dict[str, Scored]
    intervals: dict[str, tuple[float, float]]
    seconds: float
    settings: SelectionSettings
    chunk_events: int = 0
    folds: pd.Series | None = None

    @property
    def cross_validation(self) -> CrossValidation:
        return self.champion.cv

    @property
    def feature_config(self) -> FeatureConfig:
        return self.champion.choice.config

    def fit(self, features: pd.DataFrame) -> Pipeline:
        """The champion fitted on every row of ``features`` (a feature table of its feature setting)."""
        return fit_choice(self.champion.choice, features, self.settings.random_state)


def fit_choice(choice: Choice, features: pd.DataFrame, random_state: int = 0) -> Pipeline:
    """Fit a choice on a feature table; the model's ``feature_names_in_`` are its columns."""
    return fit_quietly(choice.build(random_state), features[list(choice.columns)],
                        features[c.USER_ID].astype(str).to_numpy())


def session_folds(feature_sets: Sequence[FeatureSet], settings: SelectionSettings) -> pd.Series:
    """Fold of every training session (the same for every feature setting), numbered 0.. without gaps.

    With fewer users than folds and few sessions (or blocks) each, some of
    :class:`SessionPerUserKFold`'s folds hold no session: they are dropped, so
    every fold scored holds out something (see :func:`effective_settings`).
    """
    table = feature_sets[0].table
    folds = SessionPerUserKFold(settings.n_splits, settings.random_state).session_folds(
        table[c.USER_ID].to_numpy().astype(str), table[c.SESSION_ID].to_numpy().astype(str))
    used = np.sort(folds.unique())
    return folds.map(dict(zip(used, range(len(used))))).astype(int)


def recorded_folds(folds: pd.Series, recorded: pd.Series, chunk_events: int = 0) -> pd.Series:
    """Folds of each recorded session, as text: the folds of its blocks (``"2"``, or ``"0,3"`` for a
    session cut in blocks), and ``@<events>`` when held-out sessions were scored in chunks of that length.

    Two cross-validations are comparable when these agree (see
    :class:`~mouse_pipeline.champion.DataIdentity`); ``recorded`` maps each (pseudo-)session id of
    ``folds`` to its recorded session (:attr:`~mouse_pipeline.enrolment.Enrolment.recorded_session`).
    """
    of = recorded.reindex(folds.index)
    of = of.fillna(pd.Series(folds.index, index=folds.index))
    text = folds.astype(str).groupby(of.to_numpy()).agg(lambda f: ",".join(sorted(f)))
    return text + (f"@{chunk_events}" if chunk_events else "")


def effective_settings(settings: SelectionSettings, folds: pd.Series) -> SelectionSettings:
    """``settings`` with ``n_splits`` the number of folds that hold sessions (at most as asked)."""
    n = int(folds.nunique())
    if n >= settings.n_splits:
        return settings
    return replace(settings, n_splits=n, first_round_folds=min(settings.first_round_folds, n))


def candidate_grid(feature_sets: Sequence[FeatureSet], settings: SelectionSettings) -> list[Choice]:
    """Every (feature setting, estimator) pair, on the columns of the selected families."""
    out = []
    for fs in feature_sets:
        columns = tuple(select_columns(feature_columns(fs.table), settings.families))
        out.extend(Choice(cand, fs.config, columns) for cand in settings.estimators())
    return out


def _affordable(choice: Choice, folds: _Folds, settings: SelectionSettings) -> bool:
    return settings.affordable(choice.candidate, len(folds.y), len(folds.classes))


def select(feature_sets: Sequence[FeatureSet], settings: SelectionSettings = SelectionSettings(),
           clusters: pd.Series | None = None) -> SelectionResult:
    """Race every candidate, then score the champion's ablation and bootstrap its intervals.

    ``clusters`` maps training session ids to the recorded session they come
    from (blocks of one session, see :mod:`mouse_pipeline.enrolment`), so the
    bootstrap resamples recorded sessions; default: each session its own.
    """
    started = time.perf_counter()
    folds = session_folds(feature_sets, settings)
    settings = effective_settings(settings, folds)
    fold_data = {fs.config: _Folds.of(fs, folds) for fs in feature_sets}
    grid = [_Entry(choice, fold_data[choice.config]) for choice in candidate_grid(feature_sets, settings)]
    entries = [e for e in grid if _affordable(e.choice, e.folds, settings)]
    if not entries:
        raise ValueError(f"no candidate fits the budgets on {len(folds)} sessions: offer an MLP, or raise "
                         "extra_trees_max_bytes / hist_gradient_boosting_max_cells")
    finalists = race(entries, settings)
    champion = _scored(entries[finalists[0]])
    mlps = [i for i in finalists if entries[i].choice.is_mlp]
    best_mlp = _scored(entries[mlps[0]]) if mlps else None
    ablation = ablation_scores(champion.choice, fold_data[champion.choice.config], settings)
    units = fold_data[champion.choice.config].feature_set.scored_session
    unit_clusters = units if clusters is None else units.map(clusters).fillna(units)
    intervals = bootstrap_intervals(champion.cv, unit_clusters, settings.bootstrap_resamples, settings.random_state)
    over_budget = [e for e in grid if not _affordable(e.choice, e.folds, settings)]
    return SelectionResult(candidate_table(entries, over_budget), champion, best_mlp, ablation, intervals,
                           time.perf_counter() - started, settings, feature_sets[0].chunk_events, folds)


def _scored(entry: _Entry) -> Scored:
    return Scored(entry.choice, entry.cross_validation())


def ablation_scores(choice: Choice, folds: _Folds, settings: SelectionSettings) -> dict[str, Scored]:
    """The choice's estimator and feature setting on each kind's columns alone, on every fold."""
    all_columns = feature_columns(folds.feature_set.table)
    entries = {}
    for kind in (BEHAVIOUR, ENVIRONMENT):
        columns = tuple(select_columns(all_columns, kind))
        if columns:
            entries[kind] = _Entry(replace(choice, columns=columns), folds)
    _run(list(entries.values()), list(range(settings.n_splits)), settings)
    return {kind: _scored(entry) for kind, entry in entries.items()}


def candidate_table(entries: list[_Entry], over_budget: Sequence[_Entry] = ()) -> pd.DataFrame:
    """One row per candidate: the finalists first (best first), then by round reached and score; last,
    the candidates left out because they would exceed a budget (no score, ``round_reached`` -1)."""
    rows = []
    for i, e in enumerate([*entries, *over_budget]):
        cand = e.choice.candidate
        scored = i < len(entries)
        rows.append({
            "feature_setting": setting_name(e.choice.config), "window_size": e.choice.config.window_size,
            "window_unit": e.choice.config.window_unit, "estimator": cand.name, "family": cand.family,
            "feature_selection": cand.feature_selection, "params": json.dumps(cand.params, default=str),
            "rows": len(e.folds.y), "columns": len(e.choice.columns),
            **{f"cv_{k}": v for k, v in (e.scores() if scored else dict.fromkeys(_SCORES, np.nan)).items()},
            "folds_scored": len(e.proba), "round_reached": e.round_reached if scored else -1,
            "seconds": round(e.seconds, 2), "note": "" if scored else "over budget: not run", "_order": i,
        })
    table = pd.DataFrame(rows).sort_values(["round_reached", "folds_scored", "cv_macro_f1", "cv_log_loss", "_order"],
                                           ascending=[False, False, False, True, True], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True).rename_axis("rank").reset_index().assign(
        rank=lambda t: t["rank"] + 1)


# --- Intervals -----------------------------------------------------------------------------------

def bootstrap_intervals(cv: CrossValidation, clusters: pd.Series, n_resamples: int = 1000,
                        random_state: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of macro-F1 and accuracy, resampling clusters of scored units.

    ``clusters`` maps each scored unit (session, block or chunk) to its
    recorded session: units of one recorded session are resampled together.
    Macro-F1 of a resample averages over the users present in it.
    """
    units = cv.session_proba.index
    classes = np.asarray(cv.session_proba.columns).astype(str)
    t_code = np.searchsorted(classes, cv.truth.loc[units].astype(str).to_numpy())
    p_code = np.searchsorted(classes, predicted_users(cv.session_proba).astype(str).to_numpy())
    cluster = pd.factorize(clusters.loc[units].to_numpy())[0]
    n_clusters, k = cluster.max() + 1, len(classes)

    def per_cluster(code: np.ndarray, mask: np.ndarray) -> np.ndarray:  # clusters x classes counts
        return np.bincount(cluster[mask] * k + code[mask], minlength=n_clusters * k).reshape(n_clusters, k)

    everyone = np.ones(len(units), dtype=bool)
    hit = t_code == p_code
    tp, true_n, pred_n = per_cluster(t_code, hit), per_cluster(t_code, everyone), per_cluster(p_code, everyone)
    rng = np.random.default_rng(random_state)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_resamples).astype(np.float64)
    tp, true_n, pred_n = draws @ tp, draws @ true_n, draws @ pred_n  # resamples x classes
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros_like(tp), where=(true_n + pred_n) > 0)
    present = true_n > 0
    macro = (f1 * present).sum(axis=1) / present.sum(axis=1)
    accuracy = tp.sum(axis=1) / true_n.sum(axis=1)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    return {"macro_f1": tuple(float(v) for v in np.quantile(macro, q)),
            "accuracy": tuple(float(v) for v in np.quantile(accuracy, q))}
