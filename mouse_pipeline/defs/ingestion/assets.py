"""Ingestion assets: the raw CSVs in, clean events and rejected rows out.

``raw_train_events`` / ``rejected_train_events`` come from one read of the
training file (the ``train_events`` multi-asset), ``raw_test_events`` /
``rejected_test_events`` from one read of the test file, and
``rejected_events`` gathers every rejected row of both into a CSV.
"""

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.ingestion.checks import TRAIN_RULES, rule_check_results, rule_check_specs
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import DATA_POOL, MouseDataResource, ValidationLimitsResource
from mouse_pipeline.ingest import EventFileError, IngestResult, empty_rejected, read_events
from mouse_pipeline.scoring import relabel

GROUP = "ingestion"


def read_or_fail(path, labelled: bool, source_name: str | None = None) -> IngestResult:
    """The file's events and rejected rows, or a Dagster failure naming the file and the fault.

    ``source_name`` names the file in the rejected rows and errors when ``path`` is a staged copy of it.
    """
    try:
        return relabel(read_events(path, labelled=labelled), source_name) if source_name else read_events(
            path, labelled=labelled)
    except EventFileError as exc:
        message = str(exc).replace(str(path), source_name) if source_name else str(exc)
        raise dg.Failure(description=message, metadata={"file": source_name or str(path)}) from exc


def ingestion_metadata(result: IngestResult, simulated: bool) -> dict:
    """What a person wants to see of an ingestion: the file, row accounting, sessions, users, a preview."""
    events = result.events
    meta = {
        "source_file": dg.MetadataValue.path(result.source_file),
        "simulated": simulated,
        **result.counts(),
        "sessions": int(events[c.SESSION_ID].nunique()),
        "dagster/row_count": len(events),
        "preview": table_preview(events),
    }
    if c.USER_ID in events:
        meta["users"] = int(events[c.USER_ID].nunique())
    return meta


def rejected_metadata(result: IngestResult) -> dict:
    """The rejected rows of an ingestion: how many, from which file, a preview."""
    return {"rows_rejected": result.rows_rejected, "source_file": result.source_file,
            "dagster/row_count": result.rows_rejected, "preview": table_preview(result.rejected)}


def ingestion_outputs(context: dg.AssetExecutionContext, result: IngestResult, events_key: str, rejected_key: str,
                      simulated: bool):
    """The selected outputs of one ingestion (the multi-assets can be subset), with their metadata."""
    selected = context.op_execution_context.selected_output_names
    if events_key in selected:
        yield dg.Output(result.events, events_key, metadata=ingestion_metadata(result, simulated))
    if rejected_key in selected:
        yield dg.Output(result.rejected, rejected_key, metadata=rejected_metadata(result))


def ingestion_outs(events_key: str, rejected_key: str, file: str) -> dict[str, dg.AssetOut]:
    """The two outputs of reading one CSV: its clean events (Parquet) and its rejected rows."""
    return {
        events_key: dg.AssetOut(
            description=f"Clean events of the {file} CSV, sorted by (session_id, timestamp); stored as Parquet "
                        "for either feature engine.",
            group_name=GROUP, is_required=False, io_manager_key="events_io_manager",
        ),
        rejected_key: dg.AssetOut(
            description=f"Rows of the {file} CSV that failed parsing, with line number and reason.",
            group_name=GROUP, is_required=False,
        ),
    }


@dg.multi_asset(
    pool=DATA_POOL,
    outs=ingestion_outs("raw_train_events", "rejected_train_events", "training"),
    check_specs=rule_check_specs("raw_train_events", TRAIN_RULES),
    can_subset=True,
    description="Read the training CSV (MOUSE_TRAIN_CSV, or simulated data) and check its events.",
)
def train_events(context: dg.AssetExecutionContext, mouse_data: MouseDataResource,
                 validation_limits: ValidationLimitsResource):
    files = mouse_data.event_files()
    result = read_or_fail(files.train, labelled=True)
    yield from ingestion_outputs(context, result, "raw_train_events", "rejected_train_events", files.simulated)
    yield from rule_check_results(context, "raw_train_events", TRAIN_RULES, result.events, validation_limits)


@dg.multi_asset(
    pool=DATA_POOL,
    outs=ingestion_outs("raw_test_events", "rejected_test_events", "test"),
    can_subset=True,
    description="Read the test CSV (MOUSE_TEST_CSV, or simulated data).",
)
def test_events(context: dg.AssetExecutionContext, mouse_data: MouseDataResource):
    files = mouse_data.event_files()
    result = read_or_fail(files.test, labelled=False)
    yield from ingestion_outputs(context, result, "raw_test_events", "rejected_test_events", files.simulated)


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def rejected_events(
    mouse_data: MouseDataResource, rejected_train_events: pd.DataFrame, rejected_test_events: pd.DataFrame
) -> dg.MaterializeResult:
    """Every rejected row of both files, with source file, line number, original values and
    reason; also written to ``<data_dir>/rejected_events.csv``."""
    frames = [f for f in (rejected_train_events, rejected_test_events) if len(f)]
    rejected = pd.concat(frames, ignore_index=True) if frames else empty_rejected()
    path = mouse_data.write_csv(rejected, mouse_data.root / "rejected_events.csv")
    reasons = rejected["reason"].str.split("; ").explode().str.replace(r" '.*", "", regex=True)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows_rejected": len(rejected),
            "dagster/row_count": len(rejected),
            "reasons": dg.MetadataValue.json(reasons.value_counts().to_dict() if len(rejected) else {}),
            "preview": table_preview(rejected),
        }
    )
