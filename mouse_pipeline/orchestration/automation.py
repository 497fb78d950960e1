"""Jobs, the retraining schedule, the inbox sensor and the file-watching they share."""

import json
import os
from pathlib import Path

import dagster as dg

from mouse_pipeline.ingest import EventFileError
from mouse_pipeline.orchestration.resources import MlflowTracking, MouseDataResource
from mouse_pipeline.scoring import output_name, score_file
from mouse_pipeline.tracking import file_sha256

#: Everything from ingestion to predictions (the exploration group is left to its own runs).
retrain = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups("ingestion", "features", "model", "verification", "prediction"),
    description="Ingest the configured CSVs, validate, featurise, train, register and predict.",
)


class ScoringConfig(dg.Config):
    """The file to score and the folder name its predictions go to (default: from the file name)."""

    csv_path: str
    output_name: str = ""


@dg.op(description="Validate, featurise and predict one unlabelled CSV with the champion model.")
def score_csv(
    context: dg.OpExecutionContext, config: ScoringConfig, mouse_data: MouseDataResource,
    mlflow_tracking: MlflowTracking,
) -> dg.Nothing:
    out = mouse_data.root / "predictions" / "inbox" / (config.output_name or output_name(config.csv_path))
    try:
        result = score_file(config.csv_path, out, mlflow_tracking.uri(), mlflow_tracking.registered_model_name,
                            progress=context.log.info)
    except (EventFileError, LookupError, ValueError) as exc:
        raise dg.Failure(description=str(exc), metadata={"file": config.csv_path}) from exc
    context.add_output_metadata(
        {
            "source_file": config.csv_path,
            "rows_accepted": result.ingest.rows_accepted,
            "rows_rejected": result.ingest.rows_rejected,
            "sessions_scored": len(result.sessions),
            "model_version": result.model_version,
            "output_folder": dg.MetadataValue.path(str(out)),
        }
    )


@dg.job(description="Score a new test file with the current champion, without retraining.")
def score_new_sessions():
    score_csv()


def retrain_schedule() -> dg.ScheduleDefinition:
    """Weekly by default (``MOUSE_RETRAIN_CRON``); off unless ``MOUSE_RETRAIN_SCHEDULE=on``."""
    running = os.environ.get("MOUSE_RETRAIN_SCHEDULE", "off").lower() in ("on", "1", "true", "running")
    return dg.ScheduleDefinition(
        name="weekly_retrain",
        job=retrain,
        cron_schedule=os.environ.get("MOUSE_RETRAIN_CRON", "0 3 * * 1"),
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description="Retrain on the configured CSVs (cron from MOUSE_RETRAIN_CRON, default Mondays 03:00).",
    )


def changed_files(folder: Path, pattern: str, cursor: str | None) -> tuple[list[tuple[Path, str]], str]:
    """Files of ``folder`` matching ``pattern`` that are new or changed since ``cursor``, with their
    sha256, and the cursor to store next.

    The cursor maps each file to the (size, mtime, sha256) last seen, so an
    unchanged file is hashed once and never reported twice; a file whose
    content changed is reported again, one merely touched is not.
    """
    seen: dict[str, list] = json.loads(cursor) if cursor else {}
    changed = []
    for path in sorted(folder.glob(pattern)):
        stat = path.stat()
        key = str(path.resolve())
        previous = seen.get(key)
        if previous and previous[:2] == [stat.st_size, stat.st_mtime_ns]:
            continue  # untouched since last seen: not even re-hashed
        digest = file_sha256(path)
        seen[key] = [stat.st_size, stat.st_mtime_ns, digest]
        if previous and previous[2] == digest:
            continue  # touched but identical content
        changed.append((path.resolve(), digest))
    return changed, json.dumps(seen, sort_keys=True)


def inbox_sensor(inbox_dir: str) -> dg.SensorDefinition:
    """One ``score_new_sessions`` run per new or changed CSV in ``inbox_dir`` (see :func:`changed_files`);
    the run key (path and hash) makes each request idempotent."""

    @dg.sensor(job=score_new_sessions, minimum_interval_seconds=15, name="inbox_sensor",
               description=f"Scores CSV files dropped into {inbox_dir} (MOUSE_INBOX_DIR).",
               default_status=dg.DefaultSensorStatus.RUNNING)
    def _sensor(context: dg.SensorEvaluationContext):
        inbox = Path(inbox_dir)
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

    return _sensor
