"""Ingestion assets: raw CSVs in, clean events and rejected rows out."""


import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.ingest import (
    EventFileError,
    IngestResult,
    empty_rejected,
    read_events,
)
from mouse_pipeline.orchestration.metadata import table_preview
from mouse_pipeline.orchestration.resources import MouseDataResource

GROUP = "ingestion"


def read_or_fail(path, labelled: bool) -> IngestResult:
    """The file's events and rejected rows, or a Dagster failure naming the file and the fault."""
    try:
        return read_events(path, labelled=labelled)
    except EventFileError as exc:
        raise dg.Failure(description=str(exc), metadata={"file": str(path)}) from exc


def ingestion_outputs(context: dg.AssetExecutionContext, result: IngestResult, events_key: str, rejected_key: str,
             simulated: bool):
    """Outputs of one ingestion, only those selected (the multi-asset can be subset)."""
    events = result.events
    counts = result.counts()
    meta = {
        "source_file": dg.MetadataValue.path(result.source_file),
        "simulated": simulated,
        **counts,
        "sessions": int(events[c.SESSION_ID].nunique()),
        "dagster/row_count": len(events),
        "preview": table_preview(events),
    }
    if c.USER_ID in events:
        meta["users"] = int(events[c.USER_ID].nunique())
    if events_key in context.op_execution_context.selected_output_names:
        yield dg.Output(events, events_key, metadata=meta)
    if rejected_key in context.op_execution_context.selected_output_names:
        yield dg.Output(
            result.rejected,
            rejected_key,
            metadata={"rows_rejected": result.rows_rejected, "source_file": result.source_file,
                      "dagster/row_count": result.rows_rejected, "preview": table_preview(result.rejected)},
        )


def _ingestion_asset(kind: str, labelled: bool) -> dg.AssetsDefinition:
    """The multi-asset reading the ``kind`` ("train" or "test") file into clean and rejected rows."""
    events_key, rejected_key = f"raw_{kind}_events", f"rejected_{kind}_events"
    label = "labelled" if labelled else "unlabelled"

    @dg.multi_asset(
        name=f"{kind}_events",
        outs={
            events_key: dg.AssetOut(
                description=f"Clean {label} events of the {kind} CSV, sorted by (session_id, timestamp); "
                            "stored as Parquet for either feature engine.",
                group_name=GROUP, is_required=False, io_manager_key="events_io_manager",
            ),
            rejected_key: dg.AssetOut(
                description=f"Rows of the {kind} CSV that failed parsing, with line number and reason.",
                group_name=GROUP, is_required=False,
            ),
        },
        can_subset=True,
        description=f"Read the {kind} CSV (MOUSE_{kind.upper()}_CSV, or simulated data).",
    )
    def _ingest(context: dg.AssetExecutionContext, mouse_data: MouseDataResource):
        files = mouse_data.event_files()
        path = files.train if labelled else files.test
        yield from ingestion_outputs(context, read_or_fail(path, labelled), events_key, rejected_key, files.simulated)

    return _ingest


train_events = _ingestion_asset("train", labelled=True)
test_events = _ingestion_asset("test", labelled=False)


@dg.asset(group_name=GROUP)
def rejected_events(
    mouse_data: MouseDataResource, rejected_train_events: pd.DataFrame, rejected_test_events: pd.DataFrame
) -> dg.MaterializeResult:
    """Every rejected row of both files, with source file, line number, original values and
    reason; also written to ``<data_dir>/rejected_events.csv``."""
    frames = [f for f in (rejected_train_events, rejected_test_events) if len(f)]
    rejected = pd.concat(frames, ignore_index=True) if frames else empty_rejected()
    path = mouse_data.root / "rejected_events.csv"
    mouse_data.root.mkdir(parents=True, exist_ok=True)
    rejected.to_csv(path, index=False)
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
