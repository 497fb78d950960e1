"""Incremental training data: files dropped into a landing folder become dynamic partitions.

Each CSV that lands in ``MOUSE_LANDING_DIR`` (default ``<data_dir>/landing``)
becomes a partition of :data:`TRAINING_BATCHES`, keyed by its file name. The
``landing_sensor`` registers the partition and requests one run of
``ingest_training_batch`` for it, which validates and featurises that batch
only (see :mod:`mouse_pipeline.defs.batches.assets`). A batch is
processed once; a file whose content changes is processed again.

The partitioned assets live in their own code location
(:mod:`mouse_pipeline.batch_definitions`), so that the main location stays
unpartitioned and ``dagster asset materialize -m mouse_pipeline --select '*'``
needs no partition. The main location sees :data:`batch_features_spec`, and
its ``train_session_features`` reads every materialised batch with
:func:`stored_batch_features`.
"""

import re
from pathlib import Path

import dagster as dg
import pandas as pd

from mouse_pipeline.defs.file_cursor import changed_files
from mouse_pipeline.defs.resources import MouseDataResource
from mouse_pipeline.defs.storage import table_path

TRAINING_BATCHES = dg.DynamicPartitionsDefinition(name="training_batches")
GROUP = "training_batches"
BATCH_EVENTS = "batch_events"
REJECTED_BATCH_EVENTS = "rejected_batch_events"
BATCH_FEATURES = "batch_session_features"
#: File names usable as partition keys (and safe in paths).
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.csv$")

batch_features_spec = dg.AssetSpec(
    BATCH_FEATURES,
    partitions_def=TRAINING_BATCHES,
    group_name=GROUP,
    description="Features of one training batch (materialised in the mouse_pipeline_batches location).",
)

ingest_training_batch = dg.define_asset_job(
    "ingest_training_batch",
    selection=dg.AssetSelection.assets(BATCH_EVENTS, REJECTED_BATCH_EVENTS, BATCH_FEATURES),
    partitions_def=TRAINING_BATCHES,
    description="Validate and featurise one training batch (a file of the landing folder).",
)


def stored_batch_features(instance: dg.DagsterInstance, tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Feature tables of every training batch that is registered and materialised, by batch key.

    A batch whose blocking checks failed has no materialised features and is
    left out; a materialised batch whose table is missing is an error.
    """
    registered = set(instance.get_dynamic_partitions(TRAINING_BATCHES.name))
    done = instance.get_materialized_partitions(dg.AssetKey(BATCH_FEATURES))
    tables = {}
    for key in sorted(registered & set(done)):
        path = table_path(tables_dir, dg.AssetKey(BATCH_FEATURES), key)
        if not path.exists():
            raise dg.Failure(f"training batch {key!r} is materialised but its features are missing at {path}")
        tables[key] = pd.read_parquet(path)
    return tables


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
