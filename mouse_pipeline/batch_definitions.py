"""The second code location: training batches from the landing folder, as dynamic partitions.

Kept apart from :mod:`mouse_pipeline.definitions` so that the main location
has no partitioned asset (``dagster asset materialize -m mouse_pipeline
--select '*'`` then needs no partition). Both locations read the same
settings, so they share the data folder, the Parquet tables and the Dagster
instance. ``workspace.yaml`` loads both.
"""

from __future__ import annotations

import dagster as dg

from mouse_pipeline.definitions import with_storage
from mouse_pipeline.defs.batches import assets as batches
from mouse_pipeline.defs.batches.partitions import ingest_training_batch, landing_sensor


def build_batch_definitions(resources: dict | None = None) -> dg.Definitions:
    """Definitions of the training-batch location with the given resources (default: from the environment)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([batches]),
        asset_checks=dg.load_asset_checks_from_modules([batches]),  # batch_events' too
        jobs=[ingest_training_batch],
        sensors=[landing_sensor],
        resources=with_storage(resources),
        executor=dg.in_process_executor,
    )


defs = build_batch_definitions()
