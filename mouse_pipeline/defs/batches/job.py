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
from mouse_pipeline.defs.batches.partitions import (
    TRAINING_BATCHES,
    batch_events,
    batch_session_features,
    batch_table,
    rejected_batch_events,
)
from mouse_pipeline.defs.batches.checks import WELL_FORMED
from mouse_pipeline.defs.features.assets import CONFIG_ATTR, featurise, spark_output
from mouse_pipeline.defs.features.checks import well_formed
from mouse_pipeline.defs.ingestion.assets import ingestion_metadata, read_or_fail, rejected_metadata
from mouse_pipeline.defs.ingestion.checks import BATCH_RULES, rule_evaluations
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import (
    FeatureEngineResource,
    MouseDataResource,
    SparkResource,
    ValidationLimitsResource,
)
from mouse_pipeline.defs.storage import EventTable, write_table


@dg.op(description="Validate and featurise one training batch (the landing-folder file named by the partition).")
def process_training_batch(
    context: dg.OpExecutionContext, mouse_data: MouseDataResource, feature_engine: FeatureEngineResource,
    spark: SparkResource, validation_limits: ValidationLimitsResource,
) -> None:
    batch = context.partition_key
    tables = mouse_data.tables_dir
    features_path = batch_table(tables, batch_session_features, batch)
    features_path.unlink(missing_ok=True)  # until this run succeeds, the batch has no features
    result = read_or_fail(mouse_data.landing() / batch, labelled=True)
    events_path = write_table(result.events, batch_table(tables, batch_events, batch))
    write_table(result.rejected, batch_table(tables, rejected_batch_events, batch))
    if result.rows_rejected:
        rejected_csv = mouse_data.output_dir("rejected_batches") / f"{Path(batch).stem}.csv"
        result.rejected.to_csv(rejected_csv, index=False)
        context.log.warning(f"{result.rows_rejected} rows of {batch} rejected: see {rejected_csv}")
    context.log_event(dg.AssetMaterialization(batch_events.key, partition=batch, metadata={
        **ingestion_metadata(result, simulated=False), "parquet_path": dg.MetadataValue.path(str(events_path))}))
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

    table, info = featurise(EventTable(events_path), feature_engine, spark,
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


@dg.job(partitions_def=TRAINING_BATCHES,
        description="Validate and featurise one training batch (a file of the landing folder).")
def ingest_training_batch():
    process_training_batch()
