"""The ``ingest_training_batch`` job: one landed file validated and featurised, once, in its partition.

The job is a partitioned op job rather than a set of executable assets, so
the batch assets stay out of the unpartitioned graph (see
:mod:`mouse_pipeline.defs.batches.partitions`). Its op reads the batch, stores
its events and rejected rows, reports the same event checks as the training
file (blocking ones stop the batch), featurises it on the configured engine,
checks the feature table, and reports a materialisation of each batch asset
for the partition.
"""

from pathlib import Path

import dagster as dg

from mouse_pipeline import contract as c
from mouse_pipeline.defs import file_cursor
from mouse_pipeline.defs.batches.partitions import (
    TRAINING_BATCHES,
    batch_events,
    batch_session_features,
    batch_table,
    rejected_batch_events,
)
from mouse_pipeline.defs.batches.checks import WELL_FORMED
from mouse_pipeline.defs.features.assets import CONFIG_ATTR, featurise_table, spark_output
from mouse_pipeline.defs.features.checks import well_formed
from mouse_pipeline.defs.ingestion.assets import ingestion_metadata, read_or_fail, rejected_metadata
from mouse_pipeline.defs.ingestion.checks import BATCH_RULES, rule_evaluations
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import (
    DATA_POOL,
    FeatureEngineResource,
    MouseDataResource,
    SparkResource,
    ValidationLimitsResource,
)
from mouse_pipeline.defs.storage import EventTable, write_table


class BatchRunConfig(dg.Config):
    """The staged copy of the batch file and its sha256, as the landing sensor saw it. Empty (a run
    launched by hand): the landing-folder file named by the partition is copied now."""

    csv_path: str = ""
    sha256: str = ""


@dg.op(pool=DATA_POOL, description="Validate and featurise one training batch (the landing-folder file named by the partition).")
def process_training_batch(
    context: dg.OpExecutionContext, config: BatchRunConfig, mouse_data: MouseDataResource,
    feature_engine: FeatureEngineResource, spark: SparkResource, validation_limits: ValidationLimitsResource,
) -> None:
    batch = context.partition_key
    tables = mouse_data.tables_dir
    features_path = batch_table(tables, batch_session_features, batch)
    features_path.unlink(missing_ok=True)  # until this run succeeds, the batch has no features
    staged, sha256 = Path(config.csv_path), config.sha256
    if not config.csv_path:
        source = mouse_data.landing() / batch
        if not source.is_file():
            raise dg.Failure(f"training batch {batch}: no file {source}")
        staged, sha256 = file_cursor.stage_copy(source, mouse_data.staging("landing"))
    try:
        file_cursor.verify_staged(staged, sha256)
    except ValueError as exc:
        raise dg.Failure(f"training batch {batch}: {exc}") from exc
    result = read_or_fail(staged, labelled=True, source_name=batch)
    events_path = write_table(result.events, batch_table(tables, batch_events, batch))
    write_table(result.rejected, batch_table(tables, rejected_batch_events, batch))
    if result.rows_rejected:
        rejected_csv = mouse_data.output_dir("rejected_batches") / f"{Path(batch).stem}.csv"
        mouse_data.write_csv(result.rejected, rejected_csv)
        context.log.warning(f"{result.rows_rejected} rows of {batch} rejected: see {rejected_csv}")
    context.log_event(dg.AssetMaterialization(batch_events.key, partition=batch, metadata={
        **ingestion_metadata(result, simulated=False), "source_file": batch, "sha256": sha256,
        "parquet_path": dg.MetadataValue.path(str(events_path))}))
    context.log_event(dg.AssetMaterialization(rejected_batch_events.key, partition=batch,
                                              metadata=rejected_metadata(result)))

    evaluations = rule_evaluations(batch_events.key.to_user_string(), BATCH_RULES, result.events,
                                   validation_limits, partition=batch)
    for evaluation in evaluations:
        context.log_event(evaluation)
    failed = [e.check_name for e in evaluations if e.blocking and not e.passed]
    if failed:
        raise dg.Failure(f"training batch {batch}: blocking check(s) {', '.join(failed)} failed, so it is not "
                         "featurised and training leaves it out; correct the file and drop it again",
                         metadata={"failed_checks": ", ".join(failed)})

    table, info = featurise_table(EventTable(events_path), feature_engine.check_config(), feature_engine, spark,
                                  spark_output(mouse_data, batch_session_features.key, batch))
    shape = well_formed(table, result.events[c.SESSION_ID])
    context.log_event(dg.AssetCheckEvaluation(
        asset_key=batch_session_features.key, check_name=WELL_FORMED, passed=shape.passed, metadata=shape.metadata,
        blocking=True, partition=batch))
    if not shape.passed:
        raise dg.Failure(f"training batch {batch}: its feature table is malformed ({shape.metadata})")
    write_table(table, features_path)
    context.log_event(dg.AssetMaterialization(batch_session_features.key, partition=batch, metadata={
        "sessions": int(table[c.SESSION_ID].nunique()), "windows": len(table), **info,
        "feature_settings": table.attrs[CONFIG_ATTR], "dagster/row_count": len(table),
        "preview": table_preview(table), "parquet_path": dg.MetadataValue.path(str(features_path))}))
    file_cursor.remove_staged(staged)


@dg.job(partitions_def=TRAINING_BATCHES,
        description="Validate and featurise one training batch (a file of the landing folder).")
def ingest_training_batch():
    process_training_batch()
