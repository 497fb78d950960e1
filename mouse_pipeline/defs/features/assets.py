"""Feature assets: the enrolled training events, every candidate feature setting of them, and the test
features in the chosen setting.

Events arrive as :class:`~mouse_pipeline.defs.storage.EventTable` handles on
their Parquet files. Training events take in every materialised training
batch (see :mod:`mouse_pipeline.defs.batches`) and go through enrolment
(:mod:`mouse_pipeline.enrolment`: users with too few events left out, single
sessions cut into time blocks). ``train_session_features`` computes each
feature setting model selection compares once (:mod:`mouse_pipeline.selection`);
``test_session_features`` uses the setting the trained model chose. Either
engine computes the tables: pandas in this process, or Spark on its executors
(see :mod:`mouse_pipeline.spark_engine`), with the same values.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.batches.partitions import batch_events, stored_batch_events
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import (
    DATA_POOL,
    FeatureEngineResource,
    ModelSelectionResource,
    MouseDataResource,
    SparkResource,
    ValidationLimitsResource,
)
from mouse_pipeline.defs.storage import EventTable, table_path, write_table
from mouse_pipeline.enrolment import EnrolmentError, Enrolment, prepare_training_events
from mouse_pipeline.features import FeatureConfig, extract_features, feature_columns
from mouse_pipeline.outputs import prune_oldest
from mouse_pipeline.selection import featurise, plan_feature_settings, setting_name, typical_session_events
from mouse_pipeline.selection_settings import FeaturePlan, SelectionSettings

GROUP = "features"
#: Key of a feature table's ``attrs`` (kept in its Parquet file) holding the settings it was made with.
CONFIG_ATTR = "feature_config"


@dataclass
class EnrolledEvents:
    """Training events ready for model selection, and the settings every later step of this training
    uses: the feature plan (all planned settings, or the pinned one) and the selection settings (with
    the typical length of the sessions to be scored, taken from the test file)."""

    enrolment: Enrolment
    settings: SelectionSettings
    plan: FeaturePlan
    batches: tuple[str, ...] = ()


def extractor(feature_engine: FeatureEngineResource, spark: SparkResource,
              spark_out: Path) -> Callable[[pd.DataFrame, FeatureConfig], pd.DataFrame]:
    """``extract(events, config)`` on the configured engine. The Spark engine writes each events frame
    it is given once as Parquet under ``spark_out`` (its executors read files) and reads the features back."""
    if not feature_engine.uses_spark:
        return extract_features
    written: dict[tuple[int, int], tuple[int, Path]] = {}

    def extract(events: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
        key = (id(events), len(events))
        if key not in written:
            index = len(written)
            written[key] = index, write_table(events, spark_out / f"events-{index}.parquet")
        index, path = written[key]
        return _spark_features(spark, path, spark_out / f"features-{index}-{config.window_size}-{config.window_unit}",
                               config)[0]

    return extract


def _spark_features(spark: SparkResource, events: Path, out: Path, config: FeatureConfig) -> tuple[pd.DataFrame, str]:
    """The features of a Parquet events file computed by Spark's executors into ``out``, read back, and the
    path of the features written."""
    from mouse_pipeline.spark_engine import features_to_parquet, read_feature_table

    files = features_to_parquet(spark.session(), str(events), str(out), config, events_per_group=spark.events_per_group)
    return read_feature_table(files.features), files.features


def featurise_table(events: EventTable, config: FeatureConfig, feature_engine: FeatureEngineResource,
                    spark: SparkResource, spark_out: Path) -> tuple[pd.DataFrame, dict]:
    """Features of a stored event table in one setting, on the configured engine, and metadata about the
    work (the Spark engine reads the Parquet file itself)."""
    started = time.perf_counter()
    if feature_engine.uses_spark:
        table, written = _spark_features(spark, events.path, spark_out, config)
        engine = {"engine": "spark", "spark_master": spark.session().sparkContext.master,
                  "spark_output": dg.MetadataValue.path(written)}
    else:
        table = extract_features(events.read(), config)
        engine = {"engine": "pandas"}
    seconds = time.perf_counter() - started
    table.attrs[CONFIG_ATTR] = json.dumps(asdict(config), sort_keys=True)
    return table, {**engine, "events": events.rows, "seconds": round(seconds, 3),
                   "events_per_second": round(events.rows / max(seconds, 1e-9)),
                   "feature_setting": setting_name(config)}


def table_config(table: pd.DataFrame) -> FeatureConfig:
    """The settings a feature table was made with (see :func:`featurise_table`)."""
    return FeatureConfig(**json.loads(table.attrs[CONFIG_ATTR]))


def spark_output(mouse_data: MouseDataResource, asset_key: dg.AssetKey, partition: str | None = None) -> Path:
    """Where the Spark engine writes the features of ``asset_key`` (for one batch, or one run)."""
    return table_path(mouse_data.output_dir("spark"), asset_key, partition)


#: Runs whose Spark output an asset keeps under ``data/spark/<asset>/``.
SPARK_RUNS_KEPT = 3


def spark_run_output(mouse_data: MouseDataResource, asset_key: dg.AssetKey, run_id: str) -> Path:
    """:func:`spark_output` for one run of ``asset_key``. The outputs of its last :data:`SPARK_RUNS_KEPT`
    runs are kept (the asset's metadata links them); older ones are deleted, so that retraining does not
    fill the disk."""
    path = spark_output(mouse_data, asset_key, run_id)
    prune_oldest(path.parent, SPARK_RUNS_KEPT - 1, current=path)
    return path


def _with_batches(context: dg.AssetExecutionContext, events: pd.DataFrame,
                  mouse_data: MouseDataResource) -> tuple[pd.DataFrame, tuple[str, ...], dict]:
    """``events`` plus the events of every materialised training batch that passed its checks."""
    batches, left_out = stored_batch_events(context.instance, mouse_data.tables_dir)
    for key, reason in left_out.items():
        context.log.warning(f"training batch {key} left out: {reason}")
    info = {"batches": len(batches), "batch_keys": ", ".join(batches) or "none",
            "batches_left_out": ", ".join(left_out) or "none"}
    if not batches:
        return events, (), info
    sources = {"the training file": events, **{f"batch {key}": frame for key, frame in batches.items()}}
    owners = pd.concat([pd.DataFrame({c.SESSION_ID: frame[c.SESSION_ID].unique(), "source": name})
                        for name, frame in sources.items()], ignore_index=True)
    shared = owners[owners.duplicated(c.SESSION_ID, keep=False)]
    if len(shared):
        where = shared.groupby(c.SESSION_ID)["source"].agg(" and ".join)
        listed = "; ".join(f"{session} in {found}" for session, found in where.head(10).items())
        raise dg.Failure(
            f"{len(where)} session(s) appear in more than one training source, so their events would be "
            f"mixed: {listed}. Remove the session from all but one file (or give it a new session id) and "
            "run ingest_training_batch for the corrected batch again.",
            metadata={"sessions_in_several_sources": len(where)})
    combined = pd.concat([events, *batches.values()], ignore_index=True)
    info["batch_sessions"] = int(combined[c.SESSION_ID].nunique() - events[c.SESSION_ID].nunique())
    return combined, tuple(batches), info


@dg.asset(
    pool=DATA_POOL, group_name=GROUP, deps=[batch_events],
    ins={"raw_train_events": dg.AssetIn(input_manager_key="event_table_loader"),
         "raw_test_events": dg.AssetIn(input_manager_key="event_table_loader")},
)
def enrolled_training_events(
    context: dg.AssetExecutionContext, raw_train_events: EventTable, raw_test_events: EventTable,
    feature_engine: FeatureEngineResource, model_selection: ModelSelectionResource,
    validation_limits: ValidationLimitsResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """The training file's events plus every materialised training batch, enrolled: a user with fewer
    than MOUSE_MIN_EVENTS_PER_USER events is left out (named here and in the log), a user with one
    session is cut into time blocks that validation holds out in turn. Also fixes the settings of this
    training (model_selection and feature_engine resources, the typical length of the test file's
    sessions): train_session_features and user_identifier use them, so a change of those resources
    takes effect from this asset on."""
    events, batches, batch_info = _with_batches(context, raw_train_events.read(), mouse_data)
    typical = typical_session_events(raw_test_events.read(columns=[c.SESSION_ID]))
    settings = model_selection.settings(feature_engine, validation_limits, typical)
    try:
        enrolment = prepare_training_events(events, settings)
    except EnrolmentError as exc:
        raise dg.Failure(f"{raw_train_events.path.name}: {exc}") from exc
    for line in enrolment.messages():
        context.log.warning(line)
    users = enrolment.users
    return dg.Output(
        EnrolledEvents(enrolment, settings, feature_engine.plan(), batches),
        metadata={
            "users_enrolled": len(users),
            "users_left_out": len(enrolment.left_out),
            "left_out": table_preview(enrolment.left_out, rows=50, columns=None) if len(enrolment.left_out)
            else "none",
            "users_validated_by_sessions": int(len(users) - enrolment.users_validated_by_blocks),
            "users_validated_by_blocks": enrolment.users_validated_by_blocks,
            "recorded_sessions": int(users["sessions"].sum()),
            "validation_groups": int(users["validation_groups"].sum()),
            "events": len(enrolment.events),
            "typical_test_session_events": typical,
            "min_events_per_user": settings.min_events_per_user,
            "feature_plan": feature_engine.plan().describe(),
            "families": settings.families,
            "users": table_preview(users, rows=50, columns=None),
            **batch_info,
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def train_session_features(
    context: dg.AssetExecutionContext, enrolled_training_events: EnrolledEvents,
    feature_engine: FeatureEngineResource, spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of the enrolled training events in every feature setting model selection
    compares: whole sessions and window sizes in events and actions that follow the data (or the one
    setting MOUSE_WINDOW_SIZE pins), each computed once."""
    enrolment, settings = enrolled_training_events.enrolment, enrolled_training_events.settings
    plan = enrolled_training_events.plan
    configs = [plan.pinned] if plan.pinned else plan_feature_settings(enrolment.events, settings)
    started = time.perf_counter()
    feature_sets = featurise(enrolment.events, configs, settings,
                             extractor(feature_engine, spark, spark_run_output(mouse_data, context.asset_key,
                                                                               context.run_id)))
    seconds = time.perf_counter() - started
    summary = pd.DataFrame([{"feature_setting": fs.name, "rows": len(fs.table),
                             "columns": len(feature_columns(fs.table)),
                             "scored_units": len(fs.scored_session)} for fs in feature_sets])
    n_events = len(enrolment.events)
    return dg.Output(
        feature_sets,
        metadata={
            "feature_settings": len(feature_sets),
            "settings": table_preview(summary, rows=20, columns=None),
            "sessions": int(enrolment.events[c.SESSION_ID].nunique()),
            "engine": "spark" if feature_engine.uses_spark else "pandas",
            "events": n_events,
            "seconds": round(seconds, 3),
            "events_per_second": round(n_events * len(feature_sets) / max(seconds, 1e-9)),
            "scored_in_chunks_of_events": feature_sets[0].chunk_events,
            "dagster/row_count": int(summary["rows"].sum()),
            "preview": table_preview(feature_sets[0].table),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP, ins={"raw_test_events": dg.AssetIn(input_manager_key="event_table_loader")})
def test_session_features(
    context: dg.AssetExecutionContext, raw_test_events: EventTable, user_identifier,
    feature_engine: FeatureEngineResource, spark: SparkResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Behavioural features of each test session or window, by the same code as training, in the
    feature setting the trained model chose."""
    table, info = featurise_table(raw_test_events, user_identifier.feature_config, feature_engine, spark,
                                  spark_run_output(mouse_data, context.asset_key, context.run_id))
    return dg.Output(table, metadata={
        "sessions": int(table[c.SESSION_ID].nunique()), "windows": len(table),
        "features": len(feature_columns(table)), **info, "dagster/row_count": len(table),
        "preview": table_preview(table)})
