"""Scoring a new events file with the registered champion, outside any training run.

:func:`score_file` is what the ``score_new_sessions`` job, the inbox sensor's
runs and the ``mouse-pipeline score`` command all call: the same ingestion,
the same features (with the settings the champion was trained with, read
from its MLflow run), the champion's predictions, two CSV files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.ingest import IngestResult, read_events
from mouse_pipeline.prediction import label_test_rows, predict_sessions
from mouse_pipeline.tracking import load_champion

PREDICTED_ROWS_FILE = "Predicted_mouse.csv"
SESSION_PREDICTIONS_FILE = "session_predictions.csv"
REJECTED_FILE = "rejected_events.csv"


@dataclass(frozen=True)
class ScoringResult:
    """What scoring one file produced."""

    source_file: str
    ingest: IngestResult
    sessions: pd.DataFrame
    rows: pd.DataFrame
    model_version: str
    out_dir: Path

    @property
    def files(self) -> dict[str, Path]:
        return {
            "predicted_rows": self.out_dir / PREDICTED_ROWS_FILE,
            "session_predictions": self.out_dir / SESSION_PREDICTIONS_FILE,
            "rejected": self.out_dir / REJECTED_FILE,
        }


def output_name(path: str | Path) -> str:
    """A folder name derived from an input file: its stem, made filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "input"


def feature_config_of_run(client: MlflowClient, run_id: str) -> FeatureConfig:
    """The feature settings a model was trained with (its run's ``features.*`` params)."""
    params = client.get_run(run_id).data.params
    defaults = FeatureConfig()
    return FeatureConfig(
        window_size=int(params.get("features.window_size", defaults.window_size)),
        window_unit=params.get("features.window_unit", defaults.window_unit),  # type: ignore[arg-type]
        pause_ms=float(params.get("features.pause_ms", defaults.pause_ms)),
    )


def features_for_model(
    events: pd.DataFrame, features: pd.DataFrame, features_config: FeatureConfig, client: MlflowClient, run_id: str
) -> pd.DataFrame:
    """Features as the model of ``run_id`` was trained on them.

    ``features`` (computed from ``events`` with ``features_config``) are used
    as they are when the settings match the run's; otherwise the events are
    featurised again with the run's settings, so that a champion trained on,
    say, whole sessions is never fed windows.
    """
    wanted = feature_config_of_run(client, run_id)
    return features if wanted == features_config else extract_features(events, wanted)


def score_file(
    path: str | Path, out_dir: str | Path, tracking_uri: str, model_name: str,
    progress: Callable[[str], None] | None = None,
) -> ScoringResult:
    """Validate, featurise and predict one unlabelled events CSV; write the predictions.

    Writes ``Predicted_mouse.csv`` (every accepted row, original order, with
    the predicted ``user_id``), ``session_predictions.csv`` and
    ``rejected_events.csv`` into ``out_dir``.

    Raises
    ------
    mouse_pipeline.ingest.EventFileError
        When the file cannot be used at all.
    LookupError
        When the registry has no champion model.
    """
    step = progress or (lambda _message: None)
    step("loading the champion model")
    model, version = load_champion(tracking_uri, model_name)
    client = MlflowClient(tracking_uri)
    config = feature_config_of_run(client, version.run_id)
    unknown_below = client.get_run(version.run_id).data.metrics.get("unknown_threshold")
    step(f"reading {path}")
    ingest = read_events(path, labelled=False)
    if ingest.events.empty:
        raise ValueError(f"{path}: no valid rows to score ({ingest.rows_rejected} rejected)")
    step(f"featurising {ingest.rows_accepted:,} events")
    features = extract_features(ingest.events, config)
    step(f"predicting {features['session_id'].nunique():,} sessions")
    sessions = predict_sessions(model, features, unknown_below)
    rows = label_test_rows(ingest.events, sessions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / PREDICTED_ROWS_FILE, index=False)
    sessions.to_csv(out / SESSION_PREDICTIONS_FILE, index=False)
    ingest.rejected.to_csv(out / REJECTED_FILE, index=False)
    step(f"wrote predictions to {out}")
    return ScoringResult(str(path), ingest, sessions, rows, str(version.version), out)
