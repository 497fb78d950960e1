"""Scoring events with the registered champion: the one path from events to predictions.

:func:`score_events` is what the ``predictions`` asset, the
``score_new_sessions`` job (inbox sensor runs) and the ``mouse-pipeline
score`` command all call: features with the settings the champion was
trained with (read from its MLflow run), the champion's session
predictions, open-set verdicts at its calibrated threshold, and every row
labelled. :func:`score_file` adds ingestion of a CSV and writes the files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.ingest import IngestResult, read_events
from mouse_pipeline.prediction import label_test_rows, predict_sessions
from mouse_pipeline.tracking import Champion

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


def score_events(champion: Champion, events: pd.DataFrame, features: pd.DataFrame | None = None,
                 features_config: FeatureConfig | None = None) -> Scored:
    """Session predictions and labelled rows of unlabelled ``events`` (see :func:`features_for`)."""
    table = features_for(champion, events, features, features_config)
    sessions = predict_sessions(champion.pipeline, table, champion.unknown_threshold)
    return Scored(sessions, label_test_rows(events, sessions), table, champion)


def write_predictions(scored: Scored, out_dir: str | Path, rejected: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``Predicted_mouse.csv``, ``session_predictions.csv`` (and ``rejected_events.csv``) into
    ``out_dir``; return their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predicted_rows": out / PREDICTED_ROWS_FILE, "session_predictions": out / SESSION_PREDICTIONS_FILE}
    scored.rows.to_csv(paths["predicted_rows"], index=False)
    scored.sessions.to_csv(paths["session_predictions"], index=False)
    if rejected is not None:
        paths["rejected"] = out / REJECTED_FILE
        rejected.to_csv(paths["rejected"], index=False)
    return paths


@dataclass(frozen=True)
class ScoringResult:
    """What scoring one file produced."""

    source_file: str
    ingest: IngestResult
    scored: Scored
    files: dict[str, Path]

    @property
    def sessions(self) -> pd.DataFrame:
        return self.scored.sessions

    @property
    def model_version(self) -> str:
        return self.scored.champion.version


def output_name(path: str | Path) -> str:
    """A folder name derived from an input file: its stem, made filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "input"


def score_file(
    path: str | Path, out_dir: str | Path, champion: Champion, progress: Callable[[str], None] | None = None,
) -> ScoringResult:
    """Validate, featurise and predict one unlabelled events CSV with ``champion``; write the predictions
    (:func:`write_predictions`, rejected rows included).

    Raises
    ------
    mouse_pipeline.ingest.EventFileError
        When the file cannot be used at all.
    ValueError
        When no row of the file is valid.
    """
    step = progress or (lambda _message: None)
    step(f"reading {path}")
    ingest = read_events(path, labelled=False)
    if ingest.events.empty:
        raise ValueError(f"{path}: no valid rows to score ({ingest.rows_rejected} rejected)")
    step(f"featurising and predicting {ingest.rows_accepted:,} events")
    scored = score_events(champion, ingest.events)
    files = write_predictions(scored, out_dir, ingest.rejected)
    step(f"wrote predictions to {out_dir}")
    return ScoringResult(str(path), ingest, scored, files)
