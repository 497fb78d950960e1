"""Scoring new files without retraining: the ``score_new_sessions`` job and the inbox sensor."""

from pathlib import Path

import dagster as dg

from mouse_pipeline.defs.file_cursor import changed_files
from mouse_pipeline.defs.resources import MlflowResource, MouseDataResource
from mouse_pipeline.ingest import EventFileError
from mouse_pipeline.scoring import output_name, score_file


class ScoringRunConfig(dg.Config):
    """The file to score and the folder name its predictions go to (default: from the file name)."""

    csv_path: str
    output_name: str = ""


@dg.op(description="Validate, featurise and predict one unlabelled CSV with the champion model.")
def score_csv(
    context: dg.OpExecutionContext, config: ScoringRunConfig, mouse_data: MouseDataResource,
    mlflow_tracking: MlflowResource,
) -> dg.Nothing:
    out = mouse_data.root / "predictions" / "inbox" / (config.output_name or output_name(config.csv_path))
    champion = mlflow_tracking.champion()
    try:
        result = score_file(config.csv_path, out, champion, progress=context.log.info)
    except (EventFileError, ValueError) as exc:
        raise dg.Failure(description=str(exc), metadata={"file": config.csv_path}) from exc
    context.add_output_metadata(
        {
            "source_file": config.csv_path,
            "rows_accepted": result.ingest.rows_accepted,
            "rows_rejected": result.ingest.rows_rejected,
            "sessions_scored": len(result.sessions),
            "model_version": result.model_version,
            "model": champion.describe(),
            "output_folder": dg.MetadataValue.path(str(out)),
        }
    )


@dg.job(description="Score a new test file with the current champion, without retraining.")
def score_new_sessions():
    score_csv()


@dg.sensor(job=score_new_sessions, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Scores CSV files dropped into the inbox folder (MOUSE_INBOX_DIR, default data/inbox).")
def inbox_sensor(context: dg.SensorEvaluationContext, mouse_data: MouseDataResource):
    """One ``score_new_sessions`` run per new or changed CSV of the inbox (see
    :func:`~mouse_pipeline.defs.file_cursor.changed_files`); the run key (path and hash) makes each
    request idempotent."""
    inbox: Path = mouse_data.inbox()
    if not inbox.is_dir():
        return dg.SkipReason(f"inbox {inbox} does not exist yet")
    changed, cursor = changed_files(inbox, "*.csv", context.cursor)
    requests = [
        dg.RunRequest(
            run_key=f"{path}:{digest}",
            run_config={"ops": {"score_csv": {"config": {
                "csv_path": str(path), "output_name": f"{output_name(path)}-{digest[:8]}"}}}},
            tags={"inbox_file": path.name},
        )
        for path, digest in changed
    ]
    context.update_cursor(cursor)
    return requests or dg.SkipReason("no new or changed CSV in the inbox")
