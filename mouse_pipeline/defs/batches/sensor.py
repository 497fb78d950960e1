"""The landing sensor: each new or changed file of the landing folder becomes a batch and one run."""

from pathlib import Path

import dagster as dg

from mouse_pipeline.defs.batches.job import ingest_training_batch
from mouse_pipeline.defs.batches.partitions import BATCH_NAME, TRAINING_BATCHES
from mouse_pipeline.defs.file_cursor import changed_files
from mouse_pipeline.defs.resources import MouseDataResource


@dg.sensor(job=ingest_training_batch, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Turns CSV files dropped into the landing folder (MOUSE_LANDING_DIR, default data/landing) "
                       "into training batches.")
def landing_sensor(context: dg.SensorEvaluationContext, mouse_data: MouseDataResource):
    """Registers each new or changed ``*.csv`` of the landing folder as a training batch and runs it."""
    landing: Path = mouse_data.landing()
    if not landing.is_dir():
        return dg.SkipReason(f"landing folder {landing} does not exist yet")
    changed, cursor = changed_files(landing, "*.csv", context.cursor)
    unusable = [path.name for path, _ in changed if not BATCH_NAME.match(path.name)]
    if unusable:
        context.log.warning(f"skipped files whose names cannot be partition keys (use letters, digits, "
                            f"'_', '-', '.'): {unusable}")
    batches = [(path.name, digest) for path, digest in changed if BATCH_NAME.match(path.name)]
    known = set(context.instance.get_dynamic_partitions(TRAINING_BATCHES.name))
    new_keys = [key for key, _ in batches if key not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"{key}:{digest}", tags={"landing_file": key})
                      for key, digest in batches],
        dynamic_partitions_requests=[TRAINING_BATCHES.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )
