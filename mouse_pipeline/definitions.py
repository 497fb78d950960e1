"""The Dagster ``Definitions`` of the pipeline: every asset, check and resource.

Configuration comes from environment variables (see README.md): with none
set, the pipeline runs on simulated data under ``./data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from mouse_pipeline.defs.assets import exploration, features, ingestion, model, predictions, verification
from mouse_pipeline.defs.automation import inbox_sensor, retrain, retrain_schedule, score_new_sessions
from mouse_pipeline.defs.checks import TRAIN_EVENT_CHECKS
from mouse_pipeline.defs.resources import resources_from_env


def build_definitions(resources: dict | None = None, inbox_dir: str | None = None) -> dg.Definitions:
    """Definitions with the given resources (default: from the environment).

    The inbox sensor watches ``inbox_dir`` (default: ``MOUSE_INBOX_DIR``, else
    ``<data_dir>/inbox``).

    Asset values are stored by a filesystem IO manager under
    ``<data_dir>/storage`` so that later runs can reuse them.
    """
    resources = dict(resources or resources_from_env())
    data_dir = Path(resources["mouse_data"].data_dir)
    inbox = inbox_dir or os.environ.get("MOUSE_INBOX_DIR") or str(data_dir / "inbox")
    resources.setdefault("io_manager", dg.FilesystemIOManager(base_dir=str(data_dir / "storage")))
    return dg.Definitions(
        assets=dg.load_assets_from_modules([ingestion, features, model, predictions, verification, exploration]),
        asset_checks=[*TRAIN_EVENT_CHECKS, *dg.load_asset_checks_from_modules([features])],
        jobs=[retrain, score_new_sessions],
        schedules=[retrain_schedule()],
        sensors=[inbox_sensor(inbox)],
        resources=resources,
        # Steps are short and share heavy imports (MLflow, scikit-learn): one process beats
        # paying the import in a subprocess per step.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
