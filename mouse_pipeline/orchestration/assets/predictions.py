"""The predictions asset: the champion model names the user of every test session."""


import dagster as dg
import pandas as pd
from mlflow.tracking import MlflowClient

from mouse_pipeline import contract as c
from mouse_pipeline.orchestration.metadata import table_preview
from mouse_pipeline.orchestration.resources import (
    FeatureSettings,
    MlflowTracking,
    MouseDataResource,
)
from mouse_pipeline.prediction import UNKNOWN, label_test_rows, predict_sessions
from mouse_pipeline.scoring import features_for_model
from mouse_pipeline.tracking import load_champion

GROUP = "prediction"


class PredictionConfig(dg.Config):
    """A session whose top probability is below ``low_confidence_below`` counts as low-confidence."""

    low_confidence_below: float = 0.5


@dg.asset(group_name=GROUP, deps=["user_identifier", "verification_calibration"])
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionConfig,
    test_session_features: pd.DataFrame,
    raw_test_events: pd.DataFrame,
    mlflow_tracking: MlflowTracking,
    mouse_data: MouseDataResource,
    feature_settings: FeatureSettings,
) -> dg.Output:
    """Predicted user of every test session by ``models:/mouse-user-identifier@champion``, written
    as ``predictions/Predicted_mouse.csv`` (every test row, original order, notebook format) and
    ``predictions/session_predictions.csv`` (one row per session with runner-up, and the
    open-set ``verdict``: the user, or ``unknown`` below the champion's calibrated threshold)."""
    try:
        model, version = load_champion(mlflow_tracking.uri(), mlflow_tracking.registered_model_name)
    except LookupError as exc:
        raise dg.Failure(str(exc)) from exc
    client = MlflowClient(mlflow_tracking.uri())
    unknown_below = client.get_run(version.run_id).data.metrics.get("unknown_threshold")
    features = features_for_model(raw_test_events, test_session_features, feature_settings.config(), client,
                                  version.run_id)
    sessions = predict_sessions(model, features, unknown_below)
    rows = label_test_rows(raw_test_events, sessions)
    out = mouse_data.output_dir("predictions")
    rows.to_csv(out / "Predicted_mouse.csv", index=False)
    sessions.to_csv(out / "session_predictions.csv", index=False)
    low = int((sessions["probability"] < config.low_confidence_below).sum())
    context.log.info(f"scored {len(sessions)} sessions with model version {version.version}")
    return dg.Output(
        sessions,
        metadata={
            "sessions_scored": len(sessions),
            "rows_labelled": len(rows),
            "low_confidence_sessions": low,
            "unknown_user_sessions": int((sessions.get("verdict", pd.Series(dtype=str)) == UNKNOWN).sum()),
            "unknown_threshold": float(unknown_below) if unknown_below is not None else "not calibrated",
            "model_version": str(version.version),
            "predicted_users": dg.MetadataValue.json(sessions[c.USER_ID].value_counts().to_dict()),
            "mean_probability": float(sessions["probability"].mean()),
            "predicted_mouse_csv": dg.MetadataValue.path(str(out / "Predicted_mouse.csv")),
            "session_predictions_csv": dg.MetadataValue.path(str(out / "session_predictions.csv")),
            "dagster/row_count": len(sessions),
            "preview": table_preview(sessions),
        },
    )
