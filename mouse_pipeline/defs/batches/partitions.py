"""Training batches: files of the landing folder, one dynamic partition each, and where their tables live.

Each CSV that lands in ``MOUSE_LANDING_DIR`` (default ``<data_dir>/landing``)
becomes a partition of :data:`TRAINING_BATCHES`, keyed by its file name. The
batch's assets (``batch_events``, ``rejected_batch_events``,
``batch_session_features``) are declared here as specs that the
``ingest_training_batch`` job materialises one partition at a time (see
:mod:`mouse_pipeline.defs.batches.job`). They are not executable by
themselves, so the UI's "Materialize all" (the unpartitioned pipeline) never
asks for a partition, and everything lives in one code location.
Training (``enrolled_training_events``) reads the events of every batch that
passed its checks with :func:`stored_batch_events`, and featurises them in
every feature setting it compares.
"""

import re
from pathlib import Path

import dagster as dg
import pandas as pd

from mouse_pipeline.defs.storage import table_path

TRAINING_BATCHES = dg.DynamicPartitionsDefinition(name="training_batches")
GROUP = "training_batches"
#: File names usable as partition keys (and safe in paths).
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.csv$")

batch_events = dg.AssetSpec(
    "batch_events", partitions_def=TRAINING_BATCHES, group_name=GROUP,
    description="Clean labelled events of one landed training batch, stored as Parquet "
                "(materialised by the ingest_training_batch job, one partition per file).",
)
rejected_batch_events = dg.AssetSpec(
    "rejected_batch_events", partitions_def=TRAINING_BATCHES, group_name=GROUP,
    description="Rows of a batch file that failed parsing, with line number and reason; also written to "
                "<data_dir>/rejected_batches/<batch>.csv.",
)
batch_session_features = dg.AssetSpec(
    "batch_session_features", partitions_def=TRAINING_BATCHES, group_name=GROUP, deps=[batch_events],
    description="Features of one training batch (whole sessions, or the pinned MOUSE_WINDOW_SIZE), checked "
                "well formed; a batch whose features exist passed its checks, and enrolled_training_events "
                "adds its events to the training file's.",
)
BATCH_SPECS = (batch_events, rejected_batch_events, batch_session_features)


def batch_table(tables_dir: str | Path, spec: dg.AssetSpec, batch: str) -> Path:
    """The Parquet table of ``spec``'s partition ``batch``."""
    return table_path(tables_dir, spec.key, batch)


def stored_batch_events(instance: dg.DagsterInstance, tables_dir: str | Path
                        ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Events of every registered training batch that passed its checks (its features were written), by
    batch key, and the batches left out with the reason.

    A batch whose latest run failed a blocking check has its features removed,
    so it is left out (and named) until a corrected file is processed.
    """
    registered = set(instance.get_dynamic_partitions(TRAINING_BATCHES.name))
    done = instance.get_materialized_partitions(batch_session_features.key)
    tables, left_out = {}, {}
    for key in sorted(registered & set(done)):
        passed = batch_table(tables_dir, batch_session_features, key)
        events = batch_table(tables_dir, batch_events, key)
        if passed.exists() and events.exists():
            tables[key] = pd.read_parquet(events)
        else:
            left_out[key] = (f"no checked features at {passed}: its latest ingestion failed a blocking check "
                             "(see the ingest_training_batch run), or the file was removed")
    return tables, left_out
