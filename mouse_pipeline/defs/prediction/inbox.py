"""Scoring new files without retraining: the ``score_new_sessions`` job and the inbox sensor.

The sensor reports a CSV of the inbox once it has settled (see
:mod:`mouse_pipeline.defs.file_cursor`), copies it into ``<data_dir>/staging/inbox``
and passes the copy and its sha256 to the run, which verifies the hash and
scores exactly those bytes. The predictions go to
``<data_dir>/predictions/inbox/<file stem>-<hash>/``, written as a whole
folder with a manifest.
"""

from pathlib import Path

import dagster as dg

from mouse_pipeline.defs import file_cursor
from mouse_pipeline.defs.resources import MlflowResource, MouseDataResource
from mouse_pipeline.ingest import EventFileError
from mouse_pipeline.outputs import write_result_folder
from mouse_pipeline.scoring import output_name, score_file

INTERVAL_S = 15


class ScoringRunConfig(dg.Config):
    """The file to score; ``sha256`` (when given) must match its content; ``source_name`` is the name of the
    file it was copied from; ``output_name`` names the output folder (default: from the file name);
    ``allow_foreign_champion`` scores with a champion trained on other data than the file (simulated data
    for a real file, or real data for a simulated one: refused by default)."""

    csv_path: str
    sha256: str = ""
    source_name: str = ""
    output_name: str = ""
    allow_foreign_champion: bool = False


@dg.op(description="Validate, featurise and predict one unlabelled CSV with the champion model.")
def score_csv(
    context: dg.OpExecutionContext, config: ScoringRunConfig, mouse_data: MouseDataResource,
    mlflow_tracking: MlflowResource,
) -> dg.Nothing:
    source = config.source_name or Path(config.csv_path).name
    out = mouse_data.output_dir("predictions/inbox") / (config.output_name or output_name(source))
    try:
        if config.sha256:
            file_cursor.verify_staged(config.csv_path, config.sha256)
        champion = mlflow_tracking.champion()
        result = score_file(config.csv_path, champion, progress=context.log.info, source_name=source,
                            allow_foreign_champion=config.allow_foreign_champion)
    except (EventFileError, ValueError) as exc:
        raise dg.Failure(description=str(exc), metadata={"file": source}) from exc
    write_result_folder(out, result.tables(), result.info(sha256=config.sha256 or None,
                                                          dagster_run_id=context.run_id),
                        escape=mouse_data.escape_csv_formulas)
    if config.sha256:
        file_cursor.remove_staged(config.csv_path)
    if result.foreign_champion:
        context.log.warning(f"scored anyway (allow_foreign_champion): {result.foreign_champion}")
    context.add_output_metadata(
        {
            "source_file": source,
            "sha256": config.sha256,
            "rows_accepted": result.ingest.rows_accepted,
            "rows_rejected": result.ingest.rows_rejected,
            "sessions_scored": len(result.sessions),
            "model_version": result.model_version,
            "model": champion.describe(),
            "foreign_champion": result.foreign_champion or "none: the champion fits the file",
            "output_folder": dg.MetadataValue.path(str(out)),
        }
    )


@dg.job(description="Score a new test file with the current champion, without retraining.")
def score_new_sessions():
    score_csv()


@dg.sensor(job=score_new_sessions, minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Scores CSV files dropped into the inbox folder (MOUSE_INBOX_DIR, default data/inbox) once "
                       "they have settled.")
def inbox_sensor(context: dg.SensorEvaluationContext, mouse_data: MouseDataResource):
    """One ``score_new_sessions`` run per new or changed CSV of the inbox, once it has settled; the run key
    (file and content hash) makes each request idempotent."""
    inbox = mouse_data.inbox()
    if not inbox.is_dir():
        return dg.SkipReason(f"inbox {inbox} does not exist yet")
    settled, cursor = file_cursor.settled_files(inbox, "*.csv", context.cursor, mouse_data.staging("inbox"),
                                                mouse_data.settle_time(INTERVAL_S), file_cursor.clock())
    requests = [
        dg.RunRequest(
            run_key=f"{f.source}:{f.sha256}",
            run_config={"ops": {"score_csv": {"config": {
                "csv_path": str(f.staged), "sha256": f.sha256, "source_name": f.source.name,
                "output_name": f"{output_name(f.source)}-{f.sha256[:8]}"}}}},
            tags={"inbox_file": f.source.name},
        )
        for f in settled
    ]
    context.update_cursor(cursor)
    return requests or dg.SkipReason("no new or changed CSV has settled in the inbox")
