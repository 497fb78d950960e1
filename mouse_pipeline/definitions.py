"""The Dagster ``Definitions`` of the pipeline: every stage of :mod:`mouse_pipeline.defs`, merged.

Configuration comes from :class:`mouse_pipeline.settings.Settings` (environment
variables, see README.md): with none set, the pipeline runs on simulated data
under ``./data``. Training batches of the landing folder live in the same location: their
assets are specs that the partitioned ``ingest_training_batch`` job
materialises, so "Materialize all" runs the unpartitioned pipeline (see
:mod:`mouse_pipeline.defs.batches`).
"""

from __future__ import annotations

import warnings

import dagster as dg

from mouse_pipeline.defs.batches import checks as batch_checks
from mouse_pipeline.defs.batches.job import ingest_training_batch
from mouse_pipeline.defs.batches.partitions import BATCH_SPECS
from mouse_pipeline.defs.batches.sensor import landing_sensor
from mouse_pipeline.defs.exploration import assets as exploration
from mouse_pipeline.defs.features import assets as features
from mouse_pipeline.defs.features import checks as feature_checks
from mouse_pipeline.defs.ingestion import assets as ingestion
from mouse_pipeline.defs.model import assets as model
from mouse_pipeline.defs.prediction import assets as prediction
from mouse_pipeline.defs.prediction.inbox import inbox_sensor, score_new_sessions
from mouse_pipeline.defs.resources import SparkResource, build_resources
from mouse_pipeline.defs.retrain import retrain, retrain_schedule
from mouse_pipeline.defs.storage import storage_resources
from mouse_pipeline.defs.verification import assets as verification
from mouse_pipeline.settings import Settings


# Deliberately silenced Dagster warnings about parameters this project never sets:
# - binding resources re-creates every sensor and hands its empty `owners` list back to the
#   constructor, which then warns that `owners` is a beta parameter;
# - the CLI's `--select` / `--assets` parser passes `include_sources` to AssetSelection itself.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=r"Parameter `include_sources` of function `AssetSelection",
                        category=dg.BetaWarning)


def with_storage(resources: dict | None, settings: Settings | None = None) -> dict:
    """``resources`` (default: :func:`~mouse_pipeline.defs.resources.build_resources` from ``settings``)
    plus, unless given, the IO managers and the (lazy) Spark resource."""
    settings = settings or Settings.from_env()
    resources = dict(resources or build_resources(settings))
    mouse_data = resources["mouse_data"]
    defaults = {**storage_resources(mouse_data.data_dir, mouse_data.tables_dir),
                "spark": SparkResource(master=settings.spark_master)}
    return {**defaults, **resources}


def build_definitions(resources: dict | None = None, settings: Settings | None = None) -> dg.Definitions:
    """The code location, with the given resources (default: from ``settings``, by default read from the
    environment). The inbox and landing folders are created, so files can be dropped in at once."""
    settings = settings or Settings.from_env()
    resources = with_storage(resources, settings)
    mouse_data = resources["mouse_data"]
    for folder in (mouse_data.inbox(), mouse_data.landing()):  # so that `cp file.csv data/inbox/` just works
        folder.mkdir(parents=True, exist_ok=True)
    stages = dg.Definitions(
        assets=[
            *dg.load_assets_from_modules([ingestion, features, model, verification, prediction, exploration]),
            *BATCH_SPECS,  # materialised partition by partition by ingest_training_batch
        ],
        asset_checks=dg.load_asset_checks_from_modules([feature_checks, batch_checks]),
        jobs=[retrain, score_new_sessions, ingest_training_batch],
        schedules=[retrain_schedule(settings)],
        sensors=[inbox_sensor, landing_sensor],
    )
    return dg.Definitions.merge(
        stages,
        dg.Definitions(
            resources=resources,
            # Steps are short and share heavy imports (MLflow, scikit-learn): one process beats
            # paying the import in a subprocess per step. It also keeps one Spark session per run.
            executor=dg.in_process_executor,
        ),
    )


defs = build_definitions()
