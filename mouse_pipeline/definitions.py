"""The Dagster ``Definitions`` of the pipeline: every asset, check and resource.

Configuration comes from environment variables (see README.md): with none
set, the pipeline runs on simulated data under ``./data``. The training
batches of the landing folder are a second code location,
:mod:`mouse_pipeline.batch_definitions`, that shares these resources.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from mouse_pipeline.orchestration.assets import (
    exploration,
    features,
    ingestion,
    model,
    predictions,
    verification,
)
from mouse_pipeline.orchestration.automation import (
    inbox_sensor,
    retrain,
    retrain_schedule,
    score_new_sessions,
)
from mouse_pipeline.orchestration.batches import batch_features_spec
from mouse_pipeline.orchestration.checks import TRAIN_EVENT_CHECKS
from mouse_pipeline.orchestration.resources import SparkResource, resources_from_env
from mouse_pipeline.orchestration.storage import ParquetFrameIOManager
from mouse_pipeline.spark_engine import spark_master


def with_storage(resources: dict | None) -> dict:
    """``resources`` (default: from the environment) plus the IO managers and a (lazy) Spark
    resource, unless given.

    Asset values are stored by a filesystem IO manager under
    ``<data_dir>/storage`` so that later runs can reuse them; event and batch
    tables as Parquet under ``<data_dir>/tables``, which ``event_table_loader``
    hands to the feature engines as paths.
    """
    resources = dict(resources or resources_from_env())
    data_dir = Path(resources["mouse_data"].data_dir)
    tables = str(resources["mouse_data"].tables_dir)
    resources.setdefault("io_manager", dg.FilesystemIOManager(base_dir=str(data_dir / "storage")))
    resources.setdefault("events_io_manager", ParquetFrameIOManager(base_dir=tables))
    resources.setdefault("event_table_loader", ParquetFrameIOManager(base_dir=tables, lazy=True))
    resources.setdefault("spark", SparkResource(master=spark_master()))
    return resources


def build_definitions(resources: dict | None = None, inbox_dir: str | None = None) -> dg.Definitions:
    """Definitions with the given resources (default: from the environment).

    The inbox sensor watches ``inbox_dir`` (default: ``MOUSE_INBOX_DIR``, else
    ``<data_dir>/inbox``).
    """
    resources = with_storage(resources)
    data_dir = Path(resources["mouse_data"].data_dir)
    inbox = inbox_dir or os.environ.get("MOUSE_INBOX_DIR") or str(data_dir / "inbox")
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_modules([ingestion, features, model, predictions, verification, exploration]),
            batch_features_spec,  # materialised by the batches location; read by train_session_features
        ],
        asset_checks=[*TRAIN_EVENT_CHECKS, *dg.load_asset_checks_from_modules([features])],
        jobs=[retrain, score_new_sessions],
        schedules=[retrain_schedule()],
        sensors=[inbox_sensor(inbox)],
        resources=resources,
        # Steps are short and share heavy imports (MLflow, scikit-learn): one process beats
        # paying the import in a subprocess per step. It also keeps one Spark session per run.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
