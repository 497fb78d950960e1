"""Scoring events with the registered champion: the one path from events to predictions.

:func:`score_events` is what the ``predictions`` asset, the
``score_new_sessions`` job (inbox sensor runs) and the ``mouse-pipeline
score`` command all call: features with the settings the champion was
trained with (read from its MLflow run), the champion's session
predictions, open-set verdicts at its calibrated threshold, and every row
labelled. :func:`score_file` adds ingestion of a CSV and refuses a champion
trained on other data than the file (:func:`check_champion_fits`);
:func:`prediction_tables` and
:func:`prediction_info` are the files and manifest every caller writes (with
:mod:`mouse_pipeline.outputs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pandas as pd

from mouse_pipeline.champion import may_score
from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.ingest import EventFileError, IngestResult, read_events
from mouse_pipeline.prediction import label_test_rows, predict_sessions
from mouse_pipeline.prefixes import action_counts
from mouse_pipeline.tracking import Champion
from mouse_pipeline.verification import UNKNOWN_MODE_PARAM, USER_OFFSETS_ARTIFACT, ScoringRule

PREDICTED_ROWS_FILE = "Predicted_mouse.csv"
SESSION_PREDICTIONS_FILE = "session_predictions.csv"
REJECTED_FILE = "rejected_events.csv"


@dataclass(frozen=True)
class Scored:
    """The champion's predictions for a set of events."""

    sessions: pd.DataFrame  # one row per session: user, probability, runner-up, n_windows, verdict
    rows: pd.DataFrame  # every event row in its original order, with the predicted user_id
    features: pd.DataFrame  # the features the champion scored (its own settings)
    champion: Champion


def features_for(champion: Champion, events: pd.DataFrame, features: pd.DataFrame | None = None,
                 features_config: FeatureConfig | None = None) -> pd.DataFrame:
    """Features of ``events`` as the champion was trained on them.

    ``features`` (computed from ``events`` with ``features_config``) are used
    as they are when those settings are the champion's; otherwise the events
    are featurised again with the champion's settings, so that a champion
    trained on, say, whole sessions is never fed windows.
    """
    if features is not None and features_config == champion.feature_config:
        return features
    return extract_features(events, champion.feature_config)


def champion_rule(champion: Champion) -> ScoringRule:
    """The champion's scoring rule, from its run (the per-user offsets artifact in the per_user mode)."""
    offsets = None
    if champion.params.get(UNKNOWN_MODE_PARAM) == "per_user":
        offsets = mlflow.artifacts.load_text(f"runs:/{champion.run_id}/{USER_OFFSETS_ARTIFACT}")
    return ScoringRule.from_run(champion.metrics, champion.params, offsets)


def score_events(champion: Champion, events: pd.DataFrame, features: pd.DataFrame | None = None,
                 features_config: FeatureConfig | None = None) -> Scored:
    """Session predictions and labelled rows of unlabelled ``events`` (see :func:`features_for`); the
    ``verdict`` follows the champion's scoring rule (fusion and length-aware ``unknown`` thresholds)."""
    table = features_for(champion, events, features, features_config)
    rule = champion_rule(champion)
    n_actions = action_counts(events, champion.feature_config.pause_ms) if rule.unknown_thresholds else None
    sessions = predict_sessions(champion.pipeline, table, rule=rule, n_actions=n_actions)
    return Scored(sessions, label_test_rows(events, sessions), table, champion)


def prediction_tables(scored: Scored, rejected: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The files of one prediction, by file name: ``Predicted_mouse.csv`` (every row, notebook format),
    ``session_predictions.csv`` (with the model version) and, when given, ``rejected_events.csv``."""
    sessions = scored.sessions.assign(model_version=scored.champion.version)
    tables = {PREDICTED_ROWS_FILE: scored.rows, SESSION_PREDICTIONS_FILE: sessions}
    if rejected is not None:
        tables[REJECTED_FILE] = rejected
    return tables


def prediction_info(scored: Scored, source: str, **extra) -> dict:
    """What a prediction's manifest says: the model, its training data, the scored file, the threshold."""
    champion = scored.champion
    identity = champion.identity
    return {
        "source": source,
        "model": champion.describe(),
        "model_name": champion.name,
        "model_version": champion.version,
        "mlflow_run_id": champion.run_id,
        "training_data": identity.tags() if identity else None,
        "unknown_threshold": champion.unknown_threshold,
        "sessions": len(scored.sessions),
        "created_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        **extra,
    }


class ForeignChampionError(ValueError):
    """The champion was trained on other data than the file to score (see :func:`check_champion_fits`)."""


#: How to fix a refusal, and how to override it, in every caller (command line, inbox runs).
FOREIGN_CHAMPION_REMEDY = (
    "Train on your data (point MOUSE_TRAIN_CSV and MOUSE_TEST_CSV at your CSVs and run the pipeline), or score "
    "anyway with --allow-foreign-champion (inbox runs: allow_foreign_champion: true in the run config)")


def check_champion_fits(champion: Champion, events: pd.DataFrame, name: str, allow_foreign: bool = False) -> str:
    """Why ``champion`` may not score ``events`` of the file ``name`` (:func:`~mouse_pipeline.champion.may_score`),
    or "" when it may.

    Raises :class:`ForeignChampionError` (one line: the model, its training data, what the file holds, how
    to fix it and how to override) unless ``allow_foreign``; then the reason is returned, for the manifest.
    """
    fits, why = may_score(champion.identity, events)
    if fits or allow_foreign:
        return why
    raise ForeignChampionError(
        f"{name}: {champion.name} version {champion.version} may not score this file: {why}; its predictions "
        f"would name users of other data. {FOREIGN_CHAMPION_REMEDY}")


@dataclass(frozen=True)
class ScoringResult:
    """What scoring one file produced; ``foreign_champion`` is why the champion should not have scored it,
    when that was overridden ("" when the champion fits the file)."""

    source_file: str
    ingest: IngestResult
    scored: Scored
    foreign_champion: str = ""

    @property
    def sessions(self) -> pd.DataFrame:
        return self.scored.sessions

    @property
    def model_version(self) -> str:
        return self.scored.champion.version

    def tables(self) -> dict[str, pd.DataFrame]:
        return prediction_tables(self.scored, self.ingest.rejected)

    def info(self, **extra) -> dict:
        return prediction_info(self.scored, Path(self.source_file).name,
                               foreign_champion=self.foreign_champion or None, **extra)


def output_name(path: str | Path) -> str:
    """A folder name derived from an input file: its stem, made filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "input"


def relabel(result: IngestResult, source_name: str) -> IngestResult:
    """``result`` of reading a staged copy, with the original file's name in its rejected rows."""
    return replace(result, source_file=source_name, rejected=result.rejected.assign(source_file=source_name))


def read_unlabelled(path: str | Path, name: str, source_name: str | None = None) -> IngestResult:
    """Validate an unlabelled events CSV; errors and rejected rows name the file ``name``.

    Raises EventFileError when the file cannot be used at all, ValueError when no row is valid.
    """
    try:
        ingest = read_events(path, labelled=False)
    except EventFileError as exc:
        raise EventFileError(str(exc).replace(str(path), name)) from exc
    if source_name:
        ingest = relabel(ingest, source_name)
    if ingest.events.empty:
        raise ValueError(f"{name}: no valid rows to score ({ingest.rows_rejected} rejected)")
    return ingest


def score_file(path: str | Path, champion: Champion, progress: Callable[[str], None] | None = None,
               source_name: str | None = None, allow_foreign_champion: bool = False) -> ScoringResult:
    """Validate, featurise and predict one unlabelled events CSV with ``champion`` (nothing is written:
    see :func:`prediction_tables` and :mod:`mouse_pipeline.outputs`). ``source_name`` names the original
    file when ``path`` is a staged copy of it; ``allow_foreign_champion`` scores even with a champion
    trained on other data (:func:`check_champion_fits`), and the result says so.

    Raises
    ------
    mouse_pipeline.ingest.EventFileError
        When the file cannot be used at all.
    ForeignChampionError
        When the champion was trained on other data (simulated for a real file, or real for a simulated one).
    ValueError
        When no row of the file is valid.
    """
    step = progress or (lambda _message: None)
    name = source_name or str(path)
    step(f"reading {name}")
    ingest = read_unlabelled(path, name, source_name)
    foreign = check_champion_fits(champion, ingest.events, name, allow_foreign_champion)
    step(f"featurising and predicting {ingest.rows_accepted:,} events")
    return ScoringResult(name, ingest, score_events(champion, ingest.events), foreign)
