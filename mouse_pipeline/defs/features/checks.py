"""Checks of the feature tables: one row per window, every session present, all values finite."""

import dagster as dg
import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.storage import EventTable
from mouse_pipeline.features import WINDOW, feature_columns
from mouse_pipeline.selection import FeatureSet


def well_formed(table: pd.DataFrame, session_ids: pd.Series) -> dg.AssetCheckResult:
    """One row per (session, window), a row for every session of ``session_ids``, all values finite."""
    values = table[feature_columns(table)].to_numpy(dtype=np.float64)
    bad_cells = ~np.isfinite(values)
    bad_columns = [col for col, bad in zip(feature_columns(table), bad_cells.any(axis=0)) if bad]
    duplicated = int(table.duplicated([c.SESSION_ID, WINDOW]).sum())
    missing_sessions = sorted(set(session_ids) - set(table[c.SESSION_ID]))
    passed = not bad_cells.any() and duplicated == 0 and not missing_sessions
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "non_finite_cells": int(bad_cells.sum()),
            "non_finite_columns": ", ".join(bad_columns[:20]),
            "duplicate_windows": duplicated,
            "sessions_without_features": len(missing_sessions),
            "missing_sessions": ", ".join(missing_sessions[:20]),
        },
    )


@dg.asset_check(
    asset="train_session_features", name="train_features_one_row_per_window_all_finite", blocking=True,
    description="In every feature setting (and its chunks of held-out sessions): one row per session window, "
                "every enrolled session present, no NaN and no infinity.",
    additional_ins={"enrolled": dg.AssetIn("enrolled_training_events")},
)
def train_features_one_row_per_window_all_finite(train_session_features: list[FeatureSet],
                                                  enrolled) -> dg.AssetCheckResult:
    sessions = enrolled.enrolment.events[c.SESSION_ID].drop_duplicates()
    results = {fs.name: well_formed(fs.table, sessions) for fs in train_session_features}
    for fs in train_session_features:  # held-out sessions scored in chunks: the chunks' table too
        if fs.scoring is not fs.table:
            results[f"{fs.name}, scored in chunks"] = well_formed(fs.scoring, fs.scored_session.index.to_series())
    failed = [name for name, result in results.items() if not result.passed]
    rows = pd.DataFrame([{"feature_setting": name, "passed": r.passed,
                          **{k: getattr(v, "value", v) for k, v in r.metadata.items()}} for name, r in results.items()])
    return dg.AssetCheckResult(passed=not failed, metadata={
        "feature_settings": len(results), "failed_settings": ", ".join(failed) or "none",
        "by_setting": table_preview(rows, rows=20, columns=None)})


@dg.asset_check(
    asset="test_session_features", name="test_features_one_row_per_window_all_finite", blocking=True,
    description="One row per session window, every test session present, no NaN and no infinity.",
    additional_ins={"events": dg.AssetIn("raw_test_events", input_manager_key="event_table_loader")},
)
def test_features_one_row_per_window_all_finite(test_session_features: pd.DataFrame,
                                                events: EventTable) -> dg.AssetCheckResult:
    """The test table is :func:`well_formed` against the sessions of ``raw_test_events`` (read as a path
    handle: only its ``session_id`` column is loaded)."""
    return well_formed(test_session_features, events.read(columns=[c.SESSION_ID])[c.SESSION_ID])
