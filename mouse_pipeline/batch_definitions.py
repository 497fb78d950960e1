"""The second code location: training batches from the landing folder, as dynamic partitions.

Kept apart from :mod:`mouse_pipeline.definitions` so that the main location
has no partitioned asset (``dagster asset materialize -m mouse_pipeline
--select '*'`` then needs no partition). Both locations read the same
environment, so they share the data folder, the Parquet tables and the
Dagster instance. ``workspace.yaml`` loads both.
"""

from __future__ import annotations

import dagster as dg

from mouse_pipeline.definitions import with_storage
from mouse_pipeline.orchestration.assets import training_batches
from mouse_pipeline.orchestration.batches import ingest_training_batch, landing_sensor


def build_batch_definitions(resources: dict | None = None, landing_dir: str | None = None) -> dg.Definitions:
    """Definitions of the training-batch location; the sensor watches ``landing_dir`` (default: the
    ``mouse_data`` resource's landing folder, ``MOUSE_LANDING_DIR`` or ``<data_dir>/landing``)."""
    resources = with_storage(resources)
    landing = landing_dir or str(resources["mouse_data"].landing())
    return dg.Definitions(
        assets=dg.load_assets_from_modules([training_batches]),
        asset_checks=dg.load_asset_checks_from_modules([training_batches]),  # batch_events' too
        jobs=[ingest_training_batch],
        sensors=[landing_sensor(landing)],
        resources=resources,
        executor=dg.in_process_executor,
    )


defs = build_batch_definitions()
