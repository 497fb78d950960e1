"""The checks of training batches, declared so that the UI lists them on the batch assets.

The ``ingest_training_batch`` job reports them for its partition as it runs
(a failing blocking one stops that batch). Executed from the UI, they
re-check the stored tables of every materialised batch and pass when every
batch passes; the metadata lists each batch's outcome.
"""

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.batches.partitions import (
    TRAINING_BATCHES,
    batch_events,
    batch_session_features,
    batch_table,
)
from mouse_pipeline.defs.features.checks import well_formed
from mouse_pipeline.defs.ingestion.checks import BATCH_RULES, rule_check_specs, rule_evaluations
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import MouseDataResource, ValidationLimitsResource

WELL_FORMED = "batch_features_one_row_per_window_all_finite"
EVENTS = batch_events.key.to_user_string()


@dg.multi_asset_check(
    specs=[*rule_check_specs(EVENTS, BATCH_RULES),
           dg.AssetCheckSpec(WELL_FORMED, asset=batch_session_features.key, blocking=True,
                             description="One row per session window, every session present, all values finite.")],
    description="Re-check the stored events and features of every materialised training batch.",
)
def training_batch_checks(context: dg.AssetCheckExecutionContext, mouse_data: MouseDataResource,
                          validation_limits: ValidationLimitsResource):
    instance = context.instance
    registered = set(instance.get_dynamic_partitions(TRAINING_BATCHES.name))
    outcomes: dict[str, list[dict]] = {name: [] for name in [r.name for r in BATCH_RULES] + [WELL_FORMED]}
    for batch in sorted(registered & set(instance.get_materialized_partitions(batch_events.key))):
        events = pd.read_parquet(batch_table(mouse_data.tables_dir, batch_events, batch))
        for evaluation in rule_evaluations(EVENTS, BATCH_RULES, events, validation_limits):
            outcomes[evaluation.check_name].append({"batch": batch, "passed": evaluation.passed})
        features = batch_table(mouse_data.tables_dir, batch_session_features, batch)
        if features.exists():
            verdict = well_formed(pd.read_parquet(features), events[c.SESSION_ID])
            outcomes[WELL_FORMED].append({"batch": batch, "passed": verdict.passed})
    severities = {r.name: r.severity for r in BATCH_RULES} | {WELL_FORMED: dg.AssetCheckSeverity.ERROR}
    for name, rows in outcomes.items():
        per_batch = pd.DataFrame(rows, columns=["batch", "passed"])
        yield dg.AssetCheckResult(
            asset_key=batch_session_features.key if name == WELL_FORMED else batch_events.key, check_name=name,
            passed=bool(per_batch["passed"].all()), severity=severities[name],
            metadata={"batches": len(per_batch), "failing_batches": int((~per_batch["passed"]).sum()),
                      "per_batch": table_preview(per_batch, rows=100, columns=None)},
        )
