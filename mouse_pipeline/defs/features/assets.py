"""Feature assets: one row per session (or window) for training and test events.

The events arrive as :class:`~mouse_pipeline.defs.storage.EventTable` handles
on their Parquet files: the pandas engine reads them here, the Spark engine
has its executors read them (see :mod:`mouse_pipeline.spark_engine`). Training
features also take in every materialised training batch (see
:mod:`mouse_pipeline.defs.batches`).
"""


import json
import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features import extract_features, feature_columns
from mouse_pipeline.defs.batches.partitions import batch_session_features, stored_batch_features
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import DATA_POOL, FeatureEngineResource, MouseDataResource, SparkResource
from mouse_pipeline.defs.storage import EventTable, table_path

GROUP = "features"
#: Key of a feature table's ``attrs`` (kept in its Parquet file) holding the settings it was made with.
CONFIG_ATTR = "feature_config"


def featurise(events: EventTable, settings: FeatureEngineResource, spark: SparkResource,
              spark_out: Path) -> tuple[pd.DataFrame, dict]:
    """Features of a stored event table on the configured engine, and metadata about the work.

    The Spark engine writes the features as Parquet to the folder ``spark_out`` and reads them back.
    """
    config = settings.config()
    started = time.perf_counter()
    if settings.uses_spark:
        from mouse_pipeline.spark_engine import features_to_parquet, read_feature_table

        files = features_to_parquet(spark.session(), str(events.path), str(spark_out), config,
                                    events_per_group=spark.events_per_group)
        table = read_feature_table(files.features)
        engine = {"engine": "spark", "spark_master": spark.session().sparkContext.master,
                  "spark_output": dg.MetadataValue.path(files.features)}
    else:
        table = extract_features(events.read(), config)
        engine = {"engine": "pandas"}
    seconds = time.perf_counter() - started
    table.attrs[CONFIG_ATTR] = json.dumps(asdict(config), sort_keys=True)
    n_events = events.rows
    return table, {
        **engine,
        "events": n_events,
        "seconds": round(seconds, 3),
        "events_per_second": round(n_events / max(seconds, 1e-9)),
        "window_size": settings.window_size,
        "window_unit": settings.window_unit,
    }


def spark_output(mouse_data: MouseDataResource, asset_key: dg.AssetKey, partition: str | None = None) -> Path:
    """Where the Spark engine writes the features of ``asset_key`` (for one batch, or one run)."""
    return table_path(mouse_data.output_dir("spark"), asset_key, partition)


def _output(table: pd.DataFrame, info: dict) -> dg.Output:
    return dg.Output(
        table,
        metadata={
            "sessions": int(table[c.SESSION_ID].nunique()),
            "windows": len(table),
            "features": len(feature_columns(table)),
            **info,
            "dagster/row_count": len(table),
            "preview": table_preview(table),
        },
    )


def _with_batches(context: dg.AssetExecutionContext, table: pd.DataFrame, mouse_data: MouseDataResource) -> tuple:
    """``table`` plus the features of every materialised training batch made with the same settings."""
    batches, left_out = stored_batch_features(context.instance, mouse_data.tables_dir)
    for key, reason in left_out.items():
        context.log.warning(f"training batch {key} left out: {reason}")
    stale = [key for key, frame in batches.items() if frame.attrs.get(CONFIG_ATTR) != table.attrs[CONFIG_ATTR]]
    if stale:
        raise dg.Failure(
            f"training batches {stale} were featurised with other feature settings than "
            f"{table.attrs[CONFIG_ATTR]}: run ingest_training_batch for these partitions again",
            metadata={"stale_batches": ", ".join(stale)},
        )
    left = {"batches_left_out": ", ".join(left_out) or "none"}
    if not batches:
        return table, {"batches": 0, **left}
    combined = pd.concat([table, *batches.values()], ignore_index=True)
    combined.attrs = table.attrs
    info = {"batches": len(batches), "batch_keys": ", ".join(batches),
            "batch_sessions": int(combined[c.SESSION_ID].nunique() - table[c.SESSION_ID].nunique()), **left}
    return combined, info


@dg.asset(
    pool=DATA_POOL,
    group_name=GROUP, deps=[batch_session_features],
    ins={"raw_train_events": dg.AssetIn(input_manager_key="event_table_loader")},
)
def train_session_features(
    context: dg.AssetExecutionContext, raw_train_events: EventTable, feature_engine: FeatureEngineResource,
    spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of each training session or window (labelled with user_id): those of the
    training file, plus those of every materialised training batch."""
    table, info = featurise(raw_train_events, feature_engine, spark,
                            spark_output(mouse_data, context.asset_key, context.run_id))
    table, batch_info = _with_batches(context, table, mouse_data)
    return _output(table, {**info, **batch_info})


@dg.asset(pool=DATA_POOL, group_name=GROUP, ins={"raw_test_events": dg.AssetIn(input_manager_key="event_table_loader")})
def test_session_features(
    context: dg.AssetExecutionContext, raw_test_events: EventTable, feature_engine: FeatureEngineResource,
    spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of each test session or window, by the same code as training."""
    return _output(*featurise(raw_test_events, feature_engine, spark,
                              spark_output(mouse_data, context.asset_key, context.run_id)))
