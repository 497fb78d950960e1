"""The predictions asset: the champion model names the user of every test session."""

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.model.assets import TrainedModel
from mouse_pipeline.defs.features.assets import table_config
from mouse_pipeline.defs.resources import DATA_POOL, MlflowResource, MouseDataResource, champion_fits_file
from mouse_pipeline.prediction import UNKNOWN
from mouse_pipeline.outputs import LATEST, publish_folder
from mouse_pipeline.scoring import prediction_info, prediction_tables, score_events
from mouse_pipeline.settings import DEFAULT_LOW_CONFIDENCE

GROUP = "prediction"


class PredictionRunConfig(dg.Config):
    """A session whose top probability is below ``low_confidence_below`` counts as low-confidence;
    ``allow_foreign_champion`` scores with a champion trained on other data (refused by default)."""

    low_confidence_below: float = DEFAULT_LOW_CONFIDENCE
    allow_foreign_champion: bool = False


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["champion"])
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionRunConfig,
    user_identifier: TrainedModel,
    test_session_features: pd.DataFrame,
    raw_test_events: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    mouse_data: MouseDataResource,
) -> dg.Output:
    """Predicted user of every test session by the registered champion, written as
    ``predictions/latest/Predicted_mouse.csv`` (every test row, original order, notebook format) and
    ``predictions/latest/session_predictions.csv`` (one row per session with runner-up, the model
    version and the open-set ``verdict``: the user, or ``unknown`` below the champion's calibrated
    threshold). Each run writes its own folder ``predictions/runs/<run id>/`` with a
    ``manifest.json`` written last, then moves the ``latest`` link to it in one step."""
    champion = mlflow_tracking.champion(user_identifier.identity, config.allow_foreign_champion)
    foreign = champion_fits_file(champion, raw_test_events, mouse_data, config.allow_foreign_champion)
    if foreign:
        context.log.warning(f"scored anyway (allow_foreign_champion): {foreign}")
    scored = score_events(champion, raw_test_events, test_session_features, table_config(test_session_features))
    root = mouse_data.output_dir("predictions")
    folder = publish_folder(root, context.run_id, prediction_tables(scored),
                            prediction_info(scored, mouse_data.event_files().test.name, dagster_run_id=context.run_id),
                            escape=mouse_data.escape_csv_formulas)
    sessions = scored.sessions
    low = int((sessions["probability"] < config.low_confidence_below).sum())
    context.log.info(f"scored {len(sessions)} sessions with {champion.describe()}")
    return dg.Output(
        sessions,
        metadata={
            "sessions_scored": len(sessions),
            "rows_labelled": len(scored.rows),
            "low_confidence_sessions": low,
            "unknown_user_sessions": int((sessions.get("verdict", pd.Series(dtype=str)) == UNKNOWN).sum()),
            "unknown_threshold": champion.unknown_threshold if champion.unknown_threshold is not None
            else "not calibrated",
            "model_version": champion.version,
            "model": champion.describe(),
            "foreign_champion": foreign or "no",
            "predicted_users": dg.MetadataValue.json(sessions[c.USER_ID].value_counts().to_dict()),
            "mean_probability": float(sessions["probability"].mean()),
            "folder": dg.MetadataValue.path(str(folder)),
            "latest": dg.MetadataValue.path(str(root / LATEST)),
            "dagster/row_count": len(sessions),
            "preview": table_preview(sessions),
        },
    )
