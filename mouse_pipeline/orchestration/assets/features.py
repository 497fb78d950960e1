"""Feature assets: one row per session (or window) for training and test events.

The events arrive as :class:`~mouse_pipeline.orchestration.storage.EventTable` handles
on their Parquet files: the pandas engine reads them here, the Spark engine
has its executors read them (see :mod:`mouse_pipeline.spark_engine`). Training
features also take in every materialised training batch (see
:mod:`mouse_pipeline.orchestration.batches`).
"""


import json
import time
from dataclasses import asdict

import dagster as dg
import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features import WINDOW, extract_features, feature_columns
from mouse_pipeline.orchestration.batches import (
    BATCH_FEATURES,
    batch_features_spec,
    stored_batch_features,
)
from mouse_pipeline.orchestration.metadata import table_preview
from mouse_pipeline.orchestration.resources import (
    FeatureSettings,
    MouseDataResource,
    SparkResource,
)
from mouse_pipeline.orchestration.storage import EventTable, table_path

GROUP = "features"
#: Key of a feature table's ``attrs`` (kept in its Parquet file) holding the settings it was made with.
CONFIG_ATTR = "feature_config"


def featurise(
    context: dg.AssetExecutionContext, events: EventTable, settings: FeatureSettings, spark: SparkResource,
    mouse_data: MouseDataResource,
) -> tuple[pd.DataFrame, dict]:
    """Features of a stored event table on the configured engine, and metadata about the work."""
    config = settings.config()
    started = time.perf_counter()
    if settings.uses_spark:
        from mouse_pipeline.spark_engine import features_to_parquet, read_feature_table

        partition = context.partition_key if context.has_partition_key else None
        out = table_path(mouse_data.output_dir("spark"), context.asset_key, partition)
        files = features_to_parquet(spark.session(), str(events.path), str(out), config,
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
    batches = stored_batch_features(context.instance, mouse_data.tables_dir)
    stale = [key for key, frame in batches.items() if frame.attrs.get(CONFIG_ATTR) != table.attrs[CONFIG_ATTR]]
    if stale:
        raise dg.Failure(
            f"training batches {stale} were featurised with other feature settings than "
            f"{table.attrs[CONFIG_ATTR]}: materialise their {BATCH_FEATURES} partitions again",
            metadata={"stale_batches": ", ".join(stale)},
        )
    if not batches:
        return table, {"batches": 0}
    combined = pd.concat([table, *batches.values()], ignore_index=True)
    combined.attrs = table.attrs
    info = {"batches": len(batches), "batch_keys": ", ".join(batches),
            "batch_sessions": int(combined[c.SESSION_ID].nunique() - table[c.SESSION_ID].nunique())}
    return combined, info


@dg.asset(
    group_name=GROUP, deps=[batch_features_spec],
    ins={"raw_train_events": dg.AssetIn(input_manager_key="event_table_loader")},
)
def train_session_features(
    context: dg.AssetExecutionContext, raw_train_events: EventTable, feature_settings: FeatureSettings,
    spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of each training session or window (labelled with user_id): those of the
    training file, plus those of every materialised training batch."""
    table, info = featurise(context, raw_train_events, feature_settings, spark, mouse_data)
    table, batch_info = _with_batches(context, table, mouse_data)
    return _output(table, {**info, **batch_info})


@dg.asset(group_name=GROUP, ins={"raw_test_events": dg.AssetIn(input_manager_key="event_table_loader")})
def test_session_features(
    context: dg.AssetExecutionContext, raw_test_events: EventTable, feature_settings: FeatureSettings,
    spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of each test session or window, by the same code as training."""
    return _output(*featurise(context, raw_test_events, feature_settings, spark, mouse_data))


def well_formed(table: pd.DataFrame, session_ids: pd.Series) -> dg.AssetCheckResult:
    """One row per (session, window), a row for every session of ``session_ids``, all values finite."""
    values = table[feature_columns(table)].to_numpy(dtype=np.float64)
    bad_cells = ~np.isfinite(values)
    bad_columns = [col for col, bad in zip(feature_columns(table), bad_cells.any(axis=0)) if bad]
    duplicated = int(table.duplicated([c.SESSION_ID, WINDOW]).sum())
    missing_sessions = sorted(set(session_ids) - set(table[c.SESSION_ID]))
    passed = not bad_cells.any() and duplicated == 0 and not missing_sessions
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "non_finite_cells": int(bad_cells.sum()),
            "non_finite_columns": ", ".join(bad_columns[:20]),
            "duplicate_windows": duplicated,
            "sessions_without_features": len(missing_sessions),
            "missing_sessions": ", ".join(missing_sessions[:20]),
        },
    )


def well_formed_check(asset: str, events_asset: str, name: str,
                      partitions_def: dg.PartitionsDefinition | None = None) -> dg.AssetChecksDefinition:
    """Blocking check that the feature table ``asset`` is :func:`well_formed` against the sessions of
    ``events_asset`` (read as a path handle: only its ``session_id`` column is loaded)."""

    @dg.asset_check(
        asset=asset, name=name, blocking=True, partitions_def=partitions_def,
        description="One row per session window, every session present, no NaN and no infinity.",
        additional_ins={"events": dg.AssetIn(events_asset, input_manager_key="event_table_loader")},
    )
    def _check(features: pd.DataFrame, events: EventTable) -> dg.AssetCheckResult:
        return well_formed(features, events.read(columns=[c.SESSION_ID])[c.SESSION_ID])

    return _check


train_features_one_row_per_window_all_finite = well_formed_check(
    "train_session_features", "raw_train_events", "train_features_one_row_per_window_all_finite")
test_features_one_row_per_window_all_finite = well_formed_check(
    "test_session_features", "raw_test_events", "test_features_one_row_per_window_all_finite")
