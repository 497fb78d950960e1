"""Partitioned assets of the training batches: one partition per file of the landing folder.

A batch goes through the same ingestion, checks and feature code as the
training file: ``batch_events`` (Parquet) and ``rejected_batch_events``, the
blocking event checks, then ``batch_session_features`` on the configured
engine. Training reads every materialised partition (see
:mod:`mouse_pipeline.defs.batches.partitions`).
"""

from pathlib import Path

import dagster as dg

from mouse_pipeline.defs.batches.partitions import (
    BATCH_EVENTS,
    BATCH_FEATURES,
    GROUP,
    REJECTED_BATCH_EVENTS,
    TRAINING_BATCHES,
)
from mouse_pipeline.defs.features.assets import featurise
from mouse_pipeline.defs.features.checks import well_formed_check
from mouse_pipeline.defs.ingestion.assets import ingestion_outputs, read_or_fail
from mouse_pipeline.defs.ingestion.checks import labelled_event_checks
from mouse_pipeline.defs.resources import FeatureEngineResource, MouseDataResource, SparkResource
from mouse_pipeline.defs.storage import EventTable


@dg.multi_asset(
    name="training_batch",
    partitions_def=TRAINING_BATCHES,
    outs={
        BATCH_EVENTS: dg.AssetOut(
            description="Clean labelled events of one landed training batch, stored as Parquet.",
            group_name=GROUP, is_required=False, io_manager_key="events_io_manager",
        ),
        REJECTED_BATCH_EVENTS: dg.AssetOut(
            description="Rows of the batch file that failed parsing, with line number and reason.",
            group_name=GROUP, is_required=False,
        ),
    },
    can_subset=True,
    description="Read one training batch (a CSV in MOUSE_LANDING_DIR named by the partition key).",
)
def training_batch(context: dg.AssetExecutionContext, mouse_data: MouseDataResource):
    """Ingests the batch file; its rejected rows also go to ``<data_dir>/rejected_batches/<batch>.csv``."""
    path = mouse_data.landing() / context.partition_key
    result = read_or_fail(path, labelled=True)
    if result.rows_rejected:
        rejected_csv = mouse_data.output_dir("rejected_batches") / f"{Path(context.partition_key).stem}.csv"
        result.rejected.to_csv(rejected_csv, index=False)
        context.log.warning(f"{result.rows_rejected} rows of {path.name} rejected: see {rejected_csv}")
    yield from ingestion_outputs(context, result, BATCH_EVENTS, REJECTED_BATCH_EVENTS, simulated=False)


@dg.asset(
    name=BATCH_FEATURES, partitions_def=TRAINING_BATCHES, group_name=GROUP, io_manager_key="events_io_manager",
    ins={"events": dg.AssetIn(BATCH_EVENTS, input_manager_key="event_table_loader")},
)
def batch_session_features(
    context: dg.AssetExecutionContext, events: EventTable, feature_engine: FeatureEngineResource,
    spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Features of one training batch, on the configured engine; stored as Parquet with the feature
    settings they were made with, for training to read."""
    table, info = featurise(context, events, feature_engine, spark, mouse_data)
    return dg.Output(table, metadata={"sessions": int(table["session_id"].nunique()), **info,
                                      "dagster/row_count": len(table)})


batch_features_one_row_per_window_all_finite = well_formed_check(
    BATCH_FEATURES, BATCH_EVENTS, "batch_features_one_row_per_window_all_finite", partitions_def=TRAINING_BATCHES)

BATCH_EVENT_CHECKS = labelled_event_checks(BATCH_EVENTS, whole_training_set=False, partitions_def=TRAINING_BATCHES)
