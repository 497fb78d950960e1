"""The landing sensor: each new or changed file of the landing folder becomes a batch and one run."""

from pathlib import Path

import dagster as dg

from mouse_pipeline.defs import file_cursor
from mouse_pipeline.defs.batches.job import ingest_training_batch
from mouse_pipeline.defs.batches.partitions import BATCH_NAME, TRAINING_BATCHES
from mouse_pipeline.defs.resources import MouseDataResource

INTERVAL_S = 30


@dg.sensor(job=ingest_training_batch, minimum_interval_seconds=INTERVAL_S,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Turns CSV files dropped into the landing folder (MOUSE_LANDING_DIR, default data/landing) "
                       "into training batches once they have settled.")
def landing_sensor(context: dg.SensorEvaluationContext, mouse_data: MouseDataResource):
    """Registers each new or changed ``*.csv`` of the landing folder as a training batch once it has settled,
    and runs it on a staged copy of exactly the bytes seen (see :mod:`mouse_pipeline.defs.file_cursor`)."""
    landing: Path = mouse_data.landing()
    if not landing.is_dir():
        return dg.SkipReason(f"landing folder {landing} does not exist yet")
    settled, cursor = file_cursor.settled_files(landing, "*.csv", context.cursor, mouse_data.staging("landing"),
                                                mouse_data.settle_time(INTERVAL_S), file_cursor.clock())
    unusable = [f for f in settled if not BATCH_NAME.match(f.source.name)]
    for f in unusable:
        file_cursor.remove_staged(f.staged)
    if unusable:
        context.log.warning(f"skipped files whose names cannot be partition keys (use letters, digits, "
                            f"'_', '-', '.'): {[f.source.name for f in unusable]}")
    batches = [f for f in settled if BATCH_NAME.match(f.source.name)]
    known = set(context.instance.get_dynamic_partitions(TRAINING_BATCHES.name))
    new_keys = [f.source.name for f in batches if f.source.name not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            partition_key=f.source.name, run_key=f"{f.source.name}:{f.sha256}", tags={"landing_file": f.source.name},
            run_config={"ops": {"process_training_batch": {"config": {"csv_path": str(f.staged),
                                                                        "sha256": f.sha256}}}},
        ) for f in batches],
        dynamic_partitions_requests=[TRAINING_BATCHES.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )
