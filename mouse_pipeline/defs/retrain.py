"""The ``retrain`` job (ingestion through predictions) and the schedule that runs it."""

import dagster as dg

from mouse_pipeline.settings import Settings

#: Everything from ingestion to predictions (the exploration group is left to its own runs).
retrain = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups("ingestion", "features", "model", "verification", "prediction"),
    description="Ingest the configured CSVs, validate, featurise, train, register and predict.",
)


def retrain_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """``retrain`` on ``settings.retrain_cron`` (default Mondays 03:00); switched off unless
    ``settings.retrain_schedule`` is ``on``."""
    return dg.ScheduleDefinition(
        name="weekly_retrain",
        job=retrain,
        cron_schedule=settings.retrain_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.schedule_on else dg.DefaultScheduleStatus.STOPPED,
        description="Retrain on the configured CSVs (cron from MOUSE_RETRAIN_CRON, default Mondays 03:00).",
    )
